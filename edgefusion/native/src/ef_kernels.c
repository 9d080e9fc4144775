/*
 * edgefusion frame-path kernels: see ef_kernels.h for the conventions.
 *
 * Every loop body is written so that GCC/Clang vectorize it at -O2/-O3 without
 * -ffast-math: elementwise loops over a row (sums over rows are kept per column,
 * never reassociated), branch-free clamps, and rounding by the 1.5 * 2^23 trick
 * (exact round-half-to-even for |v| < 2^22 in the default rounding mode). Rows are
 * processed in chunks that stay in the L1 cache. Interleaved 8-bit RGB is split into float rows
 * (deinterleave3) and joined from byte rows (interleave3) in loops of their own, so that the arithmetic
 * runs in plain elementwise loops (NEON loads and stores such strided bytes with ld3 / st3; SSE2
 * has no byte shuffle, so there those two loops stay near scalar). The float operations follow the
 * numpy code operation by operation (the color restore folds two constants), so the
 * two agree to the last bit in most pixels and within one gray level everywhere.
 * The AVX2 paths (EF_AVX2) repeat the portable loops' float operations in the same order
 * and write the same bytes; both need floating-point contraction off (GCC's default with
 * -std=c99; set below for Clang), else an FMA may round differently. The multiply-adds of
 * the composition (upsampling, map blending, fusion, color restore) are written MADD / NMADD:
 * a product and a sum by default (EF_FMA 0: every build, x86 portable, AVX2 and AArch64,
 * writes the same bytes), or rounded once with -DEF_FMA=1 (fmaf, vfmadd; only for targets with
 * FMA instructions: ~5 % fewer instructions in the composition, results may differ from the
 * default by one gray level at rounding ties). For one EF_FMA setting the portable and AVX2
 * paths write the same bytes.
 */
#include "ef_kernels.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <math.h>
#include <string.h>
/* AVX2 paths on x86-64 builds for AVX2 targets (e.g. -march=x86-64-v3); elsewhere the portable loops only. */
#if defined(__AVX2__) && (defined(__x86_64__) || defined(_M_X64))
#define EF_AVX2 1
#include <immintrin.h>
#else
#define EF_AVX2 0
#endif

#ifndef EF_FMA
#define EF_FMA 0
#endif
#if EF_FMA && EF_AVX2 && !defined(__FMA__)
#error "EF_FMA=1 with the AVX2 paths needs an FMA target (e.g. -march=x86-64-v3)"
#endif
/* a * b + c and c - a * b: one rounding with EF_FMA (fmaf of an exact negation), else two. */
#if EF_FMA
#define MADD(a, b, c) fmaf((a), (b), (c))
#define NMADD(a, b, c) fmaf(-(a), (b), (c))
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#define NMADD(a, b, c) ((c) - (a) * (b))
#endif

/* Row y of a buffer with a stride in bytes, read-only (CROW) or writable (ROW). */
#define CROW(type, base, stride, y) ((const type *)((const uint8_t *)(base) + (size_t)(y) * (stride)))
#define ROW(type, base, stride, y) ((type *)((uint8_t *)(base) + (size_t)(y) * (stride)))

static int bad_size(int w, int h) { return w < 1 || h < 1; }

static float clip01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

/*
 * clip(rint(t), 0, 255) of a value on the 0..255 scale: round half to even by adding 1.5 * 2^23
 * (the integer lands in the low mantissa bits), clamp as integer. Valid for |t| < 2^22; written
 * without float-to-int conversion so that it vectorizes.
 */
static uint8_t round_u8(float t)
{
    float u = t + 12582912.0f;
    int32_t k;
    memcpy(&k, &u, sizeof k);
    k -= 0x4B400000;
    k = k < 0 ? 0 : k;
    k = k > 255 ? 255 : k;
    return (uint8_t)k;
}

/* clip(rint(255 v), 0, 255) as numpy's to_uint8 of clip(v, 0, 1) (float32 product, then round_u8). */
static uint8_t to_u8(float v) { return round_u8(v * 255.0f); }

/* ---- input normalization ---------------------------------------------------------- */

/* One row of ef_normalize_u8 (the AVX2 path: 32 pixels a step, one zero-extending load per 8). */
static void normalize_row(const uint8_t *restrict s, int w, float *restrict d)
{
    int x0 = 0;
#if EF_AVX2
    const __m256 k = _mm256_set1_ps(255.0f);
    for (; x0 + 32 <= w; x0 += 32)
        for (int i = 0; i < 32; i += 8) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(s + x0 + i)));
            _mm256_storeu_ps(d + x0 + i, _mm256_div_ps(_mm256_cvtepi32_ps(v), k));
        }
#endif
    for (int x = x0; x < w; x++) d[x] = (float)s[x] / 255.0f; /* as numpy: float32 division */
}

int ef_normalize_u8(const uint8_t *src, size_t src_stride, int w, int h, float *dst, size_t ld)
{
    if (!src || !dst || bad_size(w, h) || src_stride < (size_t)w || ld < (size_t)w) return EF_K_EARG;
    for (int y = 0; y < h; y++) normalize_row(CROW(uint8_t, src, src_stride, y), w, dst + (size_t)y * ld);
    return EF_K_OK;
}

size_t ef_percentiles_scratch_bytes(void) { return 65536u * sizeof(uint32_t); }

/* Sample of rank k (0-based) from a histogram walked from bin *bin with *below samples under it. */
static double rank_value(const uint32_t *hist, uint64_t k, int *bin, uint64_t *below)
{
    while (*below + hist[*bin] <= k) {
        *below += hist[*bin];
        (*bin)++;
    }
    return (double)*bin;
}

/* numpy.percentile's "linear" method for one percentile p, given a histogram of n samples. */
static double percentile(const uint32_t *hist, uint64_t n, double p)
{
    double q = p / 100.0;
    double vi = (double)(n - 1) * q;
    int bin = 0;
    uint64_t below = 0;
    if (vi >= (double)(n - 1)) return rank_value(hist, n - 1, &bin, &below);
    double fl = floor(vi);
    uint64_t k = (uint64_t)fl;
    double a = rank_value(hist, k, &bin, &below);
    double b = rank_value(hist, k + 1, &bin, &below);
    double t = vi - fl, diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t; /* numpy's _lerp */
}

int ef_percentiles_u16(const uint16_t *src, size_t src_stride, int w, int h, double low, double high,
                       void *scratch, double *lo, double *hi)
{
    if (!src || !scratch || !lo || !hi || bad_size(w, h) || src_stride < (size_t)w * 2u) return EF_K_EARG;
    if (!(low >= 0.0 && low < high && high <= 100.0)) return EF_K_EARG;
    if ((uint64_t)w * (uint64_t)h > UINT32_MAX) return EF_K_EARG; /* the histogram counts in uint32 */
    uint32_t *hist = (uint32_t *)scratch;
    memset(hist, 0, ef_percentiles_scratch_bytes());
    for (int y = 0; y < h; y++) {
        const uint16_t *s = CROW(uint16_t, src, src_stride, y);
        for (int x = 0; x < w; x++) hist[s[x]]++;
    }
    uint64_t n = (uint64_t)w * (uint64_t)h;
    *lo = percentile(hist, n, low);
    *hi = percentile(hist, n, high);
    return EF_K_OK;
}

int ef_stretch_u16(const uint16_t *src, size_t src_stride, int w, int h, double lo, double hi, float *dst,
                   size_t ld)
{
    if (!src || !dst || bad_size(w, h) || src_stride < (size_t)w * 2u || ld < (size_t)w) return EF_K_EARG;
    const float flo = (float)lo, range = (float)(hi - lo);
    for (int y = 0; y < h; y++) {
        const uint16_t *s = CROW(uint16_t, src, src_stride, y);
        float *d = dst + (size_t)y * ld;
        if (!(hi > lo)) {
            memset(d, 0, (size_t)w * sizeof(float));
            continue;
        }
        for (int x = 0; x < w; x++) d[x] = clip01(((float)s[x] - flo) / range);
    }
    return EF_K_OK;
}

/* ---- color ------------------------------------------------------------------------ */

int ef_channels_identical_u8(const uint8_t *src, size_t src_stride, int w, int h)
{
    if (!src || bad_size(w, h) || src_stride < (size_t)w * 3u) return 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = CROW(uint8_t, src, src_stride, y);
        int differ = 0;
        for (int x = 0; x < w; x++) differ |= (s[3 * x] ^ s[3 * x + 1]) | (s[3 * x] ^ s[3 * x + 2]);
        if (differ) return 0;
    }
    return 1;
}

/* Pixels per chunk of the row loops with temporaries on the stack (ycbcr_row, restore_chunk). */
#define CHUNK 128

/*
 * x86 without SSSE3 (e.g. the x86-64 baseline) has no byte shuffle: GCC vectorizes stride-3 byte
 * loads there into code slower than the scalar loop (the 1080p frame path ~20 % slower), so keep it scalar.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__SSE2__) && !defined(__SSSE3__)
#define EF_SCALAR_BYTES __attribute__((optimize("no-tree-vectorize")))
#else
#define EF_SCALAR_BYTES
#endif

/* Bytes of a chunk's three channels, planar (rows of CHUNK). */
typedef uint8_t chunk_bytes[3][CHUNK];

/* The channels of n <= CHUNK interleaved 8-bit pixels s as byte rows (a plain strided load: NEON ld3). */
EF_SCALAR_BYTES static void split3(const uint8_t *restrict s, int n, chunk_bytes b)
{
    for (int x = 0; x < n; x++) {
        b[0][x] = s[3 * x];
        b[1][x] = s[3 * x + 1];
        b[2][x] = s[3 * x + 2];
    }
}

/* The channels of n <= CHUNK interleaved 8-bit pixels s as float rows d0, d1, d2 (split3, then widened). */
static void deinterleave3(const uint8_t *restrict s, int n, float *restrict d0, float *restrict d1, float *restrict d2)
{
    chunk_bytes b;
    split3(s, n, b);
    for (int x = 0; x < n; x++) {
        d0[x] = b[0][x];
        d1[x] = b[1][x];
        d2[x] = b[2][x];
    }
}

/* Rows Y, Cb - 0.5, Cr - 0.5 of the RGB -> YCbCr matrix on the 0..1 scale (io/color.py, times 1/255). */
typedef struct {
    float m[3][3];
} ycc_matrix;

static ycc_matrix ycc_u8(int order)
{
    const double s = 1.0 / 255.0, kb = 0.564, kr = 0.713;
    const double rows[3][3] = {
        {0.299, 0.587, 0.114},
        {-0.299 * kb, -0.587 * kb, (1.0 - 0.114) * kb},
        {(1.0 - 0.299) * kr, -0.587 * kr, -0.114 * kr},
    };
    ycc_matrix c = {{{0.0f}}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) c.m[i][order == EF_K_BGR ? 2 - j : j] = (float)(rows[i][j] * s);
    return c;
}

static int color_order(int order) { return order == EF_K_RGB || order == EF_K_BGR; }

#if EF_AVX2
/* MADD and NMADD on 8 lanes. */
static inline __m256 avx2_madd(__m256 a, __m256 b, __m256 c)
{
#if EF_FMA
    return _mm256_fmadd_ps(a, b, c);
#else
    return _mm256_add_ps(_mm256_mul_ps(a, b), c);
#endif
}

static inline __m256 avx2_nmadd(__m256 a, __m256 b, __m256 c)
{
#if EF_FMA
    return _mm256_fnmadd_ps(a, b, c);
#else
    return _mm256_sub_ps(c, _mm256_mul_ps(a, b));
#endif
}

/*
 * 8 interleaved 3-channel pixels (24 bytes at s) for avx2_channel: bytes 0..15 in the low lane,
 * bytes 8..23 in the high lane (two loads inside the 24 bytes, none past them).
 */
static inline __m256i avx2_load_pixels(const uint8_t *s)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)s)),
                                   _mm_loadu_si128((const __m128i *)(s + 8)), 1);
}

/*
 * Byte shuffles taking channel c (0..2) of 8 pixels into 32-bit lanes: CHANNEL_MASKS[0] for
 * avx2_load_pixels (pixels 0..3 from byte 0 of the low lane, 4..7 from byte 4 of the high lane),
 * CHANNEL_MASKS[1] for one 32-byte load starting 4 bytes before the pixels (from bytes 4 and 0).
 */
#define CH(c, lo, hi) lo + c, -1, -1, -1, lo + 3 + c, -1, -1, -1, lo + 6 + c, -1, -1, -1, lo + 9 + c, -1, -1, -1, \
                      hi + c, -1, -1, -1, hi + 3 + c, -1, -1, -1, hi + 6 + c, -1, -1, -1, hi + 9 + c, -1, -1, -1
static const int8_t CHANNEL_MASKS[2][3][32] = {{{CH(0, 0, 4)}, {CH(1, 0, 4)}, {CH(2, 0, 4)}},
                                               {{CH(0, 4, 0)}, {CH(1, 4, 0)}, {CH(2, 4, 0)}}};
#undef CH

static inline __m256i avx2_channel_mask(int c) { return _mm256_loadu_si256((const __m256i *)CHANNEL_MASKS[0][c]); }

/* Channel of the 8 pixels (mask from avx2_channel_mask) as float. */
static inline __m256 avx2_channel(__m256i px, __m256i mask)
{
    return _mm256_cvtepi32_ps(_mm256_shuffle_epi8(px, mask));
}

/* Row n of the ycc matrix applied to channels p0, p1, p2 in the order of ef_ycbcr_u8's loops. */
static inline __m256 avx2_ycc_row(const ycc_matrix *c, int n, __m256 p0, __m256 p1, __m256 p2)
{
    __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(c->m[n][0]), p0), _mm256_mul_ps(_mm256_set1_ps(c->m[n][1]), p1));
    return _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(c->m[n][2]), p2));
}

/* Luma of the 8 pixels of px into y (mask: their channel shuffles, from CHANNEL_MASKS; k: the matrix's luma row). */
static inline void avx2_luma8(__m256i px, const __m256i mask[3], const __m256 k[3], float *y)
{
    __m256 v = _mm256_add_ps(_mm256_mul_ps(k[0], avx2_channel(px, mask[0])), _mm256_mul_ps(k[1], avx2_channel(px, mask[1])));
    _mm256_storeu_ps(y, _mm256_add_ps(v, _mm256_mul_ps(k[2], avx2_channel(px, mask[2]))));
}

/*
 * Luma of pixels 0 .. (returned count) - 1 of one row, 32 a pass: the 8 pixels at x >= 8 from one
 * 32-byte load at byte 3 x - 4 (pixels x .. x + 3 in the low lane, x + 4 .. x + 7 in the high
 * lane), which stays inside the row up to x + 10 <= w; the first 8 as avx2_load_pixels.
 */
static int avx2_luma_row(const uint8_t *s, int w, const ycc_matrix *c, float *y)
{
    const __m256i *masks = (const __m256i *)CHANNEL_MASKS[1];
    const __m256i mask[3] = {_mm256_loadu_si256(masks), _mm256_loadu_si256(masks + 1), _mm256_loadu_si256(masks + 2)};
    const __m256 k[3] = {_mm256_set1_ps(c->m[0][0]), _mm256_set1_ps(c->m[0][1]), _mm256_set1_ps(c->m[0][2])};
    if (w < 18) return 0;
    {
        const __m256i first[3] = {avx2_channel_mask(0), avx2_channel_mask(1), avx2_channel_mask(2)};
        avx2_luma8(avx2_load_pixels(s), first, k, y);
    }
#define PX(i) _mm256_loadu_si256((const __m256i *)(s + 3 * (x + (i)) - 4))
    int x = 8;
    for (; x + 34 <= w; x += 32) /* pixels x .. x + 31; the last load reads bytes 3 x + 68 .. 3 x + 99 < 3 w */
        avx2_luma8(PX(0), mask, k, y + x), avx2_luma8(PX(8), mask, k, y + x + 8), avx2_luma8(PX(16), mask, k, y + x + 16),
            avx2_luma8(PX(24), mask, k, y + x + 24);
    for (; x + 10 <= w; x += 8) avx2_luma8(PX(0), mask, k, y + x);
#undef PX
    return x;
}

/* ef_ycbcr_u8 for pixels 0 .. (returned count) - 1 of one row (cb, cr may be NULL). */
static int avx2_ycbcr_row(const uint8_t *s, int w, const ycc_matrix *c, float *y, float *cb, float *cr)
{
    const __m256i m0 = avx2_channel_mask(0), m1 = avx2_channel_mask(1), m2 = avx2_channel_mask(2);
    const __m256 half = _mm256_set1_ps(0.5f);
    int x = cb ? 0 : avx2_luma_row(s, w, c, y);
    for (; x + 8 <= w; x += 8) {
        __m256i px = avx2_load_pixels(s + 3 * x);
        __m256 p0 = avx2_channel(px, m0), p1 = avx2_channel(px, m1), p2 = avx2_channel(px, m2);
        _mm256_storeu_ps(y + x, avx2_ycc_row(c, 0, p0, p1, p2));
        if (!cb) continue;
        _mm256_storeu_ps(cb + x, _mm256_add_ps(avx2_ycc_row(c, 1, p0, p1, p2), half));
        _mm256_storeu_ps(cr + x, _mm256_add_ps(avx2_ycc_row(c, 2, p0, p1, p2), half));
    }
    return x;
}
#endif

/* BT.601 luma of n pixels from their channel rows p0, p1, p2 (ef_ycbcr_u8's operation order) into y (may be p0 or p1). */
static void luma_rows(const ycc_matrix *c, const float *p0, const float *p1, const float *p2, int n, float *y)
{
    const float k0 = c->m[0][0], k1 = c->m[0][1], k2 = c->m[0][2];
    for (int x = 0; x < n; x++) y[x] = k0 * p0[x] + k1 * p1[x] + k2 * p2[x];
}

/* Luma of one row into yr (and, from the AVX2 path, chroma of the pixels it did); returns where chroma is left. */
static int ycbcr_row(const uint8_t *s, int w, const ycc_matrix *c, float *yr, float *cbr, float *crr)
{
    int x0 = 0;
#if EF_AVX2
    x0 = avx2_ycbcr_row(s, w, c, yr, cbr, crr);
#else
    (void)cbr, (void)crr;
#endif
    for (int a = x0; a < w; a += CHUNK) { /* deinterleave, then an elementwise loop: both vectorize */
        float p1[CHUNK], p2[CHUNK], *y = yr + a;
        const int n = w - a < CHUNK ? w - a : CHUNK;
        deinterleave3(s + 3 * a, n, y, p1, p2);
        luma_rows(c, y, p1, p2, n, y);
    }
    return x0;
}

int ef_ycbcr_u8(const uint8_t *src, size_t src_stride, int order, int w, int h, float *y, size_t ld_y,
                float *cb, float *cr, size_t ld_c)
{
    if (!src || !y || bad_size(w, h) || !color_order(order) || src_stride < (size_t)w * 3u || ld_y < (size_t)w)
        return EF_K_EARG;
    if ((cb == NULL) != (cr == NULL) || (cb && ld_c < (size_t)w)) return EF_K_EARG;
    const ycc_matrix c = ycc_u8(order);
    for (int r = 0; r < h; r++) {
        const uint8_t *s = CROW(uint8_t, src, src_stride, r);
        float *yr = y + (size_t)r * ld_y, *cbr = cb ? cb + (size_t)r * ld_c : NULL, *crr = cr ? cr + (size_t)r * ld_c : NULL;
        const int x0 = ycbcr_row(s, w, &c, yr, cbr, crr);
        if (!cb) continue;
        for (int x = x0; x < w; x++) {
            float p0 = s[3 * x], p1 = s[3 * x + 1], p2 = s[3 * x + 2];
            cbr[x] = (c.m[1][0] * p0 + c.m[1][1] * p1 + c.m[1][2] * p2) + 0.5f;
            crr[x] = (c.m[2][0] * p0 + c.m[2][1] * p1 + c.m[2][2] * p2) + 0.5f;
        }
    }
    return EF_K_OK;
}

/* ---- frame statistics ------------------------------------------------------------- */

/*
 * Column accumulators: the plane is walked in strips of STRIP rows and chunks of COLS
 * columns. Per column, float32 sums over the strip's rows of the deviation d = x - c (c: the
 * column's value in the strip's first row), d^2, |x - right neighbour| and |x - upper
 * neighbour| are added in float64 once per strip, column x into lane x % LANES of the float64
 * sums (summed over lanes at the end). The loops are elementwise over columns, so they
 * vectorize without reassociating a reduction (the AVX2 path computes the same sums in the
 * same order, bit for bit); deviations from a nearby value keep the variance E[x^2] - mean^2
 * at the precision of the deviations.
 */
#define STRIP EF_K_STRIP
#define COLS 128
#define LANES 4

typedef struct {
    double s1[LANES], s2[LANES], gx[LANES], gy[LANES]; /* sums of x, x^2, |horizontal|, |vertical differences| */
} moments;

/*
 * Adds one column's strip sums (deviations d = x - c over rows rows) into lane l: sum x = s + rows c = t,
 * sum x^2 = q + 2 c s + rows c^2 = q + c (s + t).
 */
static void add_column(moments *m, int l, float c, float s, float q, float gx, float gy, int rows)
{
    const double ci = c, si = s, t = si + rows * ci;
    m->s1[l] += t;
    m->s2[l] += (double)q + ci * (si + t);
    m->gx[l] += gx;
    m->gy[l] += gy;
}

/* Columns x0 .. x0 + n - 1 of rows y0 .. y0 + rows - 1 of plane p (w columns), added into m. */
static void stats_chunk(const float *p, size_t ld, int w, int x0, int n, int y0, int rows, moments *m)
{
    float c[COLS], s[COLS], q[COLS], gx[COLS], gy[COLS];
    const float *first = p + (size_t)y0 * ld + x0;
    const int pairs = x0 + n < w ? n : n - 1; /* (x, x + 1) inside the row */
    for (int i = 0; i < n; i++) {
        c[i] = first[i];
        s[i] = q[i] = gx[i] = gy[i] = 0.0f;
    }
    int y = y0;
    for (; y + 4 <= y0 + rows; y += 4) { /* four rows per pass: the accumulators are loaded and stored once */
        const float *restrict r0 = p + (size_t)y * ld + x0, *restrict r1 = r0 + ld, *restrict r2 = r1 + ld;
        const float *restrict r3 = r2 + ld, *restrict u = y > 0 ? r0 - ld : r0;
        for (int i = 0; i < pairs; i++) { /* sums in row order, as one row at a time */
            float d0 = r0[i] - c[i], d1 = r1[i] - c[i], d2 = r2[i] - c[i], d3 = r3[i] - c[i];
            s[i] = s[i] + d0 + d1 + d2 + d3;
            q[i] = q[i] + d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3;
            gx[i] = gx[i] + fabsf(r0[i + 1] - r0[i]) + fabsf(r1[i + 1] - r1[i]) + fabsf(r2[i + 1] - r2[i]) +
                    fabsf(r3[i + 1] - r3[i]);
            gy[i] = gy[i] + fabsf(r0[i] - u[i]) + fabsf(r1[i] - r0[i]) + fabsf(r2[i] - r1[i]) + fabsf(r3[i] - r2[i]);
        }
        for (int k = 0; k < 4 && pairs < n; k++) { /* the frame's last column has no right neighbour */
            const float *r = r0 + (size_t)k * ld, *up = k ? r - ld : u;
            float d = r[pairs] - c[pairs];
            s[pairs] += d;
            q[pairs] += d * d;
            gy[pairs] += fabsf(r[pairs] - up[pairs]);
        }
    }
    for (; y < y0 + rows; y++) {
        const float *restrict r = p + (size_t)y * ld + x0;
        const float *restrict u = y > 0 ? r - ld : r; /* row 0: |x - x| adds 0 */
        for (int i = 0; i < n; i++) {
            float d = r[i] - c[i];
            s[i] += d;
            q[i] += d * d;
            gy[i] += fabsf(r[i] - u[i]);
        }
        for (int i = 0; i < pairs; i++) gx[i] += fabsf(r[i + 1] - r[i]);
    }
    for (int i = 0; i < n; i++) add_column(m, (x0 + i) % LANES, c[i], s[i], q[i], gx[i], gy[i], rows);
}

#if EF_AVX2
/* add_column for the 8 columns of c, s, q, gx, gy: columns 0..3, then 4..7, into lanes 0..3 (acc: s1, s2, gx, gy). */
static inline void avx2_add_columns(__m256d acc[4], __m256 c, __m256 s, __m256 q, __m256 gx, __m256 gy, int rows)
{
    const __m256d n = _mm256_set1_pd((double)rows);
    for (int half = 0; half < 2; half++) {
        __m128 c4 = half ? _mm256_extractf128_ps(c, 1) : _mm256_castps256_ps128(c);
        __m128 s4 = half ? _mm256_extractf128_ps(s, 1) : _mm256_castps256_ps128(s);
        __m128 q4 = half ? _mm256_extractf128_ps(q, 1) : _mm256_castps256_ps128(q);
        __m128 x4 = half ? _mm256_extractf128_ps(gx, 1) : _mm256_castps256_ps128(gx);
        __m128 y4 = half ? _mm256_extractf128_ps(gy, 1) : _mm256_castps256_ps128(gy);
        __m256d ci = _mm256_cvtps_pd(c4), si = _mm256_cvtps_pd(s4);
        const __m256d t = _mm256_add_pd(si, _mm256_mul_pd(n, ci));
        acc[0] = _mm256_add_pd(acc[0], t);
        acc[1] = _mm256_add_pd(acc[1], _mm256_add_pd(_mm256_cvtps_pd(q4), _mm256_mul_pd(ci, _mm256_add_pd(si, t))));
        acc[2] = _mm256_add_pd(acc[2], _mm256_cvtps_pd(x4));
        acc[3] = _mm256_add_pd(acc[3], _mm256_cvtps_pd(y4));
    }
}

/* One row r of avx2_stats_strip (up: the row above, c: the strip's first row) added into the sums; returns row r. */
static inline __m256 avx2_stats_row(const float *r, __m256 up, __m256 c, __m256 *s, __m256 *q, __m256 *gx, __m256 *gy)
{
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)); /* fabsf */
    __m256 v = _mm256_loadu_ps(r), d = _mm256_sub_ps(v, c);
    *s = _mm256_add_ps(*s, d);
    *q = _mm256_add_ps(*q, _mm256_mul_ps(d, d));
    *gx = _mm256_add_ps(*gx, _mm256_and_ps(_mm256_sub_ps(v, _mm256_loadu_ps(r + 1)), magnitude)); /* |a - b| = |b - a| */
    *gy = _mm256_add_ps(*gy, _mm256_and_ps(_mm256_sub_ps(v, up), magnitude));
    return v;
}

/*
 * stats_chunk over 8 columns at a time for rows y0 .. y0 + rows - 1, sums kept in registers down
 * the strip (same operations per column as stats_chunk). Returns the columns done: a multiple of
 * 8 that leaves at least the frame's last column (no right neighbour) to stats_chunk.
 */
static int avx2_stats_strip(const float *p, size_t ld, int w, int y0, int rows, moments *m)
{
    double *sums[4] = {m->s1, m->s2, m->gx, m->gy};
    __m256d acc[4];
    for (int k = 0; k < 4; k++) acc[k] = _mm256_loadu_pd(sums[k]);
    int x = 0;
    for (; x + 8 < w; x += 8) {
        const float *col = p + (size_t)y0 * ld + x;
        const __m256 c = _mm256_loadu_ps(col);
        __m256 up = y0 > 0 ? _mm256_loadu_ps(col - ld) : c;
        __m256 s = _mm256_setzero_ps(), q = s, gx = s, gy = s;
        int y = 0;
        for (; y + 1 < rows; y += 2) { /* rows in order, two per pass (no register copies) */
            up = avx2_stats_row(col + (size_t)y * ld, up, c, &s, &q, &gx, &gy);
            up = avx2_stats_row(col + (size_t)(y + 1) * ld, up, c, &s, &q, &gx, &gy);
        }
        if (y < rows) avx2_stats_row(col + (size_t)y * ld, up, c, &s, &q, &gx, &gy);
        avx2_add_columns(acc, c, s, q, gx, gy, rows);
    }
    for (int k = 0; k < 4; k++) _mm256_storeu_pd(sums[k], acc[k]);
    return x;
}
#endif

/* [mean, population std, grad] of a w x h plane from its sums of x, x^2, |horizontal| and |vertical differences|. */
static void finish_stats(double s1, double s2, double gx, double gy, int w, int h, float *mean, float *std, float *grad)
{
    double n = (double)w * (double)h;
    double mu = s1 / n, var = s2 / n - mu * mu;
    *mean = (float)mu;
    *std = (float)sqrt(var > 0.0 ? var : 0.0);
    double g = (w > 1 ? gx / ((double)(w - 1) * h) : 0.0) + (h > 1 ? gy / ((double)(h - 1) * w) : 0.0);
    *grad = (float)g;
}

/* Rows y0 .. y0 + rows - 1 (rows <= STRIP; y0 a multiple of STRIP) of a float plane added into m. */
static void plane_stats_strip(const float *p, size_t ld, int w, int y0, int rows, moments *m)
{
    int x0 = 0;
#if EF_AVX2
    x0 = avx2_stats_strip(p, ld, w, y0, rows, m);
#endif
    for (; x0 < w; x0 += COLS) stats_chunk(p, ld, w, x0, w - x0 < COLS ? w - x0 : COLS, y0, rows, m);
}

/* (mean, population std, grad) of a w x h float plane from its strip sums m. */
static void plane_stats_finish(const moments *m, int w, int h, float *mean, float *std, float *grad)
{
    double s1 = 0.0, s2 = 0.0, gx = 0.0, gy = 0.0;
    for (int l = 0; l < LANES; l++) s1 += m->s1[l], s2 += m->s2[l], gx += m->gx[l], gy += m->gy[l];
    finish_stats(s1, s2, gx, gy, w, h, mean, std, grad);
}

/* total += part, lane by lane: strip sums are added in strip order, whatever computed them. */
static void add_moments(moments *total, const moments *part)
{
    for (int l = 0; l < LANES; l++) {
        total->s1[l] += part->s1[l];
        total->s2[l] += part->s2[l];
        total->gx[l] += part->gx[l];
        total->gy[l] += part->gy[l];
    }
}

/* (mean, population std, grad) of one float plane: each strip's sums from zero, added in strip order. */
static void plane_stats(const float *p, size_t ld, int w, int h, float *mean, float *std, float *grad)
{
    moments m, strip;
    memset(&m, 0, sizeof m);
    for (int y0 = 0; y0 < h; y0 += STRIP) {
        memset(&strip, 0, sizeof strip);
        plane_stats_strip(p, ld, w, y0, h - y0 < STRIP ? h - y0 : STRIP, &strip);
        add_moments(&m, &strip);
    }
    plane_stats_finish(&m, w, h, mean, std, grad);
}

/* Exact integer sums of v, v^2, |horizontal| and |vertical differences| of 8-bit samples. */
typedef struct {
    uint64_t s1, s2, gx, gy;
} moments_u8;

/* |a - b| of two bytes as max - min in bytes (SSE2 pmaxub / pminub, NEON uabd). */
static uint32_t absdiff_u8(uint8_t a, uint8_t b)
{
    uint8_t hi = a > b ? a : b, lo = a > b ? b : a;
    return (uint8_t)(hi - lo);
}

/* Pixels per uint32 partial sum of stats_u8_row: 4096 * 255^2 < 2^32 (integer sums: exact in any order). */
#define U8_SPAN 4096

/* Pixels x0 .. w - 1 of row r (up: the row above, or r itself for the first row) added into m. */
static void stats_u8_row(const uint8_t *restrict r, const uint8_t *restrict up, int x0, int w, moments_u8 *m)
{
    for (int a = x0; a < w; a += U8_SPAN) {
        const int b = w - a < U8_SPAN ? w : a + U8_SPAN, bx = b < w ? b : w - 1;
        uint32_t s1 = 0, s2 = 0, gx = 0, gy = 0; /* 32-bit lanes: the loops vectorize with SSE2 and NEON */
        for (int x = a; x < b; x++) {
            uint32_t v = r[x];
            s1 += v;
            s2 += v * v;
            gy += absdiff_u8(r[x], up[x]);
        }
        for (int x = a; x < bx; x++) gx += absdiff_u8(r[x + 1], r[x]);
        m->s1 += s1, m->s2 += s2, m->gx += gx, m->gy += gy;
    }
}

#if EF_AVX2
/* Sum of the four 64-bit lanes. */
static inline uint64_t avx2_sum_u64(__m256i v)
{
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(t) + (uint64_t)_mm_extract_epi64(t, 1);
}

/* 32 zero bytes, then 32 bytes 0xFF: loaded from TAIL_MASK + 32 - k, the first k bytes are zero. */
static const uint8_t TAIL_MASK[64] = {
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
};

/* Sum of squares of the 32 bytes of v, in 64-bit lanes. */
static inline __m256i avx2_squares_u8(__m256i v)
{
    const __m256i zero = _mm256_setzero_si256();
    __m256i lo = _mm256_unpacklo_epi8(v, zero), hi = _mm256_unpackhi_epi8(v, zero);
    __m256i q = _mm256_add_epi32(_mm256_madd_epi16(lo, lo), _mm256_madd_epi16(hi, hi));
    return _mm256_add_epi64(_mm256_unpacklo_epi32(q, zero), _mm256_unpackhi_epi32(q, zero));
}

/* The 32 pixels at p (u: the row above) added into the sums of avx2_stats_u8_row (squares into 32-bit lanes q). */
static inline void avx2_stats_u8_step(const uint8_t *p, const uint8_t *u, __m256i *s1, __m256i *gx, __m256i *gy, __m256i *q)
{
    const __m256i zero = _mm256_setzero_si256(), v = _mm256_loadu_si256((const __m256i *)p);
    *s1 = _mm256_add_epi64(*s1, _mm256_sad_epu8(v, zero));
    *gx = _mm256_add_epi64(*gx, _mm256_sad_epu8(v, _mm256_loadu_si256((const __m256i *)(p + 1))));
    *gy = _mm256_add_epi64(*gy, _mm256_sad_epu8(v, _mm256_loadu_si256((const __m256i *)u)));
    const __m256i lo = _mm256_unpacklo_epi8(v, zero), hi = _mm256_unpackhi_epi8(v, zero);
    *q = _mm256_add_epi32(*q, _mm256_add_epi32(_mm256_madd_epi16(lo, lo), _mm256_madd_epi16(hi, hi)));
}

/*
 * stats_u8_row over 32 pixels at a time (psadbw against zero, the right and the upper
 * neighbours; squares by pmaddwd in 32-bit lanes, widened every 8192 pixels); the last 1..32
 * pixels of a row of w >= 33 as its last 32 bytes with the pixels already counted masked out
 * (horizontal pairs taken as (x - 1, x) there). Returns the pixels done: w, or 0 for w < 33
 * (stats_u8_row does the rest; integer sums, so the order does not matter).
 */
static int avx2_stats_u8_row(const uint8_t *r, const uint8_t *up, int w, moments_u8 *m)
{
    const __m256i zero = _mm256_setzero_si256();
    __m256i s1 = zero, s2 = zero, gx = zero, gy = zero;
    int x = 0;
    while (x + 33 <= w) {
        __m256i q = zero; /* <= 2 * 2 * 255^2 per lane and step: 256 steps fit in 32 bits; widened below */
        const int steps = (w - 1 - x) / 32 < 256 ? (w - 1 - x) / 32 : 256; /* each with x + 33 <= w */
        const uint8_t *p = r + x, *u = up + x;
        for (int pairs = steps / 2; pairs > 0; pairs--, p += 64, u += 64) { /* two steps per pass: fewer loop instructions */
            avx2_stats_u8_step(p, u, &s1, &gx, &gy, &q);
            avx2_stats_u8_step(p + 32, u + 32, &s1, &gx, &gy, &q);
        }
        if (steps % 2) avx2_stats_u8_step(p, u, &s1, &gx, &gy, &q);
        x += 32 * steps;
        s2 = _mm256_add_epi64(s2, _mm256_add_epi64(_mm256_unpacklo_epi32(q, zero), _mm256_unpackhi_epi32(q, zero)));
    }
    if (w >= 33) { /* pixels x .. w - 1 (1..32 of them): bytes b .. w - 1, the first x - b masked out */
        const int b = w - 32, skip = x - b;
        const __m256i keep = _mm256_loadu_si256((const __m256i *)(TAIL_MASK + 32 - skip));
        const __m256i pairs = _mm256_loadu_si256((const __m256i *)(TAIL_MASK + 31 - skip)); /* (p - 1, p), p - 1 >= x */
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(r + b)), v = _mm256_and_si256(raw, keep);
        s1 = _mm256_add_epi64(s1, _mm256_sad_epu8(v, zero));
        s2 = _mm256_add_epi64(s2, avx2_squares_u8(v));
        gy = _mm256_add_epi64(gy, _mm256_sad_epu8(v, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(up + b)), keep)));
        __m256i left = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(r + b - 1)), pairs);
        gx = _mm256_add_epi64(gx, _mm256_sad_epu8(_mm256_and_si256(raw, pairs), left));
        x = w;
    }
    m->s1 += avx2_sum_u64(s1), m->s2 += avx2_sum_u64(s2), m->gx += avx2_sum_u64(gx), m->gy += avx2_sum_u64(gy);
    return x;
}
#endif

/* Rows y0 .. y1 - 1 of an 8-bit plane added into m. */
static void stats_u8_rows(const uint8_t *ir, size_t ir_stride, int w, int y0, int y1, moments_u8 *m)
{
    for (int y = y0; y < y1; y++) {
        const uint8_t *r = CROW(uint8_t, ir, ir_stride, y), *up = y ? CROW(uint8_t, ir, ir_stride, y - 1) : r;
        int x0 = 0;
#if EF_AVX2
        x0 = avx2_stats_u8_row(r, up, w, m);
#endif
        stats_u8_row(r, up, x0, w, m);
    }
}

/* out[0], out[1], out[4] (IR mean, std, grad; ir = v / 255) from the integer sums of a w x h 8-bit plane. */
static void stats_u8_finish(const moments_u8 *m, int w, int h, float out[EF_K_N_STATS])
{
    const double k = 1.0 / 255.0;
    finish_stats((double)m->s1 * k, (double)m->s2 * (k * k), (double)m->gx * k, (double)m->gy * k, w, h, &out[0], &out[1],
                 &out[4]);
}

int ef_frame_stats(const float *ir, const float *vis, size_t ld, int w, int h, float out[EF_K_N_STATS])
{
    if (!ir || !vis || !out || bad_size(w, h) || ld < (size_t)w) return EF_K_EARG;
    plane_stats(ir, ld, w, h, &out[0], &out[1], &out[4]);
    plane_stats(vis, ld, w, h, &out[2], &out[3], &out[5]);
    return EF_K_OK;
}

int ef_frame_stats_u8(const uint8_t *ir, size_t ir_stride, const float *vis, size_t ld, int w, int h,
                      float out[EF_K_N_STATS])
{
    if (!ir || !vis || !out || bad_size(w, h) || ir_stride < (size_t)w || ld < (size_t)w) return EF_K_EARG;
    moments_u8 m = {0, 0, 0, 0};
    stats_u8_rows(ir, ir_stride, w, 0, h, &m);
    stats_u8_finish(&m, w, h, out);
    plane_stats(vis, ld, w, h, &out[2], &out[3], &out[5]);
    return EF_K_OK;
}

/* ---- stride padding --------------------------------------------------------------- */

/* Columns w .. pw - 1 of one row: copies of column w - 1. */
static void pad_right(float *row, int w, int pw)
{
    const float edge = row[w - 1];
    for (int x = w; x < pw; x++) row[x] = edge;
}

/* Rows h .. ph - 1 (pw wide): copies of row h - 1. */
static void pad_bottom(float *plane, size_t ld, int h, int pw, int ph)
{
    const float *last = plane + (size_t)(h - 1) * ld;
    for (int y = h; y < ph; y++) memcpy(plane + (size_t)y * ld, last, (size_t)pw * sizeof(float));
}

int ef_pad_edge(float *plane, size_t ld, int w, int h, int pw, int ph)
{
    if (!plane || bad_size(w, h) || pw < w || ph < h || ld < (size_t)pw) return EF_K_EARG;
    for (int y = 0; y < h; y++) pad_right(plane + (size_t)y * ld, w, pw);
    pad_bottom(plane, ld, h, pw, ph);
    return EF_K_OK;
}

/* ---- the input pass: normalization, luma, padding and statistics in one walk ------- */

/* The statistics of one strip of the input pass, from zero (ef_prepare_u8_rows' partials). */
typedef struct {
    moments ir, vis;   /* float planes (ir: the stretched 16-bit IR; unused for 8-bit IR) */
    moments_u8 ir_u8;  /* 8-bit IR source */
} strip_moments;

size_t ef_prepare_partials_bytes(int h) { return h < 1 ? 0 : (size_t)((h + STRIP - 1) / STRIP) * sizeof(strip_moments); }

static int bad_prepare(const uint8_t *ir, size_t ir_stride, const uint8_t *vis, size_t vis_stride, int vis_format, int w,
                       int h, int pw, const float *ir_plane, const float *vis_plane, size_t ld)
{
    const size_t vis_row = (size_t)w * (vis_format == EF_K_GRAY ? 1u : 3u);
    return !vis || !ir_plane || !vis_plane || bad_size(w, h) || pw < w || ld < (size_t)pw ||
           (vis_format != EF_K_GRAY && !color_order(vis_format)) || vis_stride < vis_row || (ir && ir_stride < (size_t)w);
}

/* Rows y0 .. y1 - 1 of both planes: normalized IR (when ir), visible luma, right padding. */
static void prepare_rows(const uint8_t *ir, size_t ir_stride, const uint8_t *vis, size_t vis_stride, int vis_format,
                         int w, int pw, int y0, int y1, float *ir_plane, float *vis_plane, size_t ld)
{
    const ycc_matrix c = ycc_u8(vis_format == EF_K_BGR ? EF_K_BGR : EF_K_RGB);
    for (int y = y0; y < y1; y++) {
        float *ir_row = ir_plane + (size_t)y * ld, *vis_row_f = vis_plane + (size_t)y * ld;
        const uint8_t *v = CROW(uint8_t, vis, vis_stride, y);
        if (ir) normalize_row(CROW(uint8_t, ir, ir_stride, y), w, ir_row);
        if (vis_format == EF_K_GRAY)
            normalize_row(v, w, vis_row_f);
        else
            ycbcr_row(v, w, &c, vis_row_f, NULL, NULL);
        pad_right(ir_row, w, pw);
        pad_right(vis_row_f, w, pw);
    }
}

/* The statistics of the strip of rows y0 .. y1 - 1 (written, as is row y0 - 1) into m, from zero. */
static void strip_stats(const uint8_t *ir, size_t ir_stride, int w, int y0, int y1, const float *ir_plane,
                        const float *vis_plane, size_t ld, strip_moments *m)
{
    memset(m, 0, sizeof *m);
    if (ir)
        stats_u8_rows(ir, ir_stride, w, y0, y1, &m->ir_u8);
    else
        plane_stats_strip(ir_plane, ld, w, y0, y1 - y0, &m->ir);
    plane_stats_strip(vis_plane, ld, w, y0, y1 - y0, &m->vis);
}

/* total += part (strip sums in strip order). */
static void add_strip(strip_moments *total, const strip_moments *part)
{
    add_moments(&total->ir, &part->ir);
    add_moments(&total->vis, &part->vis);
    total->ir_u8.s1 += part->ir_u8.s1, total->ir_u8.s2 += part->ir_u8.s2;
    total->ir_u8.gx += part->ir_u8.gx, total->ir_u8.gy += part->ir_u8.gy;
}

/* The 6 statistics of a w x h frame from the sum of its strips. */
static void strip_finish(int ir_u8, const strip_moments *m, int w, int h, float stats[EF_K_N_STATS])
{
    if (ir_u8)
        stats_u8_finish(&m->ir_u8, w, h, stats);
    else
        plane_stats_finish(&m->ir, w, h, &stats[0], &stats[1], &stats[4]);
    plane_stats_finish(&m->vis, w, h, &stats[2], &stats[3], &stats[5]);
}

int ef_prepare_u8(const uint8_t *ir, size_t ir_stride, const uint8_t *vis, size_t vis_stride, int vis_format, int w,
                  int h, int pw, int ph, float *ir_plane, float *vis_plane, size_t ld, float stats[EF_K_N_STATS])
{
    if (bad_prepare(ir, ir_stride, vis, vis_stride, vis_format, w, h, pw, ir_plane, vis_plane, ld) || ph < h) return EF_K_EARG;
    strip_moments total, strip;
    memset(&total, 0, sizeof total);
    for (int y0 = 0; y0 < h; y0 += STRIP) { /* a strip of rows is written, then its statistics read it from cache */
        const int y1 = h - y0 < STRIP ? h : y0 + STRIP;
        prepare_rows(ir, ir_stride, vis, vis_stride, vis_format, w, pw, y0, y1, ir_plane, vis_plane, ld);
        if (!stats) continue;
        strip_stats(ir, ir_stride, w, y0, y1, ir_plane, vis_plane, ld, &strip);
        add_strip(&total, &strip);
    }
    pad_bottom(ir_plane, ld, h, pw, ph);
    pad_bottom(vis_plane, ld, h, pw, ph);
    if (stats) strip_finish(ir != NULL, &total, w, h, stats);
    return EF_K_OK;
}

int ef_prepare_u8_rows(const uint8_t *ir, size_t ir_stride, const uint8_t *vis, size_t vis_stride, int vis_format,
                       int w, int h, int pw, int y0, int y1, int first_stats, float *ir_plane, float *vis_plane,
                       size_t ld, void *partials)
{
    if (bad_prepare(ir, ir_stride, vis, vis_stride, vis_format, w, h, pw, ir_plane, vis_plane, ld) || y0 < 0 ||
        y0 % STRIP || y1 <= y0 || y1 > h || (y1 % STRIP && y1 != h))
        return EF_K_EARG;
    strip_moments *parts = (strip_moments *)partials;
    for (int s0 = y0; s0 < y1; s0 += STRIP) {
        const int s1 = y1 - s0 < STRIP ? y1 : s0 + STRIP;
        prepare_rows(ir, ir_stride, vis, vis_stride, vis_format, w, pw, s0, s1, ir_plane, vis_plane, ld);
        if (parts && (s0 > y0 || first_stats || y0 == 0))
            strip_stats(ir, ir_stride, w, s0, s1, ir_plane, vis_plane, ld, &parts[s0 / STRIP]);
    }
    return EF_K_OK;
}

int ef_prepare_u8_strip_stats(const uint8_t *ir, size_t ir_stride, int w, int h, int y0, const float *ir_plane,
                              const float *vis_plane, size_t ld, void *partials)
{
    if (!partials || !ir_plane || !vis_plane || bad_size(w, h) || ld < (size_t)w || (ir && ir_stride < (size_t)w) ||
        y0 < 0 || y0 >= h || y0 % STRIP)
        return EF_K_EARG;
    strip_stats(ir, ir_stride, w, y0, h - y0 < STRIP ? h : y0 + STRIP, ir_plane, vis_plane, ld,
                (strip_moments *)partials + y0 / STRIP);
    return EF_K_OK;
}

int ef_prepare_u8_finish(int ir_u8, int w, int h, int pw, int ph, float *ir_plane, float *vis_plane, size_t ld,
                         const void *partials, float stats[EF_K_N_STATS])
{
    if (!ir_plane || !vis_plane || bad_size(w, h) || pw < w || ph < h || ld < (size_t)pw || (stats && !partials))
        return EF_K_EARG;
    pad_bottom(ir_plane, ld, h, pw, ph);
    pad_bottom(vis_plane, ld, h, pw, ph);
    if (!stats) return EF_K_OK;
    strip_moments total;
    const strip_moments *parts = (const strip_moments *)partials;
    memset(&total, 0, sizeof total);
    for (int s = 0; s * STRIP < h; s++) add_strip(&total, &parts[s]);
    strip_finish(ir_u8, &total, w, h, stats);
    return EF_K_OK;
}

/* ---- color restore + uint8 ------------------------------------------------------- */

/*
 * Color restore, written as R = Y + kr dr, G = Y - kgr dr - kgb db, B = Y + kb db. With planar
 * chroma dr = Cr - 0.5, db = Cb - 0.5 and k = (1.403, 0.714, 0.344, 1.773) (io/color.py), on the
 * 0..1 scale; with an 8-bit source the whole formula runs on the 0..255 scale of the output:
 * Y = 255 Y_f, dr = R_s - 255 Y_s, db = B_s - 255 Y_s and the chroma factors 0.713 and 0.564
 * folded into k: the same formula without computing Cb and Cr, nor scaling the three channels.
 */
typedef struct {
    float kr, kgr, kgb, kb;
} restore_gains;

/*
 * Channels of n pixels from luma v and color differences dr, db (see restore_gains), each times
 * scale (255 on the 0..1 scale, 1 on the 0..255 scale: x * 1 is x), rounded by round_u8 into the
 * planar rows o. Elementwise, so it vectorizes; the byte interleave is left to interleave3.
 */
static inline void restore_planar(const float *restrict v, float vscale, const float *restrict dr,
                                  const float *restrict db, float offset, restore_gains k, float scale, int n,
                                  chunk_bytes o)
{
    for (int x = 0; x < n; x++) {
        float vv = v[x] * vscale, r = dr[x] - offset, b = db[x] - offset;
        float red = MADD(r, k.kr, vv), green = NMADD(k.kgb, b, NMADD(k.kgr, r, vv)), blue = MADD(b, k.kb, vv);
        o[0][x] = round_u8(red * scale);
        o[1][x] = round_u8(green * scale);
        o[2][x] = round_u8(blue * scale);
    }
}

/* n pixels of 3 bytes from the planar rows c0, c1, c2 (a plain interleave: NEON st3). */
static void interleave3(const uint8_t *restrict c0, const uint8_t *restrict c1, const uint8_t *restrict c2, int n,
                        uint8_t *restrict out)
{
    for (int x = 0; x < n; x++) {
        out[3 * x] = c0[x];
        out[3 * x + 1] = c1[x];
        out[3 * x + 2] = c2[x];
    }
}

/*
 * Output pixels x0 .. x0 + n - 1 of row r from the fused luma y (clipped to [0, 1] here unless
 * clipped is set) and, for an 8-bit chroma source, its luma ys (both already offset to x0;
 * ys NULL: computed here). With an 8-bit source: dr = R_s - 255 Y_s, db = B_s - 255 Y_s
 * (NMADD, on the 0..255 scale); with planar chroma dr = Cr - 0.5, db = Cb - 0.5.
 */
static void restore_chunk(const float *y, int clipped, const float *ys, int n, const ef_chroma *chroma, int r,
                          int x0, uint8_t *restrict out, int format)
{
    float vbuf[CHUNK], tmp[CHUNK], dr[CHUNK], db[CHUNK];
    chunk_bytes bytes;
    const float *restrict v = y;
    const int bgr = format == EF_K_BGR;
    if (!clipped) {
        for (int x = 0; x < n; x++) vbuf[x] = clip01(y[x]);
        v = vbuf;
    }
    if (format == EF_K_GRAY) {
        for (int x = 0; x < n; x++) out[x] = to_u8(v[x]);
        return;
    }
    if (!chroma || (!chroma->src && !chroma->cb)) {
        for (int x = 0; x < n; x++) bytes[0][x] = to_u8(v[x]);
        interleave3(bytes[0], bytes[0], bytes[0], n, out);
        return;
    }
    if (chroma->src) {
        const uint8_t *s = CROW(uint8_t, chroma->src, chroma->src_stride, r) + 3 * x0;
        const int src_bgr = chroma->order == EF_K_BGR;
        const restore_gains k = {(float)(1.403 * 0.713), (float)(0.714 * 0.713), (float)(0.344 * 0.564),
                                 (float)(1.773 * 0.564)};
        float *c0 = src_bgr ? db : dr, *c2 = src_bgr ? dr : db; /* source channels 0 and 2: red into dr */
        deinterleave3(s, n, c0, tmp, c2);
        if (!ys) {
            const ycc_matrix c = ycc_u8(chroma->order);
            luma_rows(&c, c0, tmp, c2, n, tmp);
            ys = tmp;
        }
        for (int x = 0; x < n; x++) {
            dr[x] = NMADD(ys[x], 255.0f, dr[x]);
            db[x] = NMADD(ys[x], 255.0f, db[x]);
        }
        restore_planar(v, 255.0f, dr, db, 0.0f, k, 1.0f, n, bytes);
    } else {
        const float *cb = chroma->cb + (size_t)r * chroma->ld + x0, *cr = chroma->cr + (size_t)r * chroma->ld + x0;
        const restore_gains k = {1.403f, 0.714f, 0.344f, 1.773f};
        restore_planar(v, 1.0f, cr, cb, 0.5f, k, 255.0f, n, bytes);
    }
    interleave3(bytes[bgr ? 2 : 0], bytes[1], bytes[bgr ? 0 : 2], n, out);
}

/* One output row (w pixels) from the fused luma row y, the source luma row ys (or NULL) and row r of the chroma. */
static void restore_row(const float *y, int clipped, const float *ys, int w, const ef_chroma *chroma, int r,
                        uint8_t *out, int format)
{
    const int channels = format == EF_K_GRAY ? 1 : 3;
    for (int x0 = 0; x0 < w; x0 += CHUNK) {
        int n = w - x0 < CHUNK ? w - x0 : CHUNK;
        restore_chunk(y + x0, clipped, ys ? ys + x0 : NULL, n, chroma, r, x0, out + (size_t)x0 * channels, format);
    }
}

/* Checks shared by ef_restore_u8 and ef_compose_u8. */
static int bad_output(int w, const ef_chroma *chroma, const uint8_t *out, size_t out_stride, int format)
{
    if (!out || (format != EF_K_GRAY && !color_order(format))) return 1;
    if (out_stride < (size_t)w * (format == EF_K_GRAY ? 1u : 3u)) return 1;
    if (!chroma) return 0;
    if (chroma->src) return !color_order(chroma->order) || chroma->src_stride < (size_t)w * 3u;
    if ((chroma->cb == NULL) != (chroma->cr == NULL)) return 1;
    return chroma->cb && chroma->ld < (size_t)w;
}

int ef_restore_u8(const float *y, size_t ld_y, int w, int h, const ef_chroma *chroma, uint8_t *out,
                  size_t out_stride, int out_format)
{
    if (!y || bad_size(w, h) || ld_y < (size_t)w || bad_output(w, chroma, out, out_stride, out_format))
        return EF_K_EARG;
    for (int r = 0; r < h; r++)
        restore_row(y + (size_t)r * ld_y, 0, NULL, w, chroma, r, ROW(uint8_t, out, out_stride, r), out_format);
    return EF_K_OK;
}

/* ---- composition ------------------------------------------------------------------ */

/* Phase p of x4 upsampling blends clamped low-res samples (i + OFF[p] - 1, i + OFF[p]) with weight WT[p]. */
static const int OFF[EF_K_SCALE] = {0, 0, 1, 1};
static const float WT[EF_K_SCALE] = {0.625f, 0.875f, 0.125f, 0.375f};

static size_t align4(size_t n) { return (n + 3u) & ~(size_t)3u; }

size_t ef_compose_scratch_bytes(int pw, int ph)
{
    (void)ph;
    if (pw < 1) return 0;
    size_t wide = align4((size_t)pw), low = align4((size_t)pw / EF_K_SCALE + 1u);
    /* 3 rows x 4 maps of column-upsampled maps, one low-res row */
    return (3u * EF_K_N_MAPS * wide + low) * sizeof(float);
}

/* Samples 4 i .. 4 i + 3 of the x4 upsampled row v (n samples), edge clamped. */
static void upsample_at(const float *v, int n, int i, float *wide)
{
    for (int q = 0; q < EF_K_SCALE; q++) {
        int i0 = i + OFF[q] - 1, i1 = i + OFF[q];
        float a = v[i0 < 0 ? 0 : i0], b = v[i1 > n - 1 ? n - 1 : i1];
        wide[EF_K_SCALE * i + q] = MADD(WT[q], b - a, a);
    }
}

#if EF_AVX2
/* The interior of upsample_row, samples 1 .. (returned) - 1, 8 at a time: same operations, 4 phases interleaved. */
static int avx2_upsample_row(const float *v, int n, float *wide)
{
    const __m256 w0 = _mm256_set1_ps(0.625f), w1 = _mm256_set1_ps(0.875f);
    const __m256 w2 = _mm256_set1_ps(0.125f), w3 = _mm256_set1_ps(0.375f);
    int i = 1;
    for (; i + 9 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(v + i - 1), b = _mm256_loadu_ps(v + i), c = _mm256_loadu_ps(v + i + 1);
        __m256 dab = _mm256_sub_ps(b, a), dbc = _mm256_sub_ps(c, b);
        __m256 q0 = avx2_madd(w0, dab, a), q1 = avx2_madd(w1, dab, a);
        __m256 q2 = avx2_madd(w2, dbc, b), q3 = avx2_madd(w3, dbc, b);
        __m256 t0 = _mm256_unpacklo_ps(q0, q1), t1 = _mm256_unpackhi_ps(q0, q1);
        __m256 t2 = _mm256_unpacklo_ps(q2, q3), t3 = _mm256_unpackhi_ps(q2, q3);
        __m256 p0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), p1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
        __m256 p2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), p3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
        float *o = wide + 4 * i; /* p0 .. p3: samples i, i + 1, i + 2, i + 3 (low lanes) and i + 4 .. i + 7 (high) */
        _mm256_storeu_ps(o, _mm256_permute2f128_ps(p0, p1, 0x20));
        _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(p2, p3, 0x20));
        _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(p0, p1, 0x31));
        _mm256_storeu_ps(o + 24, _mm256_permute2f128_ps(p2, p3, 0x31));
    }
    return i;
}
#endif

/* x4 along a low-res row v of n samples into wide (4 n samples); the interior loop vectorizes. */
static void upsample_row(const float *restrict v, int n, float *restrict wide)
{
    int i = 1;
    upsample_at(v, n, 0, wide);
#if EF_AVX2
    i = avx2_upsample_row(v, n, wide);
#endif
    for (; i < n - 1; i++) {
        float a = v[i - 1], b = v[i], c = v[i + 1];
        wide[4 * i] = MADD(0.625f, b - a, a);
        wide[4 * i + 1] = MADD(0.875f, b - a, a);
        wide[4 * i + 2] = MADD(0.125f, c - b, b);
        wide[4 * i + 3] = MADD(0.375f, c - b, b);
    }
    if (n > 1) upsample_at(v, n, n - 1, wide);
}

typedef struct {
    float *rows[3]; /* column-upsampled maps (4 x pw) of low-res rows j - 1, j, j + 1 (clamped) */
    float *low;     /* M2 - M3 of one low-res row */
} compose_scratch;

static compose_scratch split_scratch(void *scratch, int pw)
{
    compose_scratch s;
    size_t wide = align4((size_t)pw);
    float *f = (float *)scratch;
    for (int k = 0; k < 3; k++) s.rows[k] = f + (size_t)k * EF_K_N_MAPS * wide;
    s.low = f + 3u * EF_K_N_MAPS * wide;
    return s;
}

/* Upsample the four maps of low-res row j into dst (4 x pw), folding map 2 into M2 - M3. */
static void upsample_maps(const float *maps, int lw, int lh, int j, size_t wide, float *low, float *dst)
{
    size_t plane = (size_t)lw * lh;
    const float *m = maps + (size_t)j * lw;
    for (int k = 0; k < EF_K_N_MAPS; k++) {
        const float *v = m + k * plane;
        if (k == 2) {
            for (int i = 0; i < lw; i++) low[i] = m[2 * plane + i] - m[3 * plane + i];
            v = low;
        }
        upsample_row(v, lw, dst + k * wide);
    }
}

/* The fused luma of one pixel from ir, vis and the interpolated maps (compose.py's operation order). */
static inline float fuse_px(float xi, float v, float a0, float a1, float a2, float a3)
{
    float d = (xi > v ? xi : v) * a3;
    d = MADD(xi, a1, d);
    d = MADD(v, a2, d);
    d = d + a0;
    return clip01(d);
}

/*
 * Fused pixels of the two output rows of phases p and p + 1 (p = 0 or 2: both blend the same
 * upsampled rows, so the maps and their differences are loaded once); ir and vis point to the
 * first row at the chunk, the second row is ld further; out holds two rows of CHUNK.
 */
static void compose_pair(const float *ir, const float *vis, size_t ld, float *const rows[3], int x0, int p, int n,
                         size_t wide, float out[2][CHUNK])
{
    const float *r0 = rows[OFF[p]] + x0, *r1 = rows[OFF[p] + 1] + x0;
    const float wa = WT[p], wb = WT[p + 1];
    const float *restrict p0 = r0, *restrict p1 = r0 + wide, *restrict p2 = r0 + 2 * wide, *restrict p3 = r0 + 3 * wide;
    const float *restrict n0 = r1, *restrict n1 = r1 + wide, *restrict n2 = r1 + 2 * wide, *restrict n3 = r1 + 3 * wide;
    const float *restrict ia = ir, *restrict va = vis, *restrict ib = ir + ld, *restrict vb = vis + ld;
    for (int x = 0; x < n; x++) {
        float d0 = n0[x] - p0[x], d1 = n1[x] - p1[x], d2 = n2[x] - p2[x], d3 = n3[x] - p3[x];
        out[0][x] = fuse_px(ia[x], va[x], MADD(d0, wa, p0[x]), MADD(d1, wa, p1[x]), MADD(d2, wa, p2[x]), MADD(d3, wa, p3[x]));
        out[1][x] = fuse_px(ib[x], vb[x], MADD(d0, wb, p0[x]), MADD(d1, wb, p1[x]), MADD(d2, wb, p2[x]), MADD(d3, wb, p3[x]));
    }
}

/* Fused pixels x0 .. x0 + w - 1 of an output row of phase p (ir, vis, out offset to x0) from the upsampled rows. */
static void compose_row(const float *ir, const float *vis, float *const rows[3], int x0, int p, int w, size_t wide,
                        float *out)
{
    const float *r0 = rows[OFF[p]] + x0, *r1 = rows[OFF[p] + 1] + x0;
    const float wt = WT[p];
    const float *p0 = r0, *p1 = r0 + wide, *p2 = r0 + 2 * wide, *p3 = r0 + 3 * wide;
    const float *n0 = r1, *n1 = r1 + wide, *n2 = r1 + 2 * wide, *n3 = r1 + 3 * wide;
    for (int x = 0; x < w; x++)
        out[x] = fuse_px(ir[x], vis[x], MADD(n0[x] - p0[x], wt, p0[x]), MADD(n1[x] - p1[x], wt, p1[x]),
                         MADD(n2[x] - p2[x], wt, p2[x]), MADD(n3[x] - p3[x], wt, p3[x]));
}

#if EF_AVX2
/*
 * AVX2 twin of compose_pair + restore_chunk (8-bit source) for 8 pixels at a time: the same float
 * operations in the same order (MADD as avx2_madd; cvtps2dq rounds half to even like round_u8),
 * so its bytes equal the portable path's. R and B of 8 interleaved source pixels come from two
 * 16-byte loads at bytes 0 and 8 (inside the 24 bytes of the 8 pixels) and one in-lane byte
 * shuffle each; the three output channels are packed with saturation (the clamp of round_u8),
 * shuffled to R G B order and stored as 16 + 8 bytes. Returns the pixels done (a multiple of
 * 8); the caller finishes the row pair with the portable code.
 */
typedef struct {
    __m256i red, blue; /* byte shuffles: source channel -> 32-bit lanes (avx2_channel) */
    __m256i interleave; /* INTERLEAVE[out_bgr] */
} avx2_masks;

/* Per lane, bytes R0..3 G0..3 B0..3 (as packed by avx2_restore8) -> 4 pixels R G B, or B G R. */
static const int8_t INTERLEAVE[2][32] = {
    {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1, 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1},
    {8, 4, 0, 9, 5, 1, 10, 6, 2, 11, 7, 3, -1, -1, -1, -1, 8, 4, 0, 9, 5, 1, 10, 6, 2, 11, 7, 3, -1, -1, -1, -1},
};

static avx2_masks avx2_rgb_masks(int src_bgr, int out_bgr)
{
    avx2_masks m;
    m.red = avx2_channel_mask(src_bgr ? 2 : 0);
    m.blue = avx2_channel_mask(src_bgr ? 0 : 2);
    m.interleave = _mm256_loadu_si256((const __m256i *)INTERLEAVE[out_bgr]);
    return m;
}

/* Clip to [0, 1] as clip01. */
static inline __m256 avx2_clip01(__m256 v)
{
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
}

/* fuse_px on 8 lanes. */
static inline __m256 avx2_fuse(__m256 xi, __m256 v, __m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 d = _mm256_mul_ps(_mm256_max_ps(xi, v), a3); /* xi > v ? xi : v */
    d = avx2_madd(xi, a1, d);
    d = avx2_madd(v, a2, d);
    return avx2_clip01(_mm256_add_ps(d, a0));
}

/*
 * restore_chunk's 8-bit source case on 8 pixels: fused luma v, source luma ys, source pixels s, 24 bytes to o;
 * with room (8 more pixels follow in the row, written next), as one 32-byte store.
 */
static inline void avx2_restore8(__m256 v, __m256 ys, const uint8_t *s, const avx2_masks *m, int room, uint8_t *o)
{
    const __m256 scale = _mm256_set1_ps(255.0f);
    const __m256 kr = _mm256_set1_ps((float)(1.403 * 0.713)), kgr = _mm256_set1_ps((float)(0.714 * 0.713));
    const __m256 kgb = _mm256_set1_ps((float)(0.344 * 0.564)), kb = _mm256_set1_ps((float)(1.773 * 0.564));
    __m256i px = avx2_load_pixels(s);
    __m256 red = avx2_channel(px, m->red), blue = avx2_channel(px, m->blue);
    __m256 vs = _mm256_mul_ps(v, scale); /* the 0..255 scale */
    __m256 dr = avx2_nmadd(ys, scale, red), db = avx2_nmadd(ys, scale, blue);
    __m256 r = avx2_madd(dr, kr, vs), g = avx2_nmadd(kgb, db, avx2_nmadd(kgr, dr, vs)), b = avx2_madd(db, kb, vs);
    __m256i ri = _mm256_cvtps_epi32(r), gi = _mm256_cvtps_epi32(g), bi = _mm256_cvtps_epi32(b);
    __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(ri, gi), _mm256_packs_epi32(bi, bi));
    bytes = _mm256_shuffle_epi8(bytes, m->interleave);
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7));
    if (room) {
        _mm256_storeu_si256((__m256i *)o, bytes);
        return;
    }
    _mm_storeu_si128((__m128i *)o, _mm256_castsi256_si128(bytes));
    _mm_storel_epi64((__m128i *)(o + 16), _mm256_extracti128_si256(bytes, 1));
}

/*
 * compose_pair on pixels x .. x + 7: fused luma of rows y (phase p, even) and y + 1 into fa, fb and
 * their vis into va, vb; r0, r1 are the upsampled map rows the phases blend.
 */
static inline void avx2_fuse_pair(const float *ir, const float *vis, size_t ld, const float *r0, const float *r1,
                                  size_t wide, int p, int x, __m256 *fa, __m256 *fb, __m256 *va, __m256 *vb)
{
    const __m256 wa = _mm256_set1_ps(WT[p]), wb = _mm256_set1_ps(WT[p + 1]);
    __m256 a[EF_K_N_MAPS], b[EF_K_N_MAPS];
    for (int k = 0; k < EF_K_N_MAPS; k++) {
        __m256 lo = _mm256_loadu_ps(r0 + k * wide + x), hi = _mm256_loadu_ps(r1 + k * wide + x);
        __m256 d = _mm256_sub_ps(hi, lo);
        a[k] = avx2_madd(d, wa, lo);
        b[k] = avx2_madd(d, wb, lo);
    }
    *va = _mm256_loadu_ps(vis + x), *vb = _mm256_loadu_ps(vis + ld + x);
    *fa = avx2_fuse(_mm256_loadu_ps(ir + x), *va, a[0], a[1], a[2], a[3]);
    *fb = avx2_fuse(_mm256_loadu_ps(ir + ld + x), *vb, b[0], b[1], b[2], b[3]);
}

/* to_u8 of 8 lanes (cvtps2dq rounds half to even; the packs saturate as to_u8 clamps) into the low 8 bytes. */
static inline __m128i avx2_u8x8(__m256 v)
{
    __m256i k = _mm256_cvtps_epi32(_mm256_mul_ps(v, _mm256_set1_ps(255.0f)));
    __m128i k16 = _mm_packs_epi32(_mm256_castsi256_si128(k), _mm256_extracti128_si256(k, 1));
    return _mm_packus_epi16(k16, k16);
}

/* 8 gray bytes g (low half) written as 8 pixels of 3 equal channels (24 bytes at o). */
static inline void avx2_store_gray3(__m128i g, uint8_t *o)
{
    const __m128i first = _mm_setr_epi8(0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5);
    const __m128i rest = _mm_setr_epi8(5, 5, 6, 6, 6, 7, 7, 7, -1, -1, -1, -1, -1, -1, -1, -1);
    _mm_storeu_si128((__m128i *)o, _mm_shuffle_epi8(g, first));
    _mm_storel_epi64((__m128i *)(o + 16), _mm_shuffle_epi8(g, rest));
}

/* What avx2_compose_pair writes: float rows, gray bytes (1 or 3 channels a pixel), color from an 8-bit source. */
enum { SINK_F32, SINK_GRAY1, SINK_GRAY3, SINK_SRC };

/*
 * The output step of 8 pixels at x of one row: fused luma f, its vis v; row pointers of that row
 * (unused: NULL); room: 8 more pixels follow.
 */
static inline void avx2_put8(int kind, const avx2_masks *m, __m256 f, __m256 v, int x, int room, float *of,
                             const uint8_t *s, uint8_t *o)
{
    switch (kind) {
    case SINK_F32:
        _mm256_storeu_ps(of + x, f);
        break;
    case SINK_GRAY1:
        _mm_storel_epi64((__m128i *)(o + x), avx2_u8x8(f));
        break;
    case SINK_GRAY3:
        avx2_store_gray3(avx2_u8x8(f), o + 3 * x);
        break;
    default:
        avx2_restore8(f, v, s + 3 * x, m, room, o + 3 * x);
    }
}

/* Pixels x .. x + 7 of rows y (phase p, even) and y + 1: composition and the output step (see avx2_pair_loop). */
static inline void avx2_pair_step(const float *ir, const float *vis, size_t ld, float *const rows[3], int p, int x,
                                  int room, size_t wide, int kind, const avx2_masks *m, float *of0, float *of1,
                                  const uint8_t *s0, const uint8_t *s1, uint8_t *o0, uint8_t *o1)
{
    __m256 fa, fb, va, vb;
    avx2_fuse_pair(ir, vis, ld, rows[OFF[p]], rows[OFF[p] + 1], wide, p, x, &fa, &fb, &va, &vb);
    avx2_put8(kind, m, fa, va, x, room, of0, s0, o0);
    avx2_put8(kind, m, fb, vb, x, room, of1, s1, o1);
}

/*
 * Rows y (phase p, even) and y + 1 of w pixels, 8 at a time: composition and the output step of
 * kind into the float rows of0, of1 or the uint8 rows o0, o1 (color from the source rows s0, s1;
 * vis is their luma). Returns the pixels done; the caller finishes the rows with the portable code.
 */
static inline int avx2_pair_loop(const float *ir, const float *vis, size_t ld, float *const rows[3], int p, int w,
                                 size_t wide, int kind, const avx2_masks *m, float *of0, float *of1,
                                 const uint8_t *s0, const uint8_t *s1, uint8_t *o0, uint8_t *o1)
{
    int x = 0;
    for (; x + 16 <= w; x += 8) avx2_pair_step(ir, vis, ld, rows, p, x, 1, wide, kind, m, of0, of1, s0, s1, o0, o1);
    if (x + 8 > w) return x;
    avx2_pair_step(ir, vis, ld, rows, p, x, 0, wide, kind, m, of0, of1, s0, s1, o0, o1);
    return x + 8;
}

/* avx2_pair_loop with kind a constant in each call: one loop compiled per output step, no switch per pixel. */
static int avx2_compose_pair(const float *ir, const float *vis, size_t ld, float *const rows[3], int p, int w,
                             size_t wide, int kind, const avx2_masks *m, float *of0, float *of1, const uint8_t *s0,
                             const uint8_t *s1, uint8_t *o0, uint8_t *o1)
{
#define PAIR_LOOP(k) avx2_pair_loop(ir, vis, ld, rows, p, w, wide, k, m, of0, of1, s0, s1, o0, o1)
    switch (kind) {
    case SINK_F32: return PAIR_LOOP(SINK_F32);
    case SINK_GRAY1: return PAIR_LOOP(SINK_GRAY1);
    case SINK_GRAY3: return PAIR_LOOP(SINK_GRAY3);
    default: return PAIR_LOOP(SINK_SRC);
    }
#undef PAIR_LOOP
}
#endif

/* Where fused rows go: float rows (f, stride ld_f) or, through restore_chunk, uint8 pixels. */
typedef struct {
    float *f;
    size_t ld_f;
    const ef_chroma *chroma;
    uint8_t *u8;
    size_t stride;
    int format;
} compose_out;

/* Drives the strip-wise composition of output rows y0 .. y1 - 1 (y0 a multiple of 4). */
static int compose(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w, int y0,
                   int y1, const compose_out *o, void *scratch)
{
    const int lw = pw / EF_K_SCALE, lh = ph / EF_K_SCALE, j0 = y0 / EF_K_SCALE;
    const int channels = o->format == EF_K_GRAY ? 1 : 3;
#if EF_AVX2
    /* the AVX2 output step: as restore_chunk (gray without chroma), none for planar chroma (-1) */
    const ef_chroma *c = o->chroma;
    int kind = SINK_F32;
    if (!o->f && (o->format == EF_K_GRAY || !c || (!c->src && !c->cb)))
        kind = channels == 1 ? SINK_GRAY1 : SINK_GRAY3;
    else if (!o->f)
        kind = c->src ? SINK_SRC : -1;
    const avx2_masks masks = avx2_rgb_masks(kind == SINK_SRC && c->order == EF_K_BGR, o->format == EF_K_BGR);
#endif
    const size_t wide = align4((size_t)pw);
    compose_scratch s = split_scratch(scratch, pw);
    float *rows[3] = {s.rows[0], s.rows[1], s.rows[2]};
    upsample_maps(maps, lw, lh, j0 > 0 ? j0 - 1 : 0, wide, s.low, rows[0]);
    upsample_maps(maps, lw, lh, j0, wide, s.low, rows[1]);
    upsample_maps(maps, lw, lh, j0 + 1 < lh ? j0 + 1 : lh - 1, wide, s.low, rows[2]);
    for (int j = j0; j < lh && j * EF_K_SCALE < y1; j++) {
        if (j > j0) { /* rotate: prev <- cur <- next <- upsampled row j + 1 */
            float *t = rows[0];
            rows[0] = rows[1];
            rows[1] = rows[2];
            rows[2] = t;
            upsample_maps(maps, lw, lh, j + 1 < lh ? j + 1 : lh - 1, wide, s.low, rows[2]);
        }
        for (int p = 0; p < EF_K_SCALE; p++) {
            int y = j * EF_K_SCALE + p;
            if (y >= y1) break;
            const float *xr = ir + (size_t)y * ld, *vr = vis + (size_t)y * ld;
            const int pair = p % 2 == 0 && y + 1 < y1; /* rows of phases p, p + 1 share their maps */
            if (o->f) {
                float *fr = o->f + (size_t)y * o->ld_f;
                int done = 0;
#if EF_AVX2
                if (pair)
                    done = avx2_compose_pair(xr, vr, ld, rows, p, w, wide, SINK_F32, &masks, fr, fr + o->ld_f, NULL,
                                             NULL, NULL, NULL);
#endif
                for (int k = 0; k <= pair; k++)
                    compose_row(xr + k * ld + done, vr + k * ld + done, rows, done, p + k, w - done, wide,
                                fr + k * o->ld_f + done);
                p += pair;
                continue;
            }
            int done = 0;
#if EF_AVX2
            if (pair && kind >= 0)
                done = avx2_compose_pair(xr, vr, ld, rows, p, w, wide, kind, &masks, NULL, NULL,
                                         kind == SINK_SRC ? CROW(uint8_t, c->src, c->src_stride, y) : NULL,
                                         kind == SINK_SRC ? CROW(uint8_t, c->src, c->src_stride, y + 1) : NULL,
                                         ROW(uint8_t, o->u8, o->stride, y), ROW(uint8_t, o->u8, o->stride, y + 1));
#endif
            for (int x0 = done; x0 < w; x0 += CHUNK) { /* chunks of a row stay in the L1 cache */
                float fused[2][CHUNK];
                int n = w - x0 < CHUNK ? w - x0 : CHUNK;
                if (pair)
                    compose_pair(xr + x0, vr + x0, ld, rows, x0, p, n, wide, fused);
                else
                    compose_row(xr + x0, vr + x0, rows, x0, p, n, wide, fused[0]);
                for (int k = 0; k <= pair; k++)
                    restore_chunk(fused[k], 1, vr + (size_t)k * ld + x0, n, o->chroma, y + k, x0,
                                  ROW(uint8_t, o->u8, o->stride, y + k) + (size_t)x0 * channels, o->format);
            }
            p += pair;
        }
    }
    return EF_K_OK;
}

static int bad_compose(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w,
                       int h, int y0, int y1, const void *scratch)
{
    return !ir || !vis || !maps || !scratch || bad_size(w, h) || pw % EF_K_SCALE || ph % EF_K_SCALE || pw < w ||
           ph < h || ld < (size_t)pw || y0 < 0 || y0 % EF_K_SCALE || y1 <= y0 || y1 > h;
}

int ef_compose_f32_rows(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w,
                        int h, int y0, int y1, float *out, size_t ld_out, void *scratch)
{
    if (bad_compose(ir, vis, ld, pw, ph, maps, w, h, y0, y1, scratch) || !out || ld_out < (size_t)w) return EF_K_EARG;
    const compose_out o = {out, ld_out, NULL, NULL, 0, EF_K_GRAY};
    return compose(ir, vis, ld, pw, ph, maps, w, y0, y1, &o, scratch);
}

int ef_compose_f32(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w,
                   int h, float *out, size_t ld_out, void *scratch)
{
    return ef_compose_f32_rows(ir, vis, ld, pw, ph, maps, w, h, 0, h, out, ld_out, scratch);
}

int ef_compose_u8_rows(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w,
                       int h, int y0, int y1, const ef_chroma *chroma, uint8_t *out, size_t out_stride,
                       int out_format, void *scratch)
{
    if (bad_compose(ir, vis, ld, pw, ph, maps, w, h, y0, y1, scratch) ||
        bad_output(w, chroma, out, out_stride, out_format))
        return EF_K_EARG;
    const compose_out o = {NULL, 0, chroma, out, out_stride, out_format};
    return compose(ir, vis, ld, pw, ph, maps, w, y0, y1, &o, scratch);
}

int ef_compose_u8(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w, int h,
                  const ef_chroma *chroma, uint8_t *out, size_t out_stride, int out_format, void *scratch)
{
    return ef_compose_u8_rows(ir, vis, ld, pw, ph, maps, w, h, 0, h, chroma, out, out_stride, out_format, scratch);
}

const char *ef_kernels_isa(void) { return EF_AVX2 ? "avx2" : "portable"; }

#ifndef EF_KERNELS_SOURCE
#define EF_KERNELS_SOURCE ""
#endif
const char *ef_kernels_source(void) { return EF_KERNELS_SOURCE; }
