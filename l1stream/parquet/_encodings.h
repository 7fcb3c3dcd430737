/* Parquet encodings of one DOUBLE column: RLE / bit-packed hybrid levels and dictionary indices,
 * PLAIN, dictionary and BYTE_STREAM_SPLIT values.  Bounds-checked; needs no GIL.  Part of
 * l1stream/_pages.c (included once, after _thrift.h).
 */
#ifndef L1STREAM_ENCODINGS_H
#define L1STREAM_ENCODINGS_H

/* ---- RLE / bit-packed hybrid ----------------------------------------------------------------- */

static inline uint64_t load_bits(const uint8_t *p, const uint8_t *end) {
    uint64_t v = 0;
    if (end - p >= 8) memcpy(&v, p, 8);
    else if (end > p) memcpy(&v, p, (size_t)(end - p));
    return v;
}

/* Definition levels (RLE / bit-packed hybrid, `width` bits, `count` values) into one byte per
   value: 1 where the level is max_level (a value is present), else 0. */
typedef struct { uint8_t *valid; int max_level; Py_ssize_t present; int bad; } LevelContext;

static int decode_levels(const uint8_t *p, const uint8_t *end, int width, Py_ssize_t count, LevelContext *c) {
    Reader r = {p, end, 0};
    Py_ssize_t i = 0;
    uint64_t mask = (1ULL << width) - 1, top = (uint64_t)c->max_level;
    while (i < count) {
        uint64_t head = varint(&r);
        if (r.err) return ERR_CORRUPT;
        Py_ssize_t left = count - i;
        if (head & 1) { /* bit-packed: (head >> 1) groups of 8 values */
            uint64_t groups = head >> 1;
            if (groups == 0) return ERR_CORRUPT;
            /* the whole declared run must be there, even past the last value needed: a shorter one is
               corrupt (pyarrow refuses it too); groups * width cannot overflow (groups < 2^63, width <= 8) */
            if (groups > (uint64_t)(r.end - r.p) || groups * (uint64_t)width > (uint64_t)(r.end - r.p))
                return ERR_CORRUPT;
            Py_ssize_t take = groups * 8 < (uint64_t)left ? (Py_ssize_t)(groups * 8) : left;
            for (Py_ssize_t j = 0; j < take; j++, i++) {
                uint64_t bit = (uint64_t)j * width;
                uint64_t level = (load_bits(r.p + bit / 8, r.end) >> (bit % 8)) & mask;
                c->bad |= level > top;
                c->valid[i] = level == top;
                c->present += level == top;
            }
            r.p += groups * (uint64_t)width;
        } else { /* repeated: (head >> 1) copies of one level in ceil(width / 8) bytes */
            uint64_t run = head >> 1, level = 0;
            int nbytes = (width + 7) / 8;
            if (run == 0 || r.end - r.p < nbytes) return ERR_CORRUPT;
            memcpy(&level, r.p, (size_t)nbytes);
            r.p += nbytes;
            if (level > mask) return ERR_CORRUPT;
            Py_ssize_t take = run < (uint64_t)left ? (Py_ssize_t)run : left;
            c->bad |= level > top;
            memset(c->valid + i, level == top, (size_t)take);
            c->present += level == top ? take : 0;
            i += take;
        }
    }
    return OK;
}

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
    if (count > 0 && size <= 0) return ERR_CORRUPT;  /* values to look up in an empty dictionary */
    while (i < count) {
        uint64_t head = varint(&r);
        if (r.err) return ERR_CORRUPT;
        if (head & 1) {
            uint64_t groups = head >> 1;
            if (groups == 0) return ERR_CORRUPT;
            Py_ssize_t take = groups * 8 < (uint64_t)(count - i) ? (Py_ssize_t)(groups * 8) : count - i;
            Py_ssize_t available = r.end - r.p;
            /* the whole declared run must be there (groups * width bytes), as for levels: pyarrow
               refuses a shorter one ("Unexpected end of stream"), so must we (found by fuzz_scan) */
            if (width && (groups > (uint64_t)available || groups * (uint64_t)width > (uint64_t)available))
                return ERR_CORRUPT;
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
        if ((head >> 1) >= (uint64_t)(count - seen)) return 1;  /* no signed overflow on huge runs */
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

#endif
