/*
 * Every frame-path kernel at odd sizes on exactly sized heap buffers, for AddressSanitizer /
 * UndefinedBehaviorSanitizer / valgrind (tests/test_native.py builds and runs it). Values are
 * checked in Python against numpy; here: no out-of-bounds access, no UB, and the documented
 * return codes (EF_K_OK for valid arguments, EF_K_EARG for invalid ones). Exit 0 on success.
 * Prints one line per size with a hash of every output, so that two builds (portable C and the
 * AVX2 paths, -mavx2) can be compared byte for byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ef_kernels.h"

static int failures = 0;

#define EXPECT(cond)                                                                  \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: %s failed (w=%d h=%d)\n", __FILE__, __LINE__, #cond, w, h); \
            failures++;                                                               \
        }                                                                             \
    } while (0)

static uint32_t seed = 1u;
static uint64_t digest;

/* FNV-1a over the bytes of an output. */
static void hash(const void *data, size_t n)
{
    const uint8_t *b = (const uint8_t *)data;
    for (size_t i = 0; i < n; i++) digest = (digest ^ b[i]) * 1099511628211u;
}

static uint32_t next(void) { return seed = seed * 1664525u + 1013904223u; }

static void check_size(int w, int h)
{
    const int pw = (w + 7) / 8 * 8, ph = (h + 7) / 8 * 8;
    const size_t n = (size_t)w * h, pn = (size_t)pw * ph;
    uint8_t *gray = malloc(n), *rgb = malloc(3 * n), *out1 = malloc(n), *out3 = malloc(3 * n);
    uint16_t *u16 = malloc(n * 2);
    float *ir = malloc(pn * 4), *vis = malloc(pn * 4), *cb = malloc(n * 4), *cr = malloc(n * 4);
    float *maps = malloc((pn / 16) * 4 * 4), *fused = malloc(n * 4);
    void *hist = malloc(ef_percentiles_scratch_bytes()), *scratch = malloc(ef_compose_scratch_bytes(pw, ph));
    float stats[EF_K_N_STATS];
    double lo, hi;
    digest = 14695981039346656037u;
    for (size_t i = 0; i < n; i++) {
        gray[i] = (uint8_t)(next() >> 24);
        u16[i] = (uint16_t)(next() >> 16);
    }
    for (size_t i = 0; i < 3 * n; i++) rgb[i] = (uint8_t)(next() >> 24);
    for (size_t i = 0; i < pn / 16 * 4; i++) maps[i] = (float)(next() >> 8) / 16777216.0f - 0.3f;

    EXPECT(ef_normalize_u8(gray, (size_t)w, w, h, ir, (size_t)pw) == EF_K_OK);
    EXPECT(ef_percentiles_u16(u16, (size_t)w * 2, w, h, 0.5, 99.5, hist, &lo, &hi) == EF_K_OK && lo <= hi);
    EXPECT(ef_stretch_u16(u16, (size_t)w * 2, w, h, lo, hi, vis, (size_t)pw) == EF_K_OK);
    EXPECT(ef_channels_identical_u8(rgb, (size_t)w * 3, w, h) == (n == 1 && rgb[0] == rgb[1] && rgb[0] == rgb[2]));
    EXPECT(ef_ycbcr_u8(rgb, (size_t)w * 3, EF_K_BGR, w, h, vis, (size_t)pw, cb, cr, (size_t)w) == EF_K_OK);
    hash(cb, n * 4), hash(cr, n * 4);
    EXPECT(ef_ycbcr_u8(rgb, (size_t)w * 3, EF_K_RGB, w, h, vis, (size_t)pw, NULL, NULL, 0) == EF_K_OK);
    EXPECT(ef_frame_stats(ir, vis, (size_t)pw, w, h, stats) == EF_K_OK);
    hash(stats, sizeof stats);
    EXPECT(ef_frame_stats_u8(gray, (size_t)w, vis, (size_t)pw, w, h, stats) == EF_K_OK);
    hash(stats, sizeof stats);
    EXPECT(ef_pad_edge(ir, (size_t)pw, w, h, pw, ph) == EF_K_OK && ef_pad_edge(vis, (size_t)pw, w, h, pw, ph) == EF_K_OK);
    hash(ir, pn * 4), hash(vis, pn * 4);

    /* the one-pass input kernel writes the bytes of the separate kernels above */
    float *ir2 = malloc(pn * 4), *vis2 = malloc(pn * 4), stats2[EF_K_N_STATS];
    EXPECT(ef_prepare_u8(gray, (size_t)w, rgb, (size_t)w * 3, EF_K_RGB, w, h, pw, ph, ir2, vis2, (size_t)pw, stats2) == EF_K_OK);
    EXPECT(memcmp(ir2, ir, pn * 4) == 0 && memcmp(vis2, vis, pn * 4) == 0 && memcmp(stats2, stats, sizeof stats) == 0);
    EXPECT(ef_frame_stats(ir, vis, (size_t)pw, w, h, stats) == EF_K_OK); /* IR given as its float plane (ir NULL) */
    EXPECT(ef_prepare_u8(NULL, 0, rgb, (size_t)w * 3, EF_K_RGB, w, h, pw, ph, ir2, vis2, (size_t)pw, stats2) == EF_K_OK);
    EXPECT(memcmp(ir2, ir, pn * 4) == 0 && memcmp(vis2, vis, pn * 4) == 0 && memcmp(stats2, stats, sizeof stats) == 0);
    EXPECT(ef_frame_stats_u8(gray, (size_t)w, ir, (size_t)pw, w, h, stats) == EF_K_OK); /* gray visible: / 255 */
    EXPECT(ef_prepare_u8(gray, (size_t)w, gray, (size_t)w, EF_K_GRAY, w, h, pw, ph, ir2, vis2, (size_t)pw, stats2) == EF_K_OK);
    EXPECT(memcmp(vis2, ir, pn * 4) == 0 && memcmp(stats2, stats, sizeof stats) == 0);
    EXPECT(ef_prepare_u8(gray, (size_t)w, rgb, (size_t)w * 3, EF_K_BGR, w, h, pw, ph, ir2, vis2, (size_t)pw, NULL) == EF_K_OK);
    hash(vis2, pn * 4);
    EXPECT(ef_prepare_u8(gray, (size_t)w, rgb, (size_t)w * 3 - 1, EF_K_RGB, w, h, pw, ph, ir2, vis2, (size_t)pw, NULL) == EF_K_EARG);
    EXPECT(ef_prepare_u8(gray, (size_t)w, rgb, (size_t)w * 3, 7, w, h, pw, ph, ir2, vis2, (size_t)pw, NULL) == EF_K_EARG);
    EXPECT(ef_prepare_u8(gray, (size_t)w, rgb, (size_t)w * 3, EF_K_RGB, w, h, w - 1, ph, ir2, vis2, (size_t)pw, NULL) == EF_K_EARG);
    free(ir2), free(vis2);
    EXPECT(ef_compose_f32(ir, vis, (size_t)pw, pw, ph, maps, w, h, fused, (size_t)w, scratch) == EF_K_OK);
    hash(fused, n * 4);

    const ef_chroma from_src = {rgb, (size_t)w * 3, EF_K_RGB, NULL, NULL, 0};
    const ef_chroma from_planes = {NULL, 0, 0, cb, cr, (size_t)w};
    const ef_chroma *chromas[3] = {NULL, &from_src, &from_planes};
    const int formats[3] = {EF_K_GRAY, EF_K_RGB, EF_K_BGR};
    for (int c = 0; c < 3; c++)
        for (int f = 0; f < 3; f++) {
            uint8_t *out = formats[f] == EF_K_GRAY ? out1 : out3;
            size_t stride = (size_t)w * (formats[f] == EF_K_GRAY ? 1 : 3);
            EXPECT(ef_restore_u8(fused, (size_t)w, w, h, chromas[c], out, stride, formats[f]) == EF_K_OK);
            hash(out, n * (formats[f] == EF_K_GRAY ? 1 : 3));
            EXPECT(ef_compose_u8(ir, vis, (size_t)pw, pw, ph, maps, w, h, chromas[c], out, stride, formats[f],
                                 scratch) == EF_K_OK);
            hash(out, n * (formats[f] == EF_K_GRAY ? 1 : 3));
        }

    for (int y0 = 0; y0 < h; y0 += 8) { /* bands of 8 rows, as threads would compose them */
        int y1 = y0 + 8 < h ? y0 + 8 : h;
        EXPECT(ef_compose_f32_rows(ir, vis, (size_t)pw, pw, ph, maps, w, h, y0, y1, fused, (size_t)w, scratch) == EF_K_OK);
        EXPECT(ef_compose_u8_rows(ir, vis, (size_t)pw, pw, ph, maps, w, h, y0, y1, &from_src, out3, (size_t)w * 3,
                                  EF_K_BGR, scratch) == EF_K_OK);
    }
    hash(fused, n * 4), hash(out3, n * 3);
    printf("%dx%d %016llx\n", w, h, (unsigned long long)digest);

    /* invalid arguments: rejected, nothing written */
    EXPECT(ef_compose_f32_rows(ir, vis, (size_t)pw, pw, ph, maps, w, h, 2, h, fused, (size_t)w, scratch) == EF_K_EARG);
    EXPECT(ef_compose_u8_rows(ir, vis, (size_t)pw, pw, ph, maps, w, h, 0, h + 1, NULL, out1, (size_t)w, EF_K_GRAY,
                              scratch) == EF_K_EARG);
    EXPECT(ef_normalize_u8(gray, (size_t)w - 1, w, h, ir, (size_t)pw) == EF_K_EARG);
    EXPECT(ef_percentiles_u16(u16, (size_t)w * 2, w, h, 60.0, 50.0, hist, &lo, &hi) == EF_K_EARG);
    EXPECT(ef_compose_f32(ir, vis, (size_t)pw, pw - 1, ph, maps, w, h, fused, (size_t)w, scratch) == EF_K_EARG);
    EXPECT(ef_compose_u8(ir, vis, (size_t)pw, pw, ph, maps, w, h, NULL, out3, (size_t)w * 3, 7, scratch) == EF_K_EARG);
    EXPECT(ef_pad_edge(ir, (size_t)pw, w, h, w - 1, h) == EF_K_EARG);
    EXPECT(ef_frame_stats(ir, NULL, (size_t)pw, w, h, stats) == EF_K_EARG);
    EXPECT(ef_frame_stats_u8(gray, (size_t)w - 1, vis, (size_t)pw, w, h, stats) == EF_K_EARG);

    free(gray), free(rgb), free(out1), free(out3), free(u16), free(ir), free(vis), free(cb), free(cr);
    free(maps), free(fused), free(hist), free(scratch);
}

int main(void)
{
    const int sizes[][2] = {{1, 1}, {7, 5}, {5, 7}, {9, 13}, {1, 9}, {9, 1}, {8, 8}, {130, 3}, {257, 17}, {300, 41}, {64, 37}, {1001, 9}, {9000, 2}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_size(sizes[i][0], sizes[i][1]);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
