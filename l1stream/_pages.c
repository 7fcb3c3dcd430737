/* Decode the pages of one Parquet DOUBLE column chunk into a float64 buffer.
 *
 * The subset that prediction logs use: flat DOUBLE columns (required or optional, no repetition),
 * data pages v1 and v2, PLAIN, PLAIN_DICTIONARY / RLE_DICTIONARY and BYTE_STREAM_SPLIT values,
 * RLE definition levels, UNCOMPRESSED or SNAPPY pages, page CRC-32 verified when present.
 * Anything else raises Unsupported (the caller reads that row group with pyarrow instead);
 * any inconsistency raises Corrupt.  Every read is bounds-checked.  The GIL is released while
 * a page decodes.  See l1stream/pages.py for the Python side.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_crc32.h"
#include "_snappy.h"

static PyObject *Unsupported, *Corrupt;

enum { PAGE_DATA = 0, PAGE_INDEX = 1, PAGE_DICTIONARY = 2, PAGE_DATA_V2 = 3 };
enum { ENC_PLAIN = 0, ENC_PLAIN_DICTIONARY = 2, ENC_RLE = 3, ENC_RLE_DICTIONARY = 8, ENC_BYTE_STREAM_SPLIT = 9 };
enum { CODEC_UNCOMPRESSED = 0, CODEC_SNAPPY = 1 };
enum { OK = 0, ERR_CORRUPT = 1, ERR_UNSUPPORTED = 2 };

typedef struct {
    const uint8_t *p, *end;
    int err;
} Reader;

typedef struct {
    int32_t type, uncompressed_size, compressed_size;
    int has_crc;
    uint32_t crc;
    int32_t num_values, num_nulls, num_rows, encoding, level_encoding;
    int32_t def_bytes, rep_bytes;  /* v2 only */
    int is_compressed;             /* v2 only: default true */
} PageHeader;

/* ---- Thrift compact protocol: just enough for PageHeader ------------------------------------ */

static uint64_t varint(Reader *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    r->err = 1;
    return 0;
}

static int64_t zigzag(Reader *r) {
    uint64_t v = varint(r);
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static void skip(Reader *r, int type, int depth, int in_container);

static void skip_struct(Reader *r, int depth) {
    while (!r->err) {
        if (r->p >= r->end) { r->err = 1; return; }
        uint8_t head = *r->p++;
        if (head == 0) return;
        if ((head >> 4) == 0) zigzag(r); /* long-form field id */
        skip(r, head & 15, depth + 1, 0);
    }
}

static void skip(Reader *r, int type, int depth, int in_container) {
    if (depth > 16) { r->err = 1; return; }
    switch (type) {
    case 1: case 2:  /* booleans: in the field header, or one byte inside a list */
        if (in_container) { if (r->p >= r->end) r->err = 1; else r->p++; }
        return;
    case 3: if (r->p >= r->end) r->err = 1; else r->p++; return;
    case 4: case 5: case 6: varint(r); return;
    case 7: if (r->end - r->p < 8) r->err = 1; else r->p += 8; return;
    case 8: {
        uint64_t n = varint(r);
        if (r->err || (uint64_t)(r->end - r->p) < n) r->err = 1; else r->p += n;
        return;
    }
    case 9: case 10: {
        if (r->p >= r->end) { r->err = 1; return; }
        uint8_t head = *r->p++;
        uint64_t n = head >> 4;
        if (n == 15) n = varint(r);
        if (n > (uint64_t)(r->end - r->p)) { r->err = 1; return; } /* every element takes >= 1 byte */
        for (uint64_t i = 0; i < n && !r->err; i++) skip(r, head & 15, depth + 1, 1);
        return;
    }
    case 11: {
        uint64_t n = varint(r);
        if (n == 0 || r->err) return;
        if (r->p >= r->end || n > (uint64_t)(r->end - r->p)) { r->err = 1; return; }
        uint8_t kinds = *r->p++;
        for (uint64_t i = 0; i < n && !r->err; i++) {
            skip(r, kinds >> 4, depth + 1, 1);
            skip(r, kinds & 15, depth + 1, 1);
        }
        return;
    }
    case 12: skip_struct(r, depth); return;
    default: r->err = 1;
    }
}

/* Read a struct's fields, calling field(r, id, type, out) for each; it returns 0 when it skipped. */
typedef int (*FieldReader)(Reader *, int, int, PageHeader *);

static void read_struct(Reader *r, FieldReader field, PageHeader *h) {
    int id = 0;
    while (!r->err) {
        if (r->p >= r->end) { r->err = 1; return; }
        uint8_t head = *r->p++;
        if (head == 0) return;
        id = (head >> 4) ? id + (head >> 4) : (int)zigzag(r);
        int type = head & 15;
        if (!field(r, id, type, h)) skip(r, type, 1, 0);
    }
}

static int i32_field(Reader *r, int type, int32_t *out) {
    if (type != 5) { r->err = 1; return 1; }
    int64_t v = zigzag(r);
    if (v < INT32_MIN || v > INT32_MAX) r->err = 1;
    *out = (int32_t)v;
    return 1;
}

static int data_page_field(Reader *r, int id, int type, PageHeader *h) {
    switch (id) {
    case 1: return i32_field(r, type, &h->num_values);
    case 2: return i32_field(r, type, &h->encoding);
    case 3: return i32_field(r, type, &h->level_encoding);
    default: return 0;
    }
}

static int dictionary_page_field(Reader *r, int id, int type, PageHeader *h) {
    switch (id) {
    case 1: return i32_field(r, type, &h->num_values);
    case 2: return i32_field(r, type, &h->encoding);
    default: return 0;
    }
}

static int data_page_v2_field(Reader *r, int id, int type, PageHeader *h) {
    switch (id) {
    case 1: return i32_field(r, type, &h->num_values);
    case 2: return i32_field(r, type, &h->num_nulls);
    case 3: return i32_field(r, type, &h->num_rows);
    case 4: return i32_field(r, type, &h->encoding);
    case 5: return i32_field(r, type, &h->def_bytes);
    case 6: return i32_field(r, type, &h->rep_bytes);
    case 7:
        if (type != 1 && type != 2) { r->err = 1; return 1; }
        h->is_compressed = type == 1;
        return 1;
    default: return 0;
    }
}

static int page_header_field(Reader *r, int id, int type, PageHeader *h) {
    switch (id) {
    case 1: return i32_field(r, type, &h->type);
    case 2: return i32_field(r, type, &h->uncompressed_size);
    case 3: return i32_field(r, type, &h->compressed_size);
    case 4: {
        int32_t crc = 0;
        i32_field(r, type, &crc);
        h->has_crc = 1;
        h->crc = (uint32_t)crc;
        return 1;
    }
    case 5: case 7: case 8:
        if (type != 12) { r->err = 1; return 1; }
        read_struct(r, id == 5 ? data_page_field : id == 7 ? dictionary_page_field : data_page_v2_field, h);
        return 1;
    default: return 0;
    }
}

/* Parse the header at buf[offset:]; return the header's length, or -1 with *why set.  With
   `whole`, the page body must lie inside the buffer too.  Needs no GIL. */
static Py_ssize_t parse_header_raw(const uint8_t *buf, Py_ssize_t size, Py_ssize_t offset, PageHeader *h, int whole,
                                   const char **why) {
    memset(h, 0, sizeof *h);
    h->type = h->uncompressed_size = h->compressed_size = h->num_values = h->encoding = -1;
    h->level_encoding = ENC_RLE;
    h->is_compressed = 1;
    if (offset < 0 || offset >= size) {
        *why = "a page header outside the column chunk";
        return -1;
    }
    Reader r = {buf + offset, buf + size, 0};
    read_struct(&r, page_header_field, h);
    if (r.err || h->type < 0 || h->compressed_size < 0 || h->uncompressed_size < 0) {
        *why = "an unreadable page header";
        return -1;
    }
    Py_ssize_t length = r.p - (buf + offset);
    if (whole && h->compressed_size > size - offset - length) {
        *why = "a page that runs past the end of the column chunk";
        return -1;
    }
    return length;
}

/* The same, raising Corrupt (with the GIL). */
static Py_ssize_t parse_header(const uint8_t *buf, Py_ssize_t size, Py_ssize_t offset, PageHeader *h, int whole) {
    const char *why = "";
    Py_ssize_t length = parse_header_raw(buf, size, offset, h, whole, &why);
    if (length < 0) PyErr_Format(Corrupt, "page at byte %zd of the column chunk: %s", offset, why);
    return length;
}

/* ---- RLE / bit-packed hybrid ----------------------------------------------------------------- */

static inline uint64_t load_bits(const uint8_t *p, const uint8_t *end) {
    uint64_t v = 0;
    if (end - p >= 8) memcpy(&v, p, 8);
    else if (end > p) memcpy(&v, p, (size_t)(end - p));
    return v;
}

/* Decode `count` values of width `width` (<= 32); emit(i, value, ctx) stores each.  Returns OK/ERR. */
#define RLE_DECODE(NAME, STORE)                                                                   \
    static int NAME(const uint8_t *p, const uint8_t *end, int width, Py_ssize_t count, void *ctx) { \
        Reader r = {p, end, 0};                                                                   \
        Py_ssize_t i = 0;                                                                         \
        uint64_t mask = width == 64 ? ~0ULL : (1ULL << width) - 1;                                \
        while (i < count) {                                                                       \
            uint64_t head = varint(&r);                                                           \
            if (r.err) return ERR_CORRUPT;                                                        \
            if (head & 1) { /* bit-packed: (head >> 1) groups of 8 values */                      \
                uint64_t groups = head >> 1;                                                      \
                if (groups == 0) return ERR_CORRUPT;                                              \
                uint64_t values = groups * 8;                                                     \
                Py_ssize_t take = (Py_ssize_t)(values < (uint64_t)(count - i) ? values : (uint64_t)(count - i)); \
                uint64_t bytes_needed = ((uint64_t)take * width + 7) / 8;                         \
                if (bytes_needed > (uint64_t)(r.end - r.p)) return ERR_CORRUPT;                   \
                for (Py_ssize_t j = 0; j < take; j++) {                                           \
                    uint64_t bit = (uint64_t)j * width;                                           \
                    uint64_t value = (load_bits(r.p + bit / 8, r.end) >> (bit % 8)) & mask;       \
                    STORE;                                                                        \
                    i++;                                                                          \
                }                                                                                 \
                uint64_t run_bytes = groups * width;                                              \
                r.p += run_bytes < (uint64_t)(r.end - r.p) ? run_bytes : (uint64_t)(r.end - r.p); \
            } else { /* repeated: (head >> 1) copies of one value in ceil(width / 8) bytes */    \
                uint64_t run = head >> 1;                                                         \
                int nbytes = (width + 7) / 8;                                                     \
                if (r.end - r.p < nbytes) return ERR_CORRUPT;                                     \
                uint64_t value = 0;                                                               \
                memcpy(&value, r.p, (size_t)nbytes);                                              \
                r.p += nbytes;                                                                    \
                if (value > mask) return ERR_CORRUPT;                                             \
                Py_ssize_t take = (Py_ssize_t)(run < (uint64_t)(count - i) ? run : (uint64_t)(count - i)); \
                if (take == 0 && run == 0) return ERR_CORRUPT;                                    \
                for (Py_ssize_t j = 0; j < take; j++) {                                           \
                    STORE;                                                                        \
                    i++;                                                                          \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        return OK;                                                                                \
    }

typedef struct { uint8_t *valid; int max_level; Py_ssize_t present; int bad; } LevelContext;

RLE_DECODE(decode_levels, {
    LevelContext *c = ctx;
    uint8_t present = value == (uint64_t)c->max_level;
    c->bad |= value > (uint64_t)c->max_level;
    c->valid[i] = present;
    c->present += present;
})

/* Whole groups of 8 bit-packed indices of a fixed width W: every shift and offset is a constant.
   Reads up to 8 bytes past a group's W bytes: callers leave that much slack. */
typedef void (*GroupGather)(const uint8_t *, Py_ssize_t, const double *, uint64_t, double *, uint64_t *);
#define GROUP_GATHER(W)                                                                                       \
    static void group_gather_##W(const uint8_t *q, Py_ssize_t groups, const double *dictionary, uint64_t size, \
                                 double *out, uint64_t *beyond) {                                            \
        uint64_t over = 0;                                                                                    \
        for (Py_ssize_t g = 0; g < groups; g++, q += W, out += 8) {                                           \
            for (int k = 0; k < 8; k++) {                                                                     \
                uint64_t word;                                                                                \
                memcpy(&word, q + (k * W) / 8, 8);                                                            \
                uint64_t index = (word >> ((k * W) % 8)) & ((1ULL << W) - 1);                                 \
                over |= index >= size;                                                                        \
                out[k] = dictionary[index < size ? index : 0];                                                \
            }                                                                                                 \
        }                                                                                                     \
        *beyond |= over;                                                                                      \
    }
GROUP_GATHER(1) GROUP_GATHER(2) GROUP_GATHER(3) GROUP_GATHER(4) GROUP_GATHER(5) GROUP_GATHER(6)
GROUP_GATHER(7) GROUP_GATHER(8) GROUP_GATHER(9) GROUP_GATHER(10) GROUP_GATHER(11) GROUP_GATHER(12)
GROUP_GATHER(13) GROUP_GATHER(14) GROUP_GATHER(15) GROUP_GATHER(16) GROUP_GATHER(17) GROUP_GATHER(18)
GROUP_GATHER(19) GROUP_GATHER(20) GROUP_GATHER(21) GROUP_GATHER(22) GROUP_GATHER(23) GROUP_GATHER(24)
GROUP_GATHER(25) GROUP_GATHER(26) GROUP_GATHER(27) GROUP_GATHER(28) GROUP_GATHER(29) GROUP_GATHER(30)
GROUP_GATHER(31) GROUP_GATHER(32)
static const GroupGather group_gathers[33] = {
    NULL, group_gather_1, group_gather_2, group_gather_3, group_gather_4, group_gather_5, group_gather_6,
    group_gather_7, group_gather_8, group_gather_9, group_gather_10, group_gather_11, group_gather_12,
    group_gather_13, group_gather_14, group_gather_15, group_gather_16, group_gather_17, group_gather_18,
    group_gather_19, group_gather_20, group_gather_21, group_gather_22, group_gather_23, group_gather_24,
    group_gather_25, group_gather_26, group_gather_27, group_gather_28, group_gather_29, group_gather_30,
    group_gather_31, group_gather_32};

/* Dictionary indices (RLE / bit-packed hybrid, `width` bits) straight to values: out[i] = dictionary[index]. */
static int gather_indices(const uint8_t *p, const uint8_t *end, int width, Py_ssize_t count,
                          const double *dictionary, Py_ssize_t size, double *out) {
    Reader r = {p, end, 0};
    Py_ssize_t i = 0;
    uint64_t mask = (1ULL << width) - 1, beyond = 0;
    while (i < count) {
        uint64_t head = varint(&r);
        if (r.err) return ERR_CORRUPT;
        if (head & 1) {
            uint64_t groups = head >> 1;
            if (groups == 0) return ERR_CORRUPT;
            Py_ssize_t take = groups * 8 < (uint64_t)(count - i) ? (Py_ssize_t)(groups * 8) : count - i;
            Py_ssize_t available = r.end - r.p;
            if (((uint64_t)take * width + 7) / 8 > (uint64_t)available) return ERR_CORRUPT;
            const uint8_t *q = r.p;
            double *o = out + i;
            Py_ssize_t j = 0;
            if (width) { /* whole groups with 8 bytes of slack after them: the fixed-width loops */
                Py_ssize_t groups = available >= 8 ? (Py_ssize_t)((uint64_t)(available - 8) / width) : 0;
                if (groups > take / 8) groups = take / 8;
                group_gathers[width](q, groups, dictionary, (uint64_t)size, o, &beyond);
                j = groups * 8;
            }
            /* values whose 8-byte load stays inside the buffer go without a bounds check */
            Py_ssize_t safe = available >= 8 && width ? (Py_ssize_t)(((uint64_t)(available - 8) * 8) / width) : 0;
            if (safe > take) safe = take;
            for (; j < safe; j++) {
                uint64_t bit = (uint64_t)j * width, word;
                memcpy(&word, q + (bit >> 3), 8);
                uint64_t index = (word >> (bit & 7)) & mask;
                beyond |= index >= (uint64_t)size;
                o[j] = dictionary[index < (uint64_t)size ? index : 0];
            }
            for (; j < take; j++) {
                uint64_t bit = (uint64_t)j * width;
                uint64_t index = (load_bits(q + (bit >> 3), r.end) >> (bit & 7)) & mask;
                beyond |= index >= (uint64_t)size;
                o[j] = dictionary[index < (uint64_t)size ? index : 0];
            }
            i += take;
            uint64_t run_bytes = groups * (uint64_t)width;
            r.p += run_bytes < (uint64_t)available ? run_bytes : (uint64_t)available;
        } else {
            uint64_t run = head >> 1;
            int nbytes = (width + 7) / 8;
            if (run == 0 || r.end - r.p < nbytes) return ERR_CORRUPT;
            uint64_t index = 0;
            memcpy(&index, r.p, (size_t)nbytes);
            r.p += nbytes;
            if (index >= (uint64_t)size) return ERR_CORRUPT;
            Py_ssize_t take = run < (uint64_t)(count - i) ? (Py_ssize_t)run : count - i;
            double value = dictionary[index];
            for (Py_ssize_t j = 0; j < take; j++) out[i + j] = value;
            i += take;
        }
    }
    return beyond ? ERR_CORRUPT : OK;
}

/* 1 when levels are repeated runs of `level` only, covering `count` values (a page without nulls). */
static int levels_all(const uint8_t *p, const uint8_t *end, int level, Py_ssize_t count) {
    Reader r = {p, end, 0};
    Py_ssize_t seen = 0;
    while (seen < count) {
        uint64_t head = varint(&r);
        if (r.err || (head & 1) || (head >> 1) == 0 || r.p >= r.end || *r.p != level) return 0;
        r.p++;
        seen += (Py_ssize_t)(head >> 1);
    }
    return 1;
}

/* ---- values ---------------------------------------------------------------------------------- */

static int decode_values(const uint8_t *p, const uint8_t *end, int encoding, Py_ssize_t count,
                         const double *dictionary, Py_ssize_t dictionary_size, double *out, const char **why) {
    Py_ssize_t available = end - p;
    switch (encoding) {
    case ENC_PLAIN:
        if (available / 8 < count) { *why = "fewer PLAIN values than the page header says"; return ERR_CORRUPT; }
        memcpy(out, p, (size_t)count * 8);
        return OK;
    case ENC_BYTE_STREAM_SPLIT: {
        if (available / 8 < count) { *why = "fewer BYTE_STREAM_SPLIT values than the page header says"; return ERR_CORRUPT; }
        for (Py_ssize_t i = 0; i < count; i++) {
            uint8_t bytes[8];
            for (int k = 0; k < 8; k++) bytes[k] = p[k * count + i];
            memcpy(out + i, bytes, 8);
        }
        return OK;
    }
    case ENC_PLAIN_DICTIONARY: case ENC_RLE_DICTIONARY: {
        if (dictionary == NULL) { *why = "a dictionary-encoded page but no dictionary page"; return ERR_CORRUPT; }
        if (count == 0) return OK;
        if (available < 1 || p[0] > 32) { *why = "a bad dictionary index width"; return ERR_CORRUPT; }
        if (gather_indices(p + 1, end, p[0], count, dictionary, dictionary_size, out) != OK) {
            *why = "bad dictionary index runs, or an index beyond the dictionary";
            return ERR_CORRUPT;
        }
        return OK;
    }
    default:
        *why = "a value encoding l1stream does not decode itself";
        return ERR_UNSUPPORTED;
    }
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
    int job_snappy;
} Page;

static int run_job(Page *g) {
    if (!g->job_dst) return OK;
    if (!g->job_snappy) {
        if (g->job_n != g->job_size) {
            g->why = "an uncompressed page whose compressed and uncompressed sizes differ";
            return ERR_CORRUPT;
        }
        memcpy(g->job_dst, g->job_src, (size_t)g->job_n);
        return OK;
    }
    if (snappy_uncompress(g->job_src, (size_t)g->job_n, g->job_dst, (size_t)g->job_size) != 0) {
        g->why = "Snappy data that does not decompress to the page's stated size";
        return ERR_CORRUPT;
    }
    return OK;
}

static void set_job(Page *g, const uint8_t *src, Py_ssize_t n, uint8_t *dst, Py_ssize_t size, int compressed) {
    g->job_src = src;
    g->job_n = n;
    g->job_dst = dst;
    g->job_size = size;
    g->job_snappy = compressed && g->codec == CODEC_SNAPPY;
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
    if (a->job_dst && b->job_dst && a->job_snappy && b->job_snappy) {
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
    if (codec != CODEC_UNCOMPRESSED && codec != CODEC_SNAPPY) {
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
        g->buf = c->chunk.buf; g->size = c->chunk.len; g->offset = c->offset; g->codec = c->codec;
        g->verify = 1; g->max_level = c->max_level;
        if (reserve((void **)&c->buffers->scratch, &c->buffers->scratch_capacity, h->uncompressed_size + 64)) {
            *why = "no memory for a page";
            return ERR_UNSUPPORTED;
        }
        g->scratch = c->buffers->scratch;
        g->scratch_size = c->buffers->scratch_capacity;
        if (h->type == PAGE_DICTIONARY) {
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
    if (g->header.type == PAGE_DICTIONARY) {
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
        if ((c->codec != CODEC_UNCOMPRESSED && c->codec != CODEC_SNAPPY) || (c->max_level != 0 && c->max_level != 1)) {
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
    {"crc32", py_crc32, METH_VARARGS, "crc32(data) -> int: zlib's CRC-32 (for tests)"},
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
    Unsupported = PyErr_NewException("l1stream._pages.Unsupported", PyExc_ValueError, NULL);
    Corrupt = PyErr_NewException("l1stream._pages.Corrupt", PyExc_ValueError, NULL);
    if (!Unsupported || !Corrupt || PyModule_AddObjectRef(m, "Unsupported", Unsupported) < 0
        || PyModule_AddObjectRef(m, "Corrupt", Corrupt) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
