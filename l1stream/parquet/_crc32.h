/* CRC-32 (zlib's polynomial, as Parquet page checksums use), fast.
 *
 * On x86-64 with PCLMULQDQ: carry-less multiplication folding four 128-bit lanes, then a Barrett
 * reduction (Gopal et al., "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ", Intel
 * 2009; constants as in Linux's crc32-pclmul).  Elsewhere, and for short inputs and tails:
 * slicing-by-8 tables.  crc32_zlib(buf, n) equals Python's zlib.crc32(buf).
 */
#ifndef L1STREAM_CRC32_H
#define L1STREAM_CRC32_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t crc_table[8][256];
#if defined(__x86_64__) && defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define L1STREAM_CRC_PCLMUL 1
static int crc_has_pclmul;
#endif

static void crc32_init(void) {
#ifdef L1STREAM_CRC_PCLMUL
    __builtin_cpu_init();
    crc_has_pclmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* The raw reflected CRC register update (no pre/post inversion). */
static uint32_t crc32_tables(uint32_t crc, const uint8_t *p, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff]
              ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff]
              ^ crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
#endif
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#ifdef L1STREAM_CRC_PCLMUL
#include <immintrin.h>

__attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_pclmul(uint32_t crc, const uint8_t *p, size_t n) {
    /* n >= 64 and a multiple of 16 */
    const __m128i r2r1 = _mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL);
    const __m128i r4r3 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);
    const __m128i r5 = _mm_set_epi64x(0, 0x163cd6124LL);
    const __m128i poly = _mm_set_epi64x(0x1F7011641LL, 0x1DB710641LL);
    const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
    __m128i x1 = _mm_loadu_si128((const __m128i *)p), x2 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 32)), x4 = _mm_loadu_si128((const __m128i *)(p + 48));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    p += 64;
    n -= 64;
#define FOLD(x, k, data) _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), data)
    while (n >= 64) {
        x1 = FOLD(x1, r2r1, _mm_loadu_si128((const __m128i *)p));
        x2 = FOLD(x2, r2r1, _mm_loadu_si128((const __m128i *)(p + 16)));
        x3 = FOLD(x3, r2r1, _mm_loadu_si128((const __m128i *)(p + 32)));
        x4 = FOLD(x4, r2r1, _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        n -= 64;
    }
    x1 = FOLD(x1, r4r3, x2);
    x1 = FOLD(x1, r4r3, x3);
    x1 = FOLD(x1, r4r3, x4);
    while (n >= 16) {
        x1 = FOLD(x1, r4r3, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
#undef FOLD
    /* 128 -> 64 bits (appending 32 zero bits), then 64 -> 32, then Barrett */
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(r4r3, x1, 0x01));
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), r5, 0x00), x2);
    x2 = x1;
    x1 = _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly, 0x10), mask32);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, poly, 0x00), x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

static uint32_t crc32_zlib(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
#ifdef L1STREAM_CRC_PCLMUL
    if (crc_has_pclmul && n >= 64) {
        size_t bulk = n & ~(size_t)15;
        crc = crc32_pclmul(crc, p, bulk);
        p += bulk;
        n -= bulk;
    }
#endif
    return ~crc32_tables(crc, p, n);
}

#endif
