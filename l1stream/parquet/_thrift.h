/* Parquet page headers: the Thrift compact protocol, just enough for PageHeader.
 *
 * Read exactly as Apache Thrift's C++ TCompactProtocol (what pyarrow uses) reads it, so that the
 * C path and pyarrow see the same header or both refuse it:
 * - field ids are 16-bit: a delta wraps as int16 arithmetic, a long-form id is an i16 (a varint
 *   truncated to 32 bits, zigzag-decoded, truncated to 16 bits);
 * - an i32 is a varint truncated to 32 bits, then zigzag-decoded; varints take at most 10 bytes;
 * - a known field of an unexpected type is skipped, as generated code does, and a required field
 *   that is missing makes the struct unreadable;
 * - nesting is limited to 64 levels (Thrift's default recursion limit).
 *
 * Bounds-checked; needs no GIL.  Part of l1stream/parquet/_pages.c (included once).
 */
#ifndef L1STREAM_THRIFT_H
#define L1STREAM_THRIFT_H

#include <stdint.h>
#include <string.h>

enum { PAGE_DATA = 0, PAGE_INDEX = 1, PAGE_DICTIONARY = 2, PAGE_DATA_V2 = 3 };
enum { ENC_PLAIN = 0, ENC_PLAIN_DICTIONARY = 2, ENC_RLE = 3, ENC_RLE_DICTIONARY = 8, ENC_BYTE_STREAM_SPLIT = 9 };
enum { CODEC_UNCOMPRESSED = 0, CODEC_SNAPPY = 1, CODEC_ZSTD = 6 };

static inline int known_codec(int codec) {
    return codec == CODEC_UNCOMPRESSED || codec == CODEC_SNAPPY || codec == CODEC_ZSTD;
}
enum { OK = 0, ERR_CORRUPT = 1, ERR_UNSUPPORTED = 2 };

typedef struct {
    const uint8_t *p, *end;
    int err;
} Reader;

enum {  /* which fields were read: required ones are checked after the struct */
    SEEN_TYPE = 1 << 0, SEEN_UNCOMPRESSED = 1 << 1, SEEN_COMPRESSED = 1 << 2,
    SEEN_NUM_VALUES = 1 << 3, SEEN_ENCODING = 1 << 4, SEEN_DEF_ENCODING = 1 << 5, SEEN_REP_ENCODING = 1 << 6,
    SEEN_NUM_NULLS = 1 << 7, SEEN_NUM_ROWS = 1 << 8, SEEN_DEF_BYTES = 1 << 9, SEEN_REP_BYTES = 1 << 10,
    SEEN_SUBHEADER = 1 << 11,
};
#define THRIFT_MAX_DEPTH 64

typedef struct {
    int32_t type, uncompressed_size, compressed_size;
    int has_crc;
    uint32_t crc;
    int32_t num_values, num_nulls, num_rows, encoding, level_encoding;
    int32_t def_bytes, rep_bytes;  /* v2 only */
    int is_compressed;             /* v2 only: default true */
    uint32_t seen;                 /* SEEN_* bits of the struct being read */
    int subheader;                 /* field id of the page-type header read (5, 7 or 8), 0 if none */
} PageHeader;

/* Whether a page's stated decoded size is one its values and codec allow.  A flat DOUBLE page needs
   at most 6 bytes per value of RLE levels (a one-value run: a varint header and a byte) plus 9 per
   value (PLAIN 8, an RLE-run dictionary index up to 9), and a little slack; Snappy expands at most
   ~21x (64 bytes from a 3-byte copy).  zstd has no such ratio (an RLE block states 128 KiB in 4
   bytes), so the value count is the bound that holds for every codec.  A header stating more is a
   hostile or damaged claim: refused before anything is allocated for it. */
enum { PAGE_BYTES_PER_VALUE = 16, PAGE_BYTES_SLACK = 1024, SNAPPY_MAX_RATIO = 24 };

static inline int plausible_page_size(int64_t num_values, int64_t uncompressed, int64_t compressed, int codec) {
    if (uncompressed < 0 || num_values < 0 || compressed < 0) return 0;
    if (uncompressed > num_values * PAGE_BYTES_PER_VALUE + PAGE_BYTES_SLACK) return 0;
    return codec != CODEC_SNAPPY || uncompressed <= SNAPPY_MAX_RATIO * compressed + PAGE_BYTES_SLACK;
}

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

/* Thrift's readVarint32 + zigzagToI32: the varint truncated to 32 bits, then zigzag-decoded. */
static int32_t zigzag32(Reader *r) {
    uint32_t v = (uint32_t)varint(r);
    return (int32_t)((v >> 1) ^ (0u - (v & 1u)));
}

static void skip(Reader *r, int type, int depth, int in_container);

static void skip_struct(Reader *r, int depth) {
    while (!r->err) {
        if (r->p >= r->end) { r->err = 1; return; }
        uint8_t head = *r->p++;
        if (head == 0) return;
        if ((head >> 4) == 0) (void)zigzag32(r); /* long-form field id */
        skip(r, head & 15, depth + 1, 0);
    }
}

static void skip(Reader *r, int type, int depth, int in_container) {
    if (depth > THRIFT_MAX_DEPTH) { r->err = 1; return; }
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

static void read_struct(Reader *r, FieldReader field, PageHeader *h, int depth) {
    int16_t id = 0;
    if (depth > THRIFT_MAX_DEPTH) { r->err = 1; return; }
    while (!r->err) {
        if (r->p >= r->end) { r->err = 1; return; }
        uint8_t head = *r->p++;
        if (head == 0) return;
        /* int16 arithmetic, as Thrift's lastFieldId_ + modifier: unsigned, then truncated */
        id = (head >> 4) ? (int16_t)(uint16_t)((uint16_t)id + (head >> 4)) : (int16_t)(uint16_t)(uint32_t)zigzag32(r);
        int type = head & 15;
        if (r->err) return;
        if (!field(r, id, type, h)) skip(r, type, depth + 1, 0);
    }
}

/* An i32 field: read and marked seen; a field of another type is skipped (returns 0). */
static int i32_field(Reader *r, int type, int32_t *out, PageHeader *h, uint32_t seen) {
    if (type != 5) return 0;
    *out = zigzag32(r);
    h->seen |= seen;
    return 1;
}

static int data_page_field(Reader *r, int id, int type, PageHeader *h) {
    switch (id) {
    case 1: return i32_field(r, type, &h->num_values, h, SEEN_NUM_VALUES);
    case 2: return i32_field(r, type, &h->encoding, h, SEEN_ENCODING);
    case 3: return i32_field(r, type, &h->level_encoding, h, SEEN_DEF_ENCODING);
    case 4: { int32_t ignored; return i32_field(r, type, &ignored, h, SEEN_REP_ENCODING); }
    default: return 0;
    }
}

static int dictionary_page_field(Reader *r, int id, int type, PageHeader *h) {
    switch (id) {
    case 1: return i32_field(r, type, &h->num_values, h, SEEN_NUM_VALUES);
    case 2: return i32_field(r, type, &h->encoding, h, SEEN_ENCODING);
    default: return 0;
    }
}

static int data_page_v2_field(Reader *r, int id, int type, PageHeader *h) {
    switch (id) {
    case 1: return i32_field(r, type, &h->num_values, h, SEEN_NUM_VALUES);
    case 2: return i32_field(r, type, &h->num_nulls, h, SEEN_NUM_NULLS);
    case 3: return i32_field(r, type, &h->num_rows, h, SEEN_NUM_ROWS);
    case 4: return i32_field(r, type, &h->encoding, h, SEEN_ENCODING);
    case 5: return i32_field(r, type, &h->def_bytes, h, SEEN_DEF_BYTES);
    case 6: return i32_field(r, type, &h->rep_bytes, h, SEEN_REP_BYTES);
    case 7:
        if (type != 1 && type != 2) return 0;
        h->is_compressed = type == 1;
        return 1;
    default: return 0;
    }
}

static const uint32_t REQUIRED_DATA = SEEN_NUM_VALUES | SEEN_ENCODING | SEEN_DEF_ENCODING | SEEN_REP_ENCODING;
static const uint32_t REQUIRED_DICTIONARY = SEEN_NUM_VALUES | SEEN_ENCODING;
static const uint32_t REQUIRED_DATA_V2 = SEEN_NUM_VALUES | SEEN_NUM_NULLS | SEEN_NUM_ROWS | SEEN_ENCODING |
                                         SEEN_DEF_BYTES | SEEN_REP_BYTES;

static int page_header_field(Reader *r, int id, int type, PageHeader *h) {
    switch (id) {
    case 1: return i32_field(r, type, &h->type, h, SEEN_TYPE);
    case 2: return i32_field(r, type, &h->uncompressed_size, h, SEEN_UNCOMPRESSED);
    case 3: return i32_field(r, type, &h->compressed_size, h, SEEN_COMPRESSED);
    case 4: {
        int32_t crc = 0;
        if (!i32_field(r, type, &crc, h, 0)) return 0;
        h->has_crc = 1;
        h->crc = (uint32_t)crc;
        return 1;
    }
    case 5: case 7: case 8: {
        if (type != 12) return 0;
        uint32_t outer = h->seen;
        h->seen = 0;
        read_struct(r, id == 5 ? data_page_field : id == 7 ? dictionary_page_field : data_page_v2_field, h, 2);
        uint32_t required = id == 5 ? REQUIRED_DATA : id == 7 ? REQUIRED_DICTIONARY : REQUIRED_DATA_V2;
        if ((h->seen & required) != required) r->err = 1;  /* a required field is missing */
        h->seen = outer | SEEN_SUBHEADER;
        h->subheader = id;
        return 1;
    }
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
    read_struct(&r, page_header_field, h, 1);
    const uint32_t required = SEEN_TYPE | SEEN_UNCOMPRESSED | SEEN_COMPRESSED;
    if (r.err || (h->seen & required) != required || h->type < 0 || h->compressed_size < 0
            || h->uncompressed_size < 0) {
        *why = "an unreadable page header";
        return -1;
    }
    if (h->type == PAGE_DATA_V2 && (h->num_rows < 0 || h->def_bytes < 0 || h->rep_bytes < 0)) {
        *why = "a v2 page header with a negative row count or level length";  /* pyarrow refuses these too */
        return -1;
    }
    if (h->type == PAGE_DICTIONARY && h->num_values >= 0 && (int64_t)h->num_values * 8 > h->uncompressed_size) {
        *why = "a dictionary page with more values than bytes for them";
        return -1;
    }
    Py_ssize_t length = r.p - (buf + offset);
    if (whole && h->compressed_size > size - offset - length) {
        *why = "a page that runs past the end of the column chunk";
        return -1;
    }
    return length;
}

#endif
