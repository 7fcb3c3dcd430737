/* The footer (FileMetaData) walked just far enough to find what makes pyarrow abort the process:
 * an encryption algorithm, encrypted column metadata, the codec numbers used, and column chunk
 * metadata that contradicts the schema (a chunk's type other than its column's, level histograms
 * of another length than the column's levels allow, byte-array sizes on a column of another type:
 * pyarrow's accessors throw from a context that cannot pass the exception on).  The C twin of
 * l1stream/parquet/footer.py's footer_risks (which runs when this extension is not built); the
 * same Thrift compact protocol rules as the page headers (_thrift.h): int16 field ids, bounded
 * nesting, every read bounds-checked.
 *
 * Two passes: the schema first (its leaves' types and maximum levels, computed from the tree of
 * repetition types), then the row groups, each column chunk checked against its leaf; a footer
 * may state its fields in any order. */
#ifndef L1STREAM_FOOTER_H
#define L1STREAM_FOOTER_H

#include <stdlib.h>
#include "_thrift.h"

enum { FOOTER_MAX_CODECS = 64, SCHEMA_MAX_DEPTH = 64, PARQUET_BYTE_ARRAY = 6 };
enum { MISMATCH_NONE = 0, MISMATCH_TYPE, MISMATCH_REPETITION_HISTOGRAM, MISMATCH_DEFINITION_HISTOGRAM,
       MISMATCH_BYTE_ARRAY_SIZES };

typedef struct {
    int32_t type;  /* -1 when not stated */
    int16_t max_definition, max_repetition;
} Leaf;

typedef struct {
    int32_t type;                              /* ColumnMetaData.type, -1 when absent */
    int64_t repetition_length, definition_length;  /* histogram lengths, 0 when absent */
    int byte_array_sizes;                      /* unencoded_byte_array_data_bytes stated */
} ChunkFacts;

typedef struct {
    int encryption, encrypted_columns;
    int32_t codecs[FOOTER_MAX_CODECS];
    int n_codecs, too_many_codecs;
    /* the schema's leaves (pass 1) */
    Leaf *leaves;
    Py_ssize_t n_leaves, leaves_capacity;
    int schema_bad; /* a tree the levels cannot be read from: no check (pyarrow decides) */
    /* schema walk state */
    int32_t element_type, element_repetition, element_children;
    int64_t depth_left[SCHEMA_MAX_DEPTH + 1];
    int16_t depth_definition[SCHEMA_MAX_DEPTH + 1], depth_repetition[SCHEMA_MAX_DEPTH + 1];
    int depth;
    int64_t elements_seen;
    /* row-group walk state (pass 2) */
    int checking;
    int64_t row_group, column;
    ChunkFacts chunk;
    /* the first column chunk that contradicts the schema */
    int mismatch;
    int64_t mismatch_row_group, mismatch_column, mismatch_stated, mismatch_expected;
} FooterRisks;

typedef void (*FooterField)(Reader *, int16_t id, int type, FooterRisks *, int depth);

static void footer_struct(Reader *r, FooterField field, FooterRisks *f, int depth) {
    int16_t id = 0;
    if (depth > THRIFT_MAX_DEPTH) { r->err = 1; return; }
    while (!r->err) {
        if (r->p >= r->end) { r->err = 1; return; }
        uint8_t head = *r->p++;
        if (head == 0) return;
        id = (head >> 4) ? (int16_t)(uint16_t)((uint16_t)id + (head >> 4)) : (int16_t)(uint16_t)(uint32_t)zigzag32(r);
        if (r->err) return;
        field(r, id, head & 15, f, depth + 1);
    }
}

/* A list<struct> field: each element through `field` (`before`, if given, runs first with its
   index, `after` last); any other type is skipped. */
typedef void (*FooterElement)(FooterRisks *, int64_t index);

static void footer_struct_list(Reader *r, int type, FooterField field, FooterRisks *f, int depth,
                               FooterElement before, FooterElement after) {
    if (type != 9) { skip(r, type, depth, 0); return; }
    if (r->p >= r->end) { r->err = 1; return; }
    uint8_t head = *r->p++;
    uint64_t n = head >> 4;
    if (n == 15) n = varint(r);
    if ((head & 15) != 12) { /* not a list of structs: skip its elements */
        if (n > (uint64_t)(r->end - r->p)) { r->err = 1; return; }
        for (uint64_t i = 0; i < n && !r->err; i++) skip(r, head & 15, depth + 1, 1);
        return;
    }
    if (n > (uint64_t)(r->end - r->p)) { r->err = 1; return; }
    for (uint64_t i = 0; i < n && !r->err; i++) {
        if (before) before(f, (int64_t)i);
        footer_struct(r, field, f, depth + 1);
        if (after && !r->err) after(f, (int64_t)i);
    }
}

/* The length of a list field (its elements skipped); -1 for another type. */
static int64_t footer_list_length(Reader *r, int type, int depth) {
    if (type != 9) { skip(r, type, depth, 0); return -1; }
    if (r->p >= r->end) { r->err = 1; return -1; }
    uint8_t head = *r->p++;
    uint64_t n = head >> 4;
    if (n == 15) n = varint(r);
    if (n > (uint64_t)(r->end - r->p)) { r->err = 1; return -1; }
    for (uint64_t i = 0; i < n && !r->err; i++) skip(r, head & 15, depth + 1, 1);
    return (int64_t)n;
}

/* ---- pass 1: the schema's leaves --------------------------------------------------------------- */

static void schema_element_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (type == 5 && (id == 1 || id == 3 || id == 5)) {
        int32_t value = zigzag32(r);
        if (id == 1) f->element_type = value;
        else if (id == 3) f->element_repetition = value;
        else f->element_children = value;
        return;
    }
    skip(r, type, depth, 0);
}

static void schema_element_before(FooterRisks *f, int64_t index) {
    (void)index;
    f->element_type = f->element_repetition = -1;
    f->element_children = 0;
}

/* Elements come depth first: the root, then each child and its subtree. */
static void schema_element_after(FooterRisks *f, int64_t index) {
    if (f->schema_bad) return;
    if (index == 0) { /* the root: its repetition does not count */
        f->depth = 0;
        f->depth_left[0] = f->element_children;
        f->depth_definition[0] = f->depth_repetition[0] = 0;
        return;
    }
    while (f->depth > 0 && f->depth_left[f->depth] == 0) f->depth--;
    if (f->depth_left[f->depth] <= 0) { f->schema_bad = 1; return; } /* more elements than the tree holds */
    f->depth_left[f->depth]--;
    int16_t definition = f->depth_definition[f->depth] + (f->element_repetition == 1 || f->element_repetition == 2);
    int16_t repetition = f->depth_repetition[f->depth] + (f->element_repetition == 2);
    if (f->element_children > 0) {
        if (f->depth >= SCHEMA_MAX_DEPTH) { f->schema_bad = 1; return; }
        f->depth++;
        f->depth_left[f->depth] = f->element_children;
        f->depth_definition[f->depth] = definition;
        f->depth_repetition[f->depth] = repetition;
        return;
    }
    if (f->n_leaves == f->leaves_capacity) {
        Py_ssize_t grown = f->leaves_capacity ? 2 * f->leaves_capacity : 64;
        Leaf *more = realloc(f->leaves, (size_t)grown * sizeof(Leaf));
        if (!more) { f->schema_bad = 1; return; }
        f->leaves = more;
        f->leaves_capacity = grown;
    }
    f->leaves[f->n_leaves++] = (Leaf){f->element_type, definition, repetition};
}

static void schema_pass_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 2) {
        footer_struct_list(r, type, schema_element_field, f, depth, schema_element_before, schema_element_after);
        return;
    }
    if (id == 8 && type == 12) f->encryption = 1; /* encryption_algorithm */
    skip(r, type, depth, 0);
}

/* ---- pass 2: the row groups -------------------------------------------------------------------- */

static void size_statistics_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 1 && type == 6) { varint(r); f->chunk.byte_array_sizes = 1; return; }
    if (id == 2 || id == 3) {
        int64_t length = footer_list_length(r, type, depth);
        if (length >= 0) *(id == 2 ? &f->chunk.repetition_length : &f->chunk.definition_length) = length;
        return;
    }
    skip(r, type, depth, 0);
}

static void column_meta_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 1 && type == 5) { f->chunk.type = zigzag32(r); return; }
    if (id == 4 && type == 5) {
        int32_t codec = zigzag32(r);
        for (int i = 0; i < f->n_codecs; i++) if (f->codecs[i] == codec) return;
        if (f->n_codecs < FOOTER_MAX_CODECS) f->codecs[f->n_codecs++] = codec; else f->too_many_codecs = 1;
        return;
    }
    if (id == 16 && type == 12) { footer_struct(r, size_statistics_field, f, depth); return; }
    skip(r, type, depth, 0);
}

static void mismatch(FooterRisks *f, int kind, int64_t stated, int64_t expected) {
    if (f->mismatch) return;
    f->mismatch = kind;
    f->mismatch_row_group = f->row_group;
    f->mismatch_column = f->column;
    f->mismatch_stated = stated;
    f->mismatch_expected = expected;
}

/* A chunk's metadata against its leaf: what pyarrow's ColumnChunkMetaData would throw on. */
static void check_chunk(FooterRisks *f) {
    if (f->schema_bad || f->column >= f->n_leaves) return;
    const Leaf *leaf = &f->leaves[f->column];
    const ChunkFacts *c = &f->chunk;
    if (c->type >= 0 && leaf->type >= 0 && c->type != leaf->type) mismatch(f, MISMATCH_TYPE, c->type, leaf->type);
    if (c->repetition_length && c->repetition_length != leaf->max_repetition + 1)
        mismatch(f, MISMATCH_REPETITION_HISTOGRAM, c->repetition_length, leaf->max_repetition + 1);
    if (c->definition_length && c->definition_length != leaf->max_definition + 1)
        mismatch(f, MISMATCH_DEFINITION_HISTOGRAM, c->definition_length, leaf->max_definition + 1);
    if (c->byte_array_sizes && leaf->type != PARQUET_BYTE_ARRAY)
        mismatch(f, MISMATCH_BYTE_ARRAY_SIZES, 1, leaf->type);
}

static void column_chunk_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 3 && type == 12) {
        f->chunk = (ChunkFacts){-1, 0, 0, 0};
        footer_struct(r, column_meta_field, f, depth);
        if (!r->err) check_chunk(f);
        return;
    }
    if (id == 8 || id == 9) f->encrypted_columns = 1; /* crypto_metadata, encrypted_column_metadata */
    skip(r, type, depth, 0);
}

static void column_chunk_before(FooterRisks *f, int64_t index) { f->column = index; }

static void row_group_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 1) { footer_struct_list(r, type, column_chunk_field, f, depth, column_chunk_before, NULL); return; }
    skip(r, type, depth, 0);
}

static void row_group_before(FooterRisks *f, int64_t index) { f->row_group = index; }

static void row_group_pass_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 4) { footer_struct_list(r, type, row_group_field, f, depth, row_group_before, NULL); return; }
    skip(r, type, depth, 0);
}

/* 0 when the footer was read to its end, -1 when it is not readable Thrift (pyarrow decides).
   The caller frees f->leaves (footer_done). */
static int footer_risks(const uint8_t *buf, Py_ssize_t size, FooterRisks *f) {
    memset(f, 0, sizeof *f);
    Reader r = {buf, buf + size, 0};
    footer_struct(&r, schema_pass_field, f, 1);
    if (r.err) return -1;
    for (int d = 0; d <= f->depth && !f->schema_bad; d++)
        if (f->depth_left[d] != 0) f->schema_bad = 1; /* a tree cut short: fewer elements than it claims */
    Reader again = {buf, buf + size, 0};
    footer_struct(&again, row_group_pass_field, f, 1);
    return again.err ? -1 : 0;
}

static void footer_done(FooterRisks *f) {
    free(f->leaves);
    f->leaves = NULL;
}

#endif
