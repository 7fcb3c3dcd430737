/* The footer (FileMetaData) read into plain Python values: what l1stream's own reader needs to
 * plan and read flat DOUBLE columns without pyarrow (l1stream/parquet/metadata.py).
 *
 * Only a footer pyarrow's Thrift reads is read (_footer_rules.h, every struct checked); then as
 * Thrift's generated C++ reads it: a known field of another type is skipped; a list's elements are
 * read as the field's declared element type whatever the list header says.  Returned:
 *   {"elements": [(name, type, repetition, num_children), ...],           the schema, depth first
 *    "row_groups": [(num_rows, [(type, codec, encodings, num_values, data_page_offset,
 *                                dictionary_page_offset or None, total_compressed_size,
 *                                external), ...]), ...]}
 * (-1 for an optional i32 not stated; `external`: the chunk names another file, file_path).
 * Every read is bounds-checked; Python objects are made as the walk goes (the GIL is held).
 * Part of l1stream/parquet/_pages.c (included once, after _thrift.h). */
#ifndef L1STREAM_METADATA_H
#define L1STREAM_METADATA_H

#include "_thrift.h"

typedef struct {
    PyObject *elements, *row_groups;
    int failed;  /* a Python error is set */
    /* the element, row group or chunk being read */
    PyObject *name, *chunks, *encodings;
    int32_t type, repetition, children, codec;
    int64_t rows, num_values, data_page, dictionary_page, compressed;
    int has_dictionary_page, external;
    uint32_t seen, group_seen;
} MetadataWalk;

typedef void (*MetadataField)(Reader *, int16_t id, int type, MetadataWalk *, int depth);

static void metadata_struct(Reader *r, MetadataField field, MetadataWalk *w, int depth) {
    int16_t id = 0;
    if (depth > THRIFT_MAX_DEPTH) { r->err = 1; return; }
    while (!r->err && !w->failed) {
        if (r->p >= r->end) { r->err = 1; return; }
        uint8_t head = *r->p++;
        if (head == 0) return;
        id = (head >> 4) ? (int16_t)(uint16_t)((uint16_t)id + (head >> 4)) : (int16_t)(uint16_t)(uint32_t)zigzag32(r);
        if (r->err) return;
        field(r, id, head & 15, w, depth + 1);
    }
}

/* A list field's element count (its header read); -1 after an error. */
static int64_t metadata_list(Reader *r) {
    if (r->p >= r->end) { r->err = 1; return -1; }
    uint8_t head = *r->p++;
    uint64_t n = head >> 4;
    if (n == 15) n = varint(r);
    if (r->err || n > (uint64_t)(r->end - r->p)) { r->err = 1; return -1; } /* each element takes a byte */
    return (int64_t)n;
}

static int64_t zigzag64(Reader *r) {
    uint64_t v = varint(r);
    return (int64_t)((v >> 1) ^ (0u - (v & 1u)));
}

/* ---- SchemaElement ----------------------------------------------------------------------------- */

enum { SEEN_NAME = 1 };

static void element_field(Reader *r, int16_t id, int type, MetadataWalk *w, int depth) {
    if (type == 5 && (id == 1 || id == 3 || id == 5)) {
        int32_t value = zigzag32(r);
        *(id == 1 ? &w->type : id == 3 ? &w->repetition : &w->children) = value;
        return;
    }
    if (id == 4 && type == 8) {
        uint64_t n = varint(r);
        if (r->err || n > (uint64_t)(r->end - r->p)) { r->err = 1; return; }
        Py_XDECREF(w->name);
        w->name = PyBytes_FromStringAndSize((const char *)r->p, (Py_ssize_t)n);
        if (!w->name) w->failed = 1;
        r->p += n;
        w->seen |= SEEN_NAME;
        return;
    }
    skip(r, type, depth, 0);
}

/* ---- ColumnMetaData and ColumnChunk ------------------------------------------------------------ */

enum { SEEN_META_TYPE = 1, SEEN_ENCODINGS = 2, SEEN_PATH = 4, SEEN_CODEC = 8, SEEN_VALUES = 16,
       SEEN_UNCOMPRESSED_TOTAL = 32, SEEN_COMPRESSED_TOTAL = 64, SEEN_DATA_PAGE = 128, SEEN_META = 256,
       SEEN_FILE_OFFSET = 512 };
static const uint32_t REQUIRED_META = SEEN_META_TYPE | SEEN_ENCODINGS | SEEN_PATH | SEEN_CODEC | SEEN_VALUES |
                                      SEEN_UNCOMPRESSED_TOTAL | SEEN_COMPRESSED_TOTAL | SEEN_DATA_PAGE;

static void column_meta_read(Reader *r, int16_t id, int type, MetadataWalk *w, int depth) {
    if (type == 5 && (id == 1 || id == 4)) {
        int32_t value = zigzag32(r);
        if (id == 1) { w->type = value; w->seen |= SEEN_META_TYPE; }
        else { w->codec = value; w->seen |= SEEN_CODEC; }
        return;
    }
    if (type == 6 && (id == 5 || id == 6 || id == 7 || id == 9 || id == 11)) {
        int64_t value = zigzag64(r);
        switch (id) {
        case 5: w->num_values = value; w->seen |= SEEN_VALUES; break;
        case 6: w->seen |= SEEN_UNCOMPRESSED_TOTAL; break;
        case 7: w->compressed = value; w->seen |= SEEN_COMPRESSED_TOTAL; break;
        case 9: w->data_page = value; w->seen |= SEEN_DATA_PAGE; break;
        default: w->dictionary_page = value; w->has_dictionary_page = 1;
        }
        return;
    }
    if (type == 9 && (id == 2 || id == 3)) {  /* encodings: list<i32>; path_in_schema: list<string> */
        int64_t n = metadata_list(r);
        if (n < 0) return;
        if (id == 2) {
            Py_XDECREF(w->encodings);
            w->encodings = PyTuple_New((Py_ssize_t)n);
            if (!w->encodings) { w->failed = 1; return; }
        }
        for (int64_t i = 0; i < n && !r->err; i++) {
            if (id == 3) { skip(r, 8, depth + 1, 1); continue; }
            PyObject *encoding = PyLong_FromLong(zigzag32(r));
            if (!encoding) { w->failed = 1; return; }
            PyTuple_SET_ITEM(w->encodings, (Py_ssize_t)i, encoding);
        }
        w->seen |= id == 2 ? SEEN_ENCODINGS : SEEN_PATH;
        return;
    }
    skip(r, type, depth, 0);
}

static void column_chunk_read(Reader *r, int16_t id, int type, MetadataWalk *w, int depth) {
    if (id == 1 && type == 8) { w->external = 1; skip(r, type, depth, 0); return; }  /* file_path */
    if (id == 2 && type == 6) { (void)zigzag64(r); w->seen |= SEEN_FILE_OFFSET; return; }
    if (id == 3 && type == 12) {
        uint32_t outer = w->seen;
        w->seen = 0;
        metadata_struct(r, column_meta_read, w, depth);
        if ((w->seen & REQUIRED_META) != REQUIRED_META) r->err = 1;
        w->seen = outer | SEEN_META;
        return;
    }
    skip(r, type, depth, 0);
}

/* ---- RowGroup and FileMetaData ------------------------------------------------------------------ */

enum { SEEN_COLUMNS = 1, SEEN_GROUP_BYTES = 2, SEEN_GROUP_ROWS = 4 };
static const uint32_t REQUIRED_GROUP = SEEN_COLUMNS | SEEN_GROUP_BYTES | SEEN_GROUP_ROWS;

static void row_group_read(Reader *r, int16_t id, int type, MetadataWalk *w, int depth) {
    if (id == 1 && type == 9) {
        w->group_seen |= SEEN_COLUMNS;
        int64_t n = metadata_list(r);
        for (int64_t i = 0; i < n && !r->err && !w->failed; i++) {
            w->seen = 0;
            w->encodings = NULL;
            w->type = w->codec = -1;
            w->num_values = w->data_page = w->dictionary_page = w->compressed = 0;
            w->has_dictionary_page = w->external = 0;
            metadata_struct(r, column_chunk_read, w, depth + 1);
            if (!r->err && !w->failed && !(w->seen & SEEN_FILE_OFFSET)) r->err = 1;  /* required */
            PyObject *chunk = NULL;
            if (!r->err && !w->failed) {
                PyObject *dictionary = w->has_dictionary_page ? PyLong_FromLongLong(w->dictionary_page)
                                                              : Py_NewRef(Py_None);
                chunk = dictionary && w->seen & SEEN_META
                    ? Py_BuildValue("(iiOLLNLO)", w->type, w->codec, w->encodings, (long long)w->num_values,
                                    (long long)w->data_page, dictionary, (long long)w->compressed,
                                    w->external ? Py_True : Py_False)
                    : (Py_XDECREF(dictionary), Py_NewRef(Py_None));  /* metadata elsewhere (encrypted) */
                if (!chunk || PyList_Append(w->chunks, chunk) < 0) w->failed = 1;
            }
            Py_XDECREF(chunk);
            Py_CLEAR(w->encodings);
        }
        return;
    }
    if (id == 2 && type == 6) { (void)zigzag64(r); w->group_seen |= SEEN_GROUP_BYTES; return; }  /* total_byte_size */
    if (id == 3 && type == 6) { w->rows = zigzag64(r); w->group_seen |= SEEN_GROUP_ROWS; return; }
    skip(r, type, depth, 0);
}

enum { SEEN_VERSION = 1, SEEN_SCHEMA = 2, SEEN_FILE_ROWS = 4, SEEN_ROW_GROUPS = 8 };

static void file_metadata_read(Reader *r, int16_t id, int type, MetadataWalk *w, int depth) {
    if (id == 1 && type == 5) { (void)zigzag32(r); w->seen |= SEEN_VERSION; return; }
    if (id == 3 && type == 6) { (void)zigzag64(r); w->seen |= SEEN_FILE_ROWS; return; }
    if (id == 2 && type == 9) {
        int64_t n = metadata_list(r);
        for (int64_t i = 0; i < n && !r->err && !w->failed; i++) {
            uint32_t outer = w->seen;
            w->seen = 0;
            w->type = w->repetition = -1;
            w->children = 0;
            Py_CLEAR(w->name);
            metadata_struct(r, element_field, w, depth + 1);
            if (!r->err && !w->failed && !(w->seen & SEEN_NAME)) r->err = 1;  /* name is required */
            if (!r->err && !w->failed) {
                PyObject *element = Py_BuildValue("(Oiii)", w->name, w->type, w->repetition, w->children);
                if (!element || PyList_Append(w->elements, element) < 0) w->failed = 1;
                Py_XDECREF(element);
            }
            w->seen = outer;
        }
        Py_CLEAR(w->name);
        w->seen |= SEEN_SCHEMA;
        return;
    }
    if (id == 4 && type == 9) {
        int64_t n = metadata_list(r);
        for (int64_t i = 0; i < n && !r->err && !w->failed; i++) {
            uint32_t outer = w->seen;
            w->rows = 0;
            w->group_seen = 0;
            w->chunks = PyList_New(0);
            if (!w->chunks) { w->failed = 1; return; }
            metadata_struct(r, row_group_read, w, depth + 1);
            if (!r->err && !w->failed && (w->group_seen & REQUIRED_GROUP) != REQUIRED_GROUP) r->err = 1;
            if (!r->err && !w->failed) {
                PyObject *group = Py_BuildValue("(LO)", (long long)w->rows, w->chunks);
                if (!group || PyList_Append(w->row_groups, group) < 0) w->failed = 1;
                Py_XDECREF(group);
            }
            Py_CLEAR(w->chunks);
            w->seen = outer;
        }
        w->seen |= SEEN_ROW_GROUPS;
        return;
    }
    skip(r, type, depth, 0);
}

PyDoc_STRVAR(file_metadata_doc,
"file_metadata(footer) -> dict or None\n\n"
"A serialized FileMetaData read as Thrift's generated C++ reads it: the schema's elements and each\n"
"row group's rows and column chunks (see _metadata.h); None when it is not readable so.");

static PyObject *py_file_metadata(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    MetadataWalk w;
    memset(&w, 0, sizeof w);
    w.elements = PyList_New(0);
    w.row_groups = PyList_New(0);
    PyObject *result = NULL;
    if (w.elements && w.row_groups && !valid_footer(view.buf, view.len)) {
        result = Py_NewRef(Py_None);  /* pyarrow's Thrift would refuse it: its error, not our reading */
    } else if (w.elements && w.row_groups) {
        Reader r = {view.buf, (const uint8_t *)view.buf + view.len, 0};
        metadata_struct(&r, file_metadata_read, &w, 1);
        const uint32_t required = SEEN_VERSION | SEEN_SCHEMA | SEEN_FILE_ROWS | SEEN_ROW_GROUPS;
        if (!w.failed) {
            result = r.err || (w.seen & required) != required
                ? Py_NewRef(Py_None)
                : Py_BuildValue("{s:O,s:O}", "elements", w.elements, "row_groups", w.row_groups);
        }
    }
    Py_XDECREF(w.name);
    Py_XDECREF(w.chunks);
    Py_XDECREF(w.encodings);
    Py_XDECREF(w.elements);
    Py_XDECREF(w.row_groups);
    PyBuffer_Release(&view);
    return result;
}

#endif
