/* The footer (FileMetaData) walked just far enough to find what makes pyarrow abort the process:
 * an encryption algorithm, encrypted column metadata, the codec numbers used.  The C twin of
 * l1stream/parquet/footer.py's footer_risks (which runs when this extension is not built); the
 * same Thrift compact protocol rules as the page headers (_thrift.h): int16 field ids, bounded
 * nesting, every read bounds-checked. */
#ifndef L1STREAM_FOOTER_H
#define L1STREAM_FOOTER_H

#include "_thrift.h"

enum { FOOTER_MAX_CODECS = 64 };

typedef struct {
    int encryption, encrypted_columns;
    int32_t codecs[FOOTER_MAX_CODECS];
    int n_codecs, too_many_codecs;
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

/* A list<struct> field: each element through `field`; any other type is skipped. */
static void footer_struct_list(Reader *r, int type, FooterField field, FooterRisks *f, int depth) {
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
    for (uint64_t i = 0; i < n && !r->err; i++) footer_struct(r, field, f, depth + 1);
}

static void column_meta_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 4 && type == 5) {
        int32_t codec = zigzag32(r);
        for (int i = 0; i < f->n_codecs; i++) if (f->codecs[i] == codec) return;
        if (f->n_codecs < FOOTER_MAX_CODECS) f->codecs[f->n_codecs++] = codec; else f->too_many_codecs = 1;
        return;
    }
    skip(r, type, depth, 0);
}

static void column_chunk_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 3 && type == 12) { footer_struct(r, column_meta_field, f, depth); return; }
    if (id == 8 || id == 9) f->encrypted_columns = 1; /* crypto_metadata, encrypted_column_metadata */
    skip(r, type, depth, 0);
}

static void row_group_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 1) { footer_struct_list(r, type, column_chunk_field, f, depth); return; }
    skip(r, type, depth, 0);
}

static void file_meta_field(Reader *r, int16_t id, int type, FooterRisks *f, int depth) {
    if (id == 4) { footer_struct_list(r, type, row_group_field, f, depth); return; }
    if (id == 8 && type == 12) f->encryption = 1; /* encryption_algorithm */
    skip(r, type, depth, 0);
}

/* 0 when the footer was read to its end, -1 when it is not readable Thrift (pyarrow decides). */
static int footer_risks(const uint8_t *buf, Py_ssize_t size, FooterRisks *f) {
    memset(f, 0, sizeof *f);
    Reader r = {buf, buf + size, 0};
    footer_struct(&r, file_meta_field, f, 1);
    return r.err ? -1 : 0;
}

#endif
