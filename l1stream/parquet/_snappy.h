/* Snappy block decompression (the raw format Parquet pages use), bounds-checked.
 *
 * Format: a varint uncompressed length, then tagged elements: literals (tag & 3 == 0) and
 * back-references with 1-, 2- or 4-byte offsets.  Returns 0 when `src` decompresses to exactly
 * `dst_size` bytes, -1 otherwise; never reads or writes outside the two buffers.
 */
#ifndef L1STREAM_SNAPPY_H
#define L1STREAM_SNAPPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t snappy_le(const uint8_t *p, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t snappy_load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* little-endian hosts (see snappy_uncompress) */
}

/* One element the careful way; returns the new (ip, op) through the pointers, or -1. */
static int snappy_element(const uint8_t **ipp, const uint8_t *iend, uint8_t **opp, uint8_t *dst, uint8_t *oend) {
    const uint8_t *ip = *ipp;
    uint8_t *op = *opp;
    uint8_t tag = *ip++;
    size_t len, offset;
    if ((tag & 3) == 0) { /* literal */
        len = (size_t)(tag >> 2) + 1;
        if (len > 60) {
            int extra = (int)len - 60;
            if (iend - ip < extra) return -1;
            len = (size_t)snappy_le(ip, extra) + 1;
            ip += extra;
        }
        if ((size_t)(iend - ip) < len || (size_t)(oend - op) < len) return -1;
        memcpy(op, ip, len);
        *opp = op + len;
        *ipp = ip + len;
        return 0;
    }
    switch (tag & 3) {
    case 1:
        if (ip >= iend) return -1;
        len = (size_t)((tag >> 2) & 7) + 4;
        offset = ((size_t)(tag >> 5) << 8) | *ip++;
        break;
    case 2:
        if (iend - ip < 2) return -1;
        len = (size_t)(tag >> 2) + 1;
        offset = snappy_le(ip, 2);
        ip += 2;
        break;
    default:
        if (iend - ip < 4) return -1;
        len = (size_t)(tag >> 2) + 1;
        offset = snappy_le(ip, 4);
        ip += 4;
        break;
    }
    if (offset == 0 || offset > (size_t)(op - dst) || len > (size_t)(oend - op)) return -1;
    const uint8_t *from = op - offset;
    for (size_t i = 0; i < len; i++) op[i] = from[i];
    *opp = op + len;
    *ipp = ip;
    return 0;
}

/* What a tag byte says: output length, input advance (tag and extra bytes, and a literal's bytes),
   which bytes after the tag hold the copy offset, and the offset bits the tag itself holds.
   A literal of more than 60 bytes gets len 255 (never simple). */
typedef struct {
    uint8_t len, advance;
    uint16_t high;
    uint32_t mask;
} SnappyTag;

static SnappyTag snappy_tags[256];

static void snappy_init(void) {
    for (int tag = 0; tag < 256; tag++) {
        SnappyTag t = {0, 0, 0, 0};
        switch (tag & 3) {
        case 0: t.len = (tag >> 2) < 60 ? (uint8_t)((tag >> 2) + 1) : 255; t.advance = (uint8_t)(1 + t.len); break;
        case 1: t.len = (uint8_t)(((tag >> 2) & 7) + 4); t.advance = 2; t.mask = 0xff; t.high = (uint16_t)((tag >> 5) << 8); break;
        case 2: t.len = (uint8_t)((tag >> 2) + 1); t.advance = 3; t.mask = 0xffff; break;
        default: t.len = (uint8_t)((tag >> 2) + 1); t.advance = 5; t.mask = 0xffffffffu; break;
        }
        snappy_tags[tag] = t;
    }
}

static int snappy_uncompress(const uint8_t *src, size_t src_size, uint8_t *dst, size_t dst_size) {
    const uint8_t *ip = src, *iend = src + src_size;
    uint64_t length = 0;
    int shift = 0;
    for (;;) {
        if (ip >= iend || shift > 35) return -1;
        uint8_t b = *ip++;
        length |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
        shift += 7;
    }
    if (length != dst_size) return -1;
    uint8_t *op = dst, *const oend = dst + dst_size;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Fast loop, while both buffers have slack: an element whose length is at most 16 (and, for a
       copy, whose offset is at least 8 and within the output) is two fixed 8-byte copies, chosen
       without branching on the element type.  What limits speed is the chain from one tag to the
       next, so the next tag is loaded from arithmetic on this one alone (no table lookup):
       a literal's bytes follow its tag, a copy's 1 or 2 offset bytes do.  Everything else (long
       literals, 4-byte offsets, short offsets) takes the careful path. */
    if (iend - ip > 160 && oend - op > 64) {
        const uint8_t *ilimit = iend - 160;
        uint8_t *olimit = oend - 64;
        size_t tag = *ip++;
        while (ip < ilimit && op < olimit) {
#define STEP                                                                                     \
            {                                                                                    \
                size_t type = tag & 3;                                                           \
                size_t delta = type ? type : (tag >> 2) + 1;                                     \
                size_t next_tag = ip[delta];                                                     \
                const SnappyTag t = snappy_tags[tag];                                            \
                size_t offset = (size_t)(snappy_load64(ip) & t.mask) | t.high;                   \
                const uint8_t *from = t.mask ? op - offset : ip;                                 \
                if (__builtin_expect(!(t.len <= 16 && type != 3 && (t.mask == 0 || (offset >= 8 && offset <= (size_t)(op - dst)))), 0)) { \
                    ip--;                                                                        \
                    if (snappy_element(&ip, iend, &op, dst, oend)) return -1;                    \
                    if (ip >= iend) goto done;                                                   \
                    tag = *ip++;                                                                 \
                    continue;                                                                    \
                }                                                                                \
                uint64_t c0, c1;                                                                 \
                memcpy(&c0, from, 8);                                                            \
                memcpy(op, &c0, 8);                                                              \
                memcpy(&c1, from + 8, 8);                                                        \
                memcpy(op + 8, &c1, 8);                                                          \
                op += t.len;                                                                     \
                ip += delta + 1;                                                                 \
                tag = next_tag;                                                                  \
            }
            STEP
            STEP
#undef STEP
        }
        ip--;
    }
done:
#endif
    while (ip < iend)
        if (snappy_element(&ip, iend, &op, dst, oend)) return -1;
    return op == oend ? 0 : -1;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* ---- two streams at once ---------------------------------------------------------------------
   Each stream's speed is bound by its serial chain from one tag to the next; two independent
   chains overlap in the CPU.  The step is the fast loop's above; the rest goes the careful way. */
typedef struct { const uint8_t *ip, *iend, *ilimit; uint8_t *op, *dst, *oend, *olimit; size_t tag; } S2;
static inline __attribute__((always_inline)) int s2_step(S2 *s) {
    const uint8_t *ip = s->ip; uint8_t *op = s->op; size_t tag = s->tag;
    size_t type = tag & 3;
    size_t delta = type ? type : (tag >> 2) + 1;
    size_t next_tag = ip[delta];
    const SnappyTag t = snappy_tags[tag];
    size_t offset = (size_t)(snappy_load64(ip) & t.mask) | t.high;
    const uint8_t *from = t.mask ? op - offset : ip;
    if (__builtin_expect(t.len <= 16 && type != 3 && (t.mask == 0 || (offset >= 8 && offset <= (size_t)(op - s->dst))), 1)) {
        uint64_t c;
        memcpy(&c, from, 8); memcpy(op, &c, 8); memcpy(&c, from + 8, 8); memcpy(op + 8, &c, 8);
        s->op = op + t.len; s->ip = ip + delta + 1; s->tag = next_tag;
        return 0;
    }
    ip--;
    if (snappy_element(&ip, s->iend, &s->op, s->dst, s->oend)) return -1;
    s->ip = ip;
    if (ip >= s->iend) return 1;
    s->tag = *s->ip++;
    return 0;
}
static int s2_init(S2 *s, const uint8_t *src, size_t n, uint8_t *dst, size_t m) {
    const uint8_t *ip = src, *iend = src + n; uint64_t length = 0; int shift = 0;
    for (;;) { if (ip >= iend || shift > 35) return -1; uint8_t b = *ip++; length |= (uint64_t)(b & 0x7f) << shift; if (!(b & 0x80)) break; shift += 7; }
    if (length != m) return -1;
    s->ip = ip; s->iend = iend; s->ilimit = iend - 160; s->op = dst; s->dst = dst; s->oend = dst + m; s->olimit = s->oend - 64;
    return 0;
}
static inline int s2_fast(S2 *s) { return s->iend - s->ip > 160 && s->oend - s->op > 64; }
static int s2_finish(S2 *s, int tag_loaded) {
    /* the other stream is done: this one goes on alone, fast while it has slack */
    while (tag_loaded && s->ip < s->ilimit && s->op < s->olimit) {
        int r = s2_step(s);
        if (r < 0) return -1;
        if (r > 0) tag_loaded = 0;
    }
    if (tag_loaded) s->ip--;
    while (s->ip < s->iend) if (snappy_element(&s->ip, s->iend, &s->op, s->dst, s->oend)) return -1;
    return s->op == s->oend ? 0 : -1;
}
/* Decompress two streams; 0, or -1 with bad[k] set for the stream(s) at fault. */
static int snappy_uncompress2(const uint8_t *s0, size_t n0, uint8_t *d0, size_t m0, const uint8_t *s1, size_t n1,
                              uint8_t *d1, size_t m1, int bad[2]) {
    S2 a, b;
    bad[0] = s2_init(&a, s0, n0, d0, m0) != 0;
    bad[1] = s2_init(&b, s1, n1, d1, m1) != 0;
    if (bad[0] || bad[1]) return -1;
    int la = 0, lb = 0;
    if (s2_fast(&a) && s2_fast(&b)) {
        a.tag = *a.ip++; b.tag = *b.ip++; la = lb = 1;
        while (a.ip < a.ilimit && a.op < a.olimit && b.ip < b.ilimit && b.op < b.olimit) {
            int ra = s2_step(&a), rb = s2_step(&b);
            if (ra < 0 || rb < 0) {
                bad[0] = ra < 0;
                bad[1] = rb < 0;
                return -1;
            }
            if (ra > 0) la = 0; /* that stream ended inside a careful step: no tag loaded */
            if (rb > 0) lb = 0;
            if (ra > 0 || rb > 0) break;
        }
    }
    bad[0] = s2_finish(&a, la) != 0;
    bad[1] = s2_finish(&b, lb) != 0;
    return bad[0] || bad[1] ? -1 : 0;
}

#else
static int snappy_uncompress2(const uint8_t *s0, size_t n0, uint8_t *d0, size_t m0, const uint8_t *s1, size_t n1,
                              uint8_t *d1, size_t m1, int bad[2]) {
    bad[0] = snappy_uncompress(s0, n0, d0, m0) != 0;
    bad[1] = snappy_uncompress(s1, n1, d1, m1) != 0;
    return bad[0] || bad[1] ? -1 : 0;
}
#endif

#endif
