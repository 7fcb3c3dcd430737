/* Decode the pages of one Parquet DOUBLE column chunk into a float64 buffer.
 *
 * The subset that prediction logs use: flat DOUBLE columns (required or optional, no repetition),
 * data pages v1 and v2, PLAIN, PLAIN_DICTIONARY / RLE_DICTIONARY and BYTE_STREAM_SPLIT values,
 * RLE definition levels, UNCOMPRESSED, SNAPPY or ZSTD pages, page CRC-32 verified when present.
 * Anything else raises Unsupported (the caller reads that row group with pyarrow instead);
 * any inconsistency raises Corrupt.  Every read is bounds-checked.  The GIL is released while
 * pages decode: one page (decode_page, for streamed row groups) or every page of a row group's
 * columns (decode_column_chunks).  Page headers are in _thrift.h, encodings in _encodings.h,
 * Snappy in _snappy.h, CRC-32 in _crc32.h; zstd is the official decompressor (vendor/zstd, BSD).
 * See l1stream/parquet/pages.py for the Python side.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Values are copied from file bytes with memcpy: that reads little-endian doubles only on a
   little-endian machine.  Elsewhere the build fails, the extension is optional, and l1stream
   runs on pyarrow and numpy (native_enabled() also refuses at run time). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "l1stream's C parts assume a little-endian machine"
#endif

#include "_crc32.h"
#include "_snappy.h"
#include "_thrift.h"
#include "_encodings.h"
#include "_footer.h"
#include "_footer_rules.h"
#include "_metadata.h"
#include "zstd.h"

static PyObject *Unsupported, *Corrupt;

/* parse_header_raw (_thrift.h), raising Corrupt: for callers that hold the GIL. */
static Py_ssize_t parse_header(const uint8_t *buf, Py_ssize_t size, Py_ssize_t offset, PageHeader *h, int whole) {
    const char *why = "";
    Py_ssize_t length = parse_header_raw(buf, size, offset, h, whole, &why);
    if (length < 0) PyErr_Format(Corrupt, "page at byte %zd of the column chunk: %s", offset, why);
    return length;
}

/* ---- pages ----------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *buf;
    Py_ssize_t size, offset;
    int codec, verify, max_level;
    const double *dictionary;
    Py_ssize_t dictionary_size;
    double *out;           /* page values land at out[0 .. num_values) */
    uint8_t *valid;        /* one byte per value, when max_level > 0 */
    uint8_t *scratch;
    Py_ssize_t scratch_size;
    PageHeader header;
    Py_ssize_t header_length;
    Py_ssize_t nulls;
    const char *why;
    /* set by page_begin for page_end: where the decompressed bytes are */
    const uint8_t *levels, *levels_end, *payload, *end;
    int done;              /* nothing left after decompression (a dictionary straight into out) */
    /* the decompression (or copy) page_begin asks for */
    const uint8_t *job_src;
    uint8_t *job_dst;
    Py_ssize_t job_n, job_size;
    int job_codec;         /* CODEC_UNCOMPRESSED (a copy), CODEC_SNAPPY or CODEC_ZSTD */
} Page;

/* Marks this thread as holding buffers, freed when it ends (defined below, with the buffers). */
static void thread_holds_buffers(void);

/* One zstd decompression context per thread, made on first use and kept (like slot_buffers). */
static _Thread_local ZSTD_DCtx *zstd_context;

static int zstd_uncompress(const uint8_t *src, size_t n, uint8_t *dst, size_t size, const char **why) {
    if (!zstd_context && (thread_holds_buffers(), !(zstd_context = ZSTD_createDCtx()))) {
        *why = "no memory for a zstd context";
        return ERR_UNSUPPORTED;
    }
    /* every frame of the page, into exactly the page's stated size: more is dstSize_tooSmall */
    size_t got = ZSTD_decompressDCtx(zstd_context, dst, size, src, n);
    if (ZSTD_isError(got) || got != size) {
        *why = "zstd data that does not decompress to the page's stated size";
        return ERR_CORRUPT;
    }
    return OK;
}

static int run_job(Page *g) {
    if (!g->job_dst) return OK;
    switch (g->job_codec) {
    case CODEC_SNAPPY:
        if (snappy_uncompress(g->job_src, (size_t)g->job_n, g->job_dst, (size_t)g->job_size) != 0) {
            g->why = "Snappy data that does not decompress to the page's stated size";
            return ERR_CORRUPT;
        }
        return OK;
    case CODEC_ZSTD:
        return zstd_uncompress(g->job_src, (size_t)g->job_n, g->job_dst, (size_t)g->job_size, &g->why);
    default:
        if (g->job_n != g->job_size) {
            g->why = "an uncompressed page whose compressed and uncompressed sizes differ";
            return ERR_CORRUPT;
        }
        memcpy(g->job_dst, g->job_src, (size_t)g->job_n);
        return OK;
    }
}

static void set_job(Page *g, const uint8_t *src, Py_ssize_t n, uint8_t *dst, Py_ssize_t size, int compressed) {
    g->job_src = src;
    g->job_n = n;
    g->job_dst = dst;
    g->job_size = size;
    g->job_codec = compressed ? g->codec : CODEC_UNCOMPRESSED;
}

/* First half of a page: checksum, checks, and the decompression it needs (g->job_*). */
static int page_begin(Page *g) {
    PageHeader *h = &g->header;
    const uint8_t *body = g->buf + g->offset + g->header_length;
    Py_ssize_t n = h->compressed_size, total = h->uncompressed_size;
    g->job_dst = NULL;
    g->done = 0;
    if (g->verify && h->has_crc && crc32_zlib(body, (size_t)n) != h->crc) {
        g->why = "a page checksum (CRC-32) mismatch";
        return ERR_CORRUPT;
    }
    if (!plausible_page_size(h->num_values, total, n, h->type == PAGE_DATA_V2 && !h->is_compressed ? 0 : g->codec)) {
        g->why = "a page stating more decoded bytes than its values can need";
        return ERR_UNSUPPORTED;
    }
    if (total > g->scratch_size) { g->why = "a page larger than the scratch buffer"; return ERR_UNSUPPORTED; }
    uint8_t *data = g->scratch;
    g->end = data + total;
    if (h->type == PAGE_DICTIONARY) {
        if (h->encoding != ENC_PLAIN && h->encoding != ENC_PLAIN_DICTIONARY) {
            g->why = "a dictionary page that is not PLAIN";
            return ERR_UNSUPPORTED;
        }
        if (total == (Py_ssize_t)h->num_values * 8) { /* the usual case: straight into the dictionary */
            set_job(g, body, n, (uint8_t *)g->out, total, 1);
            g->done = 1;
        } else {
            set_job(g, body, n, data, total, 1);
            g->payload = data;
        }
        return OK;
    }
    if (h->type == PAGE_DATA) {
        set_job(g, body, n, data, total, 1);
        g->payload = data;
        g->levels = g->levels_end = NULL;
        return OK;
    }
    /* v2: levels uncompressed at the front, then the (maybe compressed) values */
    if (h->rep_bytes != 0) { g->why = "repetition levels in a flat column"; return ERR_CORRUPT; }
    if (h->def_bytes < 0 || h->def_bytes > n || h->def_bytes > total) { g->why = "bad level sizes"; return ERR_CORRUPT; }
    memcpy(data, body, (size_t)h->def_bytes);
    g->levels = data;
    g->levels_end = g->payload = data + h->def_bytes;
    set_job(g, body + h->def_bytes, n - h->def_bytes, data + h->def_bytes, total - h->def_bytes, h->is_compressed);
    return OK;
}

/* Second half: definition levels and values, from the decompressed bytes. */
static int page_end(Page *g) {
    PageHeader *h = &g->header;
    g->nulls = 0;
    if (g->done) return OK;
    Py_ssize_t values = h->num_values;
    if (h->type == PAGE_DICTIONARY)
        return decode_values(g->payload, g->end, ENC_PLAIN, values, NULL, 0, g->out, &g->why);
    if (h->type == PAGE_DATA && g->max_level) {
        const uint8_t *data = g->payload;
        if (h->level_encoding != ENC_RLE) { g->why = "definition levels not RLE-encoded"; return ERR_UNSUPPORTED; }
        if (g->end - data < 4) { g->why = "a truncated definition-level block"; return ERR_CORRUPT; }
        uint32_t length;
        memcpy(&length, data, 4);
        if (length > (uint64_t)(g->end - data) - 4) { g->why = "a definition-level block past the page end"; return ERR_CORRUPT; }
        g->levels = data + 4;
        g->levels_end = g->payload = g->levels + length;
    }
    Py_ssize_t present = values;
    if (g->max_level) {
        LevelContext c = {g->valid, g->max_level, 0, 0};
        if (g->levels == g->levels_end && values) { g->why = "missing definition levels"; return ERR_CORRUPT; }
        if (levels_all(g->levels, g->levels_end, g->max_level, values)) { /* no nulls: the usual page */
            memset(g->valid, 1, (size_t)values);
        } else {
            if (decode_levels(g->levels, g->levels_end, 1, values, &c) != OK || c.bad) {
                g->why = "bad definition levels";
                return ERR_CORRUPT;
            }
            present = c.present;
        }
    }
    g->nulls = values - present;
    int status = decode_values(g->payload, g->end, h->encoding, present, g->dictionary, g->dictionary_size, g->out,
                               &g->why);
    if (status || present == values) return status;
    /* spread the present values over their rows, from the back (in place), nulls as 0.0 */
    Py_ssize_t j = present;
    for (Py_ssize_t i = values - 1; i >= 0; i--) g->out[i] = g->valid[i] ? g->out[--j] : 0.0;
    return OK;
}

static int decode_page(Page *g) {
    int status = page_begin(g);
    if (!status) status = run_job(g);
    if (!status) status = page_end(g);
    return status;
}

/* Two pages of different columns at once: their Snappy streams decompress interleaved, which
   overlaps the two serial tag-to-tag chains (about 15% faster than one after the other). */
static int decode_two_pages(Page *a, Page *b, int *which) {
    int status;
    *which = 0;
    if ((status = page_begin(a))) return status;
    *which = 1;
    if ((status = page_begin(b))) return status;
    if (a->job_dst && b->job_dst && a->job_codec == CODEC_SNAPPY && b->job_codec == CODEC_SNAPPY) {
        int bad[2];
        if (snappy_uncompress2(a->job_src, (size_t)a->job_n, a->job_dst, (size_t)a->job_size, b->job_src,
                               (size_t)b->job_n, b->job_dst, (size_t)b->job_size, bad)) {
            *which = bad[0] ? 0 : 1;
            (bad[0] ? a : b)->why = "Snappy data that does not decompress to the page's stated size";
            return ERR_CORRUPT;
        }
    } else {
        *which = 0;
        if ((status = run_job(a))) return status;
        *which = 1;
        if ((status = run_job(b))) return status;
    }
    *which = 0;
    if ((status = page_end(a))) return status;
    *which = 1;
    return page_end(b);
}

/* ---- Python API -------------------------------------------------------------------------------- */

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *what) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) | PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous%s buffer", what, writable ? " writable" : "");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(page_header_doc,
"page_header(chunk, offset) -> (page_type, num_values, header_length, compressed_size, uncompressed_size)\n\n"
"Parse one page header; the page body may lie beyond the buffer (decode_page checks it).");

static PyObject *py_page_header(PyObject *self, PyObject *args) {
    PyObject *chunk;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "On", &chunk, &offset)) return NULL;
    Py_buffer view;
    if (get_buffer(chunk, &view, 0, "chunk") < 0) return NULL;
    PageHeader h;
    Py_ssize_t length = parse_header(view.buf, view.len, offset, &h, 0);
    PyBuffer_Release(&view);
    if (length < 0) return NULL;
    return Py_BuildValue("innii", h.type, (Py_ssize_t)h.num_values, length, h.compressed_size,
                         h.uncompressed_size);
}

/* A page call's arguments and buffers. */
typedef struct {
    Py_buffer chunk, dictionary, out, valid, scratch;
    Page page;
    int skip; /* an index page (or unknown kind): nothing to decode */
} PageCall;

static void release_call(PageCall *c) {
    Py_buffer *views[] = {&c->chunk, &c->dictionary, &c->out, &c->valid, &c->scratch};
    for (int i = 0; i < 5; i++)
        if (views[i]->obj) PyBuffer_Release(views[i]);
}

/* Parse (chunk, offset, codec, verify, max_level, dictionary, out, valid, scratch) and the page header. */
static int prepare_call(PyObject *args, PageCall *c) {
    PyObject *chunk, *dictionary, *out, *valid, *scratch;
    Py_ssize_t offset;
    int codec, verify, max_level;
    memset(c, 0, sizeof *c);
    if (!PyArg_ParseTuple(args, "OniipOOOO", &chunk, &offset, &codec, &verify, &max_level, &dictionary, &out,
                          &valid, &scratch))
        return -1;
    if (!known_codec(codec)) {
        PyErr_Format(Unsupported, "compression codec %d", codec);
        return -1;
    }
    if (max_level != 0 && max_level != 1) {
        PyErr_Format(Unsupported, "maximum definition level %d (nested column)", max_level);
        return -1;
    }
    if (get_buffer(chunk, &c->chunk, 0, "chunk") < 0) return -1;
    if (dictionary != Py_None && get_buffer(dictionary, &c->dictionary, 0, "dictionary") < 0) return -1;
    if (get_buffer(out, &c->out, 1, "out") < 0) return -1;
    if (valid != Py_None && get_buffer(valid, &c->valid, 1, "valid") < 0) return -1;
    if (get_buffer(scratch, &c->scratch, 1, "scratch") < 0) return -1;
    Page *g = &c->page;
    g->buf = c->chunk.buf; g->size = c->chunk.len; g->offset = offset; g->codec = codec; g->verify = verify;
    g->max_level = max_level;
    g->dictionary = c->dictionary.buf; g->dictionary_size = c->dictionary.buf ? c->dictionary.len / 8 : 0;
    g->out = c->out.buf; g->valid = c->valid.buf; g->scratch = c->scratch.buf; g->scratch_size = c->scratch.len;
    g->header_length = parse_header(c->chunk.buf, c->chunk.len, offset, &g->header, 1);
    if (g->header_length < 0) return -1;
    PageHeader *h = &g->header;
    if (h->type != PAGE_DATA && h->type != PAGE_DATA_V2 && h->type != PAGE_DICTIONARY) {
        c->skip = 1;
        return 0;
    }
    if (h->num_values < 0 || (Py_ssize_t)h->num_values > c->out.len / 8) {
        PyErr_Format(Corrupt, "page at byte %zd holds %d values; expected at most %zd", offset, h->num_values,
                     c->out.len / 8);
        return -1;
    }
    if (max_level && h->type != PAGE_DICTIONARY && (c->valid.buf == NULL || c->valid.len < h->num_values)) {
        PyErr_SetString(PyExc_ValueError, "valid must hold one byte per value of an optional column");
        return -1;
    }
    return 0;
}

static void raise_page_error(int status, const Page *g) {
    PyErr_Format(status == ERR_CORRUPT ? Corrupt : Unsupported, "page at byte %zd of the column chunk: %s", g->offset,
                 g->why);
}

static Py_ssize_t next_offset(const Page *g) { return g->offset + g->header_length + g->header.compressed_size; }

PyDoc_STRVAR(decode_page_doc,
"decode_page(chunk, offset, codec, verify, max_level, dictionary, out, valid, scratch) -> (nulls, next_offset)\n\n"
"Decode the dictionary or data page at chunk[offset:] into out[:num_values] (float64), its\n"
"definition levels into valid (uint8, when max_level is 1).  Index pages are skipped.");

static PyObject *py_decode_page(PyObject *self, PyObject *args) {
    PageCall c;
    PyObject *result = NULL;
    if (prepare_call(args, &c) == 0) {
        int status = OK;
        if (!c.skip) {
            Py_BEGIN_ALLOW_THREADS
            status = decode_page(&c.page);
            Py_END_ALLOW_THREADS
        }
        if (status) raise_page_error(status, &c.page);
        else result = Py_BuildValue("nn", c.page.nulls, next_offset(&c.page));
    }
    release_call(&c);
    return result;
}

static PyObject *py_crc32(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    uint32_t crc;
    Py_BEGIN_ALLOW_THREADS
    crc = crc32_zlib(view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(crc);
}

static PyObject *py_footer_risks(PyObject *self, PyObject *args) {
    static const char *kinds[] = {NULL, "type", "repetition histogram", "definition histogram", "byte array sizes"};
    Py_buffer view;
    FooterRisks f;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    int status = footer_risks(view.buf, view.len, &f);
    footer_done(&f);
    PyBuffer_Release(&view);
    if (status < 0 || f.too_many_codecs) {
        PyErr_SetString(PyExc_ValueError, "not a readable FileMetaData");
        return NULL;
    }
    PyObject *codecs = PyFrozenSet_New(NULL);
    for (int i = 0; codecs && i < f.n_codecs; i++) {
        PyObject *codec = PyLong_FromLong(f.codecs[i]);
        if (!codec || PySet_Add(codecs, codec) < 0) Py_CLEAR(codecs);
        Py_XDECREF(codec);
    }
    if (!codecs) return NULL;
    PyObject *mismatch = f.mismatch ? Py_BuildValue("(sLLLL)", kinds[f.mismatch], (long long)f.mismatch_row_group,
                                                    (long long)f.mismatch_column, (long long)f.mismatch_stated,
                                                    (long long)f.mismatch_expected)
                                    : Py_NewRef(Py_None);
    if (!mismatch) { Py_DECREF(codecs); return NULL; }
    return Py_BuildValue("{s:O,s:O,s:N,s:N}", "encryption", f.encryption ? Py_True : Py_False, "encrypted_columns",
                         f.encrypted_columns ? Py_True : Py_False, "codecs", codecs, "mismatch", mismatch);
}

static PyObject *py_plausible_page_size(PyObject *self, PyObject *args) {
    long long values, uncompressed, compressed;
    int codec;
    if (!PyArg_ParseTuple(args, "LLLi", &values, &uncompressed, &compressed, &codec)) return NULL;
    return PyBool_FromLong(plausible_page_size(values, uncompressed, compressed, codec));
}

static PyObject *py_zstd_uncompress(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t size;
    const char *why = "";
    if (!PyArg_ParseTuple(args, "y*n", &view, &size)) return NULL;
    if (size < 0) { PyBuffer_Release(&view); PyErr_SetString(PyExc_ValueError, "negative size"); return NULL; }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out) {
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = zstd_uncompress(view.buf, (size_t)view.len, (uint8_t *)PyBytes_AS_STRING(out), (size_t)size, &why);
        Py_END_ALLOW_THREADS
        if (status) {
            Py_CLEAR(out);
            PyErr_SetString(status == ERR_CORRUPT ? Corrupt : PyExc_MemoryError, why);
        }
    }
    PyBuffer_Release(&view);
    return out;
}

static PyObject *py_snappy_uncompress(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "y*n", &view, &size)) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out && snappy_uncompress(view.buf, (size_t)view.len, (uint8_t *)PyBytes_AS_STRING(out), (size_t)size)) {
        Py_CLEAR(out);
        PyErr_SetString(Corrupt, "invalid Snappy data");
    }
    PyBuffer_Release(&view);
    return out;
}

/* ---- whole column chunks: every page of a row group's columns in one call ---------------------- */

enum { MAX_CHUNKS = 8 };

/* Per thread and per column slot: a dictionary and a scratch page, grown as needed, kept. */
typedef struct {
    double *dictionary;
    Py_ssize_t dictionary_capacity;
    uint8_t *scratch;
    Py_ssize_t scratch_capacity;
} SlotBuffers;

static _Thread_local SlotBuffers slot_buffers[MAX_CHUNKS];

static int reserve(void **buffer, Py_ssize_t *capacity, Py_ssize_t bytes) {
    if (bytes <= *capacity) return 0;
    thread_holds_buffers();
    void *grown = realloc(*buffer, (size_t)bytes);
    if (!grown) return -1;
    *buffer = grown;
    *capacity = bytes;
    return 0;
}

typedef struct {
    Py_buffer chunk, out, valid;
    int codec, max_level;
    Py_ssize_t offset, position, rows, nulls, dictionary_size;
    int has_dictionary;
    SlotBuffers *buffers;
    Page page;    /* the page in hand */
    int has_page; /* page parsed, not yet decoded */
} Chunk;

/* Parse the next dictionary or data page header of a chunk (index pages skipped) into c->page. */
static int next_page(Chunk *c, const char **why) {
    while (!c->has_page && c->offset < c->chunk.len) {
        Page *g = &c->page;
        memset(g, 0, sizeof *g);
        g->header_length = parse_header_raw(c->chunk.buf, c->chunk.len, c->offset, &g->header, 1, why);
        if (g->header_length < 0) return ERR_CORRUPT;
        PageHeader *h = &g->header;
        if (h->type != PAGE_DATA && h->type != PAGE_DATA_V2 && h->type != PAGE_DICTIONARY) {
            c->offset += g->header_length + h->compressed_size;
            continue;
        }
        if (h->num_values < 0) { *why = "a negative value count"; return ERR_CORRUPT; }
        if (!plausible_page_size(h->num_values, h->uncompressed_size, h->compressed_size,
                                 h->type == PAGE_DATA_V2 && !h->is_compressed ? 0 : c->codec)) {
            *why = "a page stating more decoded bytes than its values can need";
            return ERR_UNSUPPORTED;
        }
        g->buf = c->chunk.buf; g->size = c->chunk.len; g->offset = c->offset; g->codec = c->codec;
        g->verify = 1; g->max_level = c->max_level;
        if (reserve((void **)&c->buffers->scratch, &c->buffers->scratch_capacity, h->uncompressed_size + 64)) {
            *why = "no memory for a page";
            return ERR_UNSUPPORTED;
        }
        g->scratch = c->buffers->scratch;
        g->scratch_size = c->buffers->scratch_capacity;
        if (h->type == PAGE_DICTIONARY) {
            if (c->has_dictionary) { *why = "a second dictionary page"; return ERR_CORRUPT; } /* pyarrow: one */
            if (reserve((void **)&c->buffers->dictionary, &c->buffers->dictionary_capacity,
                        (Py_ssize_t)h->num_values * 8 + 8)) {
                *why = "no memory for a dictionary";
                return ERR_UNSUPPORTED;
            }
            g->out = c->buffers->dictionary;
        } else {
            if (c->position + h->num_values > c->rows) { *why = "more values than the row group has rows"; return ERR_CORRUPT; }
            if (!c->has_dictionary && (h->encoding == ENC_PLAIN_DICTIONARY || h->encoding == ENC_RLE_DICTIONARY)) {
                *why = "a dictionary-encoded page but no dictionary page";
                return ERR_CORRUPT;
            }
            g->out = (double *)c->out.buf + c->position;
            g->valid = c->valid.buf ? (uint8_t *)c->valid.buf + c->position : NULL;
            g->dictionary = c->buffers->dictionary;
            g->dictionary_size = c->dictionary_size;
        }
        c->has_page = 1;
    }
    return OK;
}

static void page_done(Chunk *c) {
    Page *g = &c->page;
    if (g->header.type == PAGE_DICTIONARY) {  /* the first: next_page refuses a second */
        c->dictionary_size = g->header.num_values;
        c->has_dictionary = 1;
    } else {
        c->position += g->header.num_values;
        c->nulls += g->nulls;
    }
    c->offset += g->header_length + g->header.compressed_size;
    c->has_page = 0;
}

/* Decode every page of chunks a and (optionally) b, pages of the same kind two at a time. */
static int decode_chunks(Chunk *a, Chunk *b, int *which, const char **why) {
    for (;;) {
        int status;
        *which = 0;
        if ((status = next_page(a, why))) return status;
        if (b) {
            *which = 1;
            if ((status = next_page(b, why))) return status;
        }
        int live_a = a->has_page, live_b = b && b->has_page;
        if (!live_a && !live_b) return OK;
        int dict_a = live_a && a->page.header.type == PAGE_DICTIONARY;
        int dict_b = live_b && b->page.header.type == PAGE_DICTIONARY;
        if (live_a && live_b && dict_a == dict_b) {
            status = decode_two_pages(&a->page, &b->page, which);
            if (status) { *why = (*which ? b : a)->page.why; return status; }
            page_done(a);
            page_done(b);
            continue;
        }
        Chunk *lone = live_a && (!live_b || dict_a || !dict_b) ? a : b; /* a dictionary page first */
        *which = lone == b;
        if ((status = decode_page(&lone->page))) { *why = lone->page.why; return status; }
        page_done(lone);
    }
}

PyDoc_STRVAR(decode_column_chunks_doc,
"decode_column_chunks(chunks) -> [nulls, ...]\n\n"
"chunks: a list of (chunk, codec, max_level, out, valid) for a row group's columns (at most 8):\n"
"every page of each whole column chunk decoded into out (float64, one per row) and valid (uint8 or\n"
"None); the first two columns' pages go two at a time.  Errors name the column index and page.");

static PyObject *py_decode_column_chunks(PyObject *self, PyObject *args) {
    PyObject *list;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &list)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (n > MAX_CHUNKS) {
        PyErr_Format(Unsupported, "%zd columns in one call; at most %d", n, MAX_CHUNKS);
        return NULL;
    }
    Chunk chunks[MAX_CHUNKS];
    memset(chunks, 0, sizeof chunks);
    PyObject *result = NULL;
    Py_ssize_t ready = 0;
    for (; ready < n; ready++) {
        Chunk *c = &chunks[ready];
        PyObject *chunk, *out, *valid;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(list, ready), "OiiOO", &chunk, &c->codec, &c->max_level, &out, &valid))
            goto done;
        if (!known_codec(c->codec) || (c->max_level != 0 && c->max_level != 1)) {
            PyErr_Format(Unsupported, "column %zd: codec %d, maximum definition level %d", ready, c->codec, c->max_level);
            goto done;
        }
        if (get_buffer(chunk, &c->chunk, 0, "chunk") < 0 || get_buffer(out, &c->out, 1, "out") < 0) goto done;
        if (valid != Py_None && get_buffer(valid, &c->valid, 1, "valid") < 0) goto done;
        c->rows = c->out.len / 8;
        if (c->max_level && (!c->valid.buf || c->valid.len < c->rows)) {
            PyErr_SetString(PyExc_ValueError, "valid must hold one byte per row of an optional column");
            goto done;
        }
        c->buffers = &slot_buffers[ready];
    }
    for (Py_ssize_t i = 0; i < n; i += 2) {
        Chunk *a = &chunks[i], *b = i + 1 < n ? &chunks[i + 1] : NULL;
        int status, which = 0;
        const char *why = "";
        Py_BEGIN_ALLOW_THREADS
        status = decode_chunks(a, b, &which, &why);
        Py_END_ALLOW_THREADS
        if (status) {
            Chunk *bad = which ? b : a;
            if (!PyErr_Occurred())
                PyErr_Format(status == ERR_CORRUPT ? Corrupt : Unsupported,
                             "column %zd: page at byte %zd of the column chunk: %s", i + which, bad->offset, why);
            goto done;
        }
        for (Chunk *c = a; c && c <= (b ? b : a); c++)
            if (c->position != c->rows) {
                PyErr_Format(Corrupt, "column %zd: the column chunk holds %zd values; the row group has %zd rows",
                             c - chunks, c->position, c->rows);
                goto done;
            }
    }
    result = PyList_New(n);
    for (Py_ssize_t i = 0; result && i < n; i++) PyList_SET_ITEM(result, i, PyLong_FromSsize_t(chunks[i].nulls));
done:
    for (Py_ssize_t i = 0; i < n; i++) {
        if (chunks[i].chunk.obj) PyBuffer_Release(&chunks[i].chunk);
        if (chunks[i].out.obj) PyBuffer_Release(&chunks[i].out);
        if (chunks[i].valid.obj) PyBuffer_Release(&chunks[i].valid);
    }
    return result;
}

/* ---- two column chunks in lockstep, page by page, to a consumer (reduce_pair) ------------------ */

#include "_lockstep.h"

/* ---- buffers held per thread, freed when the thread ends ------------------------------------- */

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>

static pthread_key_t buffers_key;
static pthread_once_t buffers_once = PTHREAD_ONCE_INIT;

/* Runs in the ending thread (a pool shut down, a Dask worker thread retired): its buffers go too. */
static void free_thread_buffers(void *unused) {
    (void)unused;
    for (int i = 0; i < MAX_CHUNKS; i++) {
        free(slot_buffers[i].dictionary);
        free(slot_buffers[i].scratch);
        memset(&slot_buffers[i], 0, sizeof slot_buffers[i]);
    }
    for (int i = 0; i < 2; i++) {
        LaneBuffers *b = &lane_buffers[i];
        free(b->window); free(b->scratch); free(b->valid); free(b->values); free(b->dictionary);
        memset(b, 0, sizeof *b);
    }
    ZSTD_freeDCtx(zstd_context);
    zstd_context = NULL;
}

static void make_buffers_key(void) { (void)pthread_key_create(&buffers_key, free_thread_buffers); }

static void thread_holds_buffers(void) {
    (void)pthread_once(&buffers_once, make_buffers_key);
    if (!pthread_getspecific(buffers_key)) (void)pthread_setspecific(buffers_key, &buffers_key);
}
#else
static void thread_holds_buffers(void) {}
#endif

static PyObject *py_snappy_uncompress2(PyObject *self, PyObject *args) {
    Py_buffer a, b;
    Py_ssize_t size_a, size_b;
    if (!PyArg_ParseTuple(args, "y*ny*n", &a, &size_a, &b, &size_b)) return NULL;
    PyObject *out_a = PyBytes_FromStringAndSize(NULL, size_a), *out_b = PyBytes_FromStringAndSize(NULL, size_b);
    PyObject *result = NULL;
    int bad[2];
    if (out_a && out_b) {
        if (snappy_uncompress2(a.buf, (size_t)a.len, (uint8_t *)PyBytes_AS_STRING(out_a), (size_t)size_a, b.buf,
                               (size_t)b.len, (uint8_t *)PyBytes_AS_STRING(out_b), (size_t)size_b, bad))
            PyErr_Format(Corrupt, "invalid Snappy data in stream%s%s", bad[0] ? " 0" : "", bad[1] ? " 1" : "");
        else
            result = PyTuple_Pack(2, out_a, out_b);
    }
    Py_XDECREF(out_a);
    Py_XDECREF(out_b);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return result;
}

static PyMethodDef methods[] = {
    {"page_header", py_page_header, METH_VARARGS, page_header_doc},
    {"decode_page", py_decode_page, METH_VARARGS, decode_page_doc},
    {"decode_column_chunks", py_decode_column_chunks, METH_VARARGS, decode_column_chunks_doc},
    {"reduce_pair", py_reduce_pair, METH_VARARGS, reduce_pair_doc},
    {"file_metadata", py_file_metadata, METH_VARARGS, file_metadata_doc},
    {"crc32", py_crc32, METH_VARARGS, "crc32(data) -> int: zlib's CRC-32 (for tests)"},
    {"footer_risks", py_footer_risks, METH_VARARGS,
     "footer_risks(metadata) -> {encryption, encrypted_columns, codecs, mismatch}: parquet/footer.py's walk, in C"},
    {"plausible_page_size", py_plausible_page_size, METH_VARARGS,
     "plausible_page_size(num_values, uncompressed, compressed, codec) -> bool: the decoder's bound on a page"},
    {"zstd_uncompress", py_zstd_uncompress, METH_VARARGS,
     "zstd_uncompress(data, size) -> bytes: exactly size bytes or Corrupt (for tests)"},
    {"snappy_uncompress", py_snappy_uncompress, METH_VARARGS, "snappy_uncompress(data, size) -> bytes (for tests)"},
    {"snappy_uncompress2", py_snappy_uncompress2, METH_VARARGS,
     "snappy_uncompress2(a, size_a, b, size_b) -> (bytes, bytes): two streams interleaved (for tests)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pages", "Parquet DOUBLE page decoding.", -1, methods};

PyMODINIT_FUNC PyInit__pages(void) {
    crc32_init();
    snappy_init();
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Unsupported = PyErr_NewException("l1stream.parquet._pages.Unsupported", PyExc_ValueError, NULL);
    Corrupt = PyErr_NewException("l1stream.parquet._pages.Corrupt", PyExc_ValueError, NULL);
    if (!Unsupported || !Corrupt || PyModule_AddObjectRef(m, "Unsupported", Unsupported) < 0
        || PyModule_AddObjectRef(m, "Corrupt", Corrupt) < 0
        ) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
