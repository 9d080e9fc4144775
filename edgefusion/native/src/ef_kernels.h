/*
 * edgefusion frame-path kernels (internal header): the math of the Python runtime
 * (edgefusion/preprocess.py, edgefusion/io/color.py, edgefusion/runtime/compose.py,
 * edgefusion/runtime/frame_stats.py) as C99 loops over caller-owned buffers.
 *
 * Conventions
 *   - No allocation, no global state: every kernel is reentrant. Temporaries live in
 *     a caller-provided scratch buffer of at least ef_*_scratch_bytes() bytes,
 *     aligned to 16 bytes (malloc's alignment is enough).
 *   - Pixel buffers (uint8/uint16 sources, uint8 outputs) take a row stride in BYTES.
 *     Float planes take a row stride in ELEMENTS (floats), named ld ("leading dimension").
 *   - Float planes hold values in [0, 1]; chroma planes carry the 0.5 offset (Cb, Cr).
 *   - Sizes are pixels, w x h (width x height), w, h >= 1. Kernels return EF_K_OK or
 *     EF_K_EARG (NULL pointer, size < 1, stride too small, odd padded size); they never
 *     abort and write nothing on EF_K_EARG.
 *   - Color order: EF_K_GRAY (1 channel), EF_K_RGB or EF_K_BGR (3 interleaved channels).
 *   - x86-64 builds for AVX2 targets (e.g. -march=x86-64-v3) run AVX2 paths for normalization,
 *     luma, frame statistics, upsampling and composition; they write the same bytes as the
 *     portable C99 loops. x86-64 CMake builds for other targets carry both and pick per CPU
 *     (edgefusion/native/dispatch); ef_kernels_isa() says which runs.
 */
#ifndef EF_KERNELS_H
#define EF_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EF_K_OK 0
#define EF_K_EARG (-1)

/* Channel layouts of 8-bit pixel buffers. */
#define EF_K_GRAY 1
#define EF_K_RGB 3
#define EF_K_BGR 4

/* Number of frame statistics (student v2 "stats" input). */
#define EF_K_N_STATS 6
/* Low-resolution factor of the analysis maps (x4 bilinear upsampling). */
#define EF_K_SCALE 4
/* Number of analysis maps (A0 .. A3). */
#define EF_K_N_MAPS 4
/* Rows per strip of the input pass and of the frame statistics' sums. */
#define EF_K_STRIP 16

/* ---- input normalization ---------------------------------------------------------- */

/* dst[y][x] = src[y][x] / 255 (float32); gray uint8 source. */
int ef_normalize_u8(const uint8_t *src, size_t src_stride, int w, int h, float *dst, size_t ld);

/* Bytes of scratch ef_percentiles_u16 needs (a 65536-bin histogram). */
size_t ef_percentiles_scratch_bytes(void);

/*
 * The low-th and high-th percentiles (0 <= low < high <= 100) of the w x h uint16
 * samples, equal to numpy.percentile(..., method="linear"): a histogram pass, then
 * linear interpolation between order statistics (no sort). w counts samples per row
 * (3 * width for interleaved RGB), w * h < 2^32. Results in *lo, *hi (float64).
 */
int ef_percentiles_u16(const uint16_t *src, size_t src_stride, int w, int h, double low, double high,
                       void *scratch, double *lo, double *hi);

/*
 * Percentile stretch of gray uint16: dst = clip((float(src) - float(lo)) / float(hi - lo), 0, 1),
 * all zeros when hi <= lo (preprocess.to_unit_float).
 */
int ef_stretch_u16(const uint16_t *src, size_t src_stride, int w, int h, double lo, double hi, float *dst,
                   size_t ld);

/* ---- color ------------------------------------------------------------------------ */

/* 1 when every pixel of the 8-bit RGB/BGR frame has three equal channels (treat it as gray), else 0. */
int ef_channels_identical_u8(const uint8_t *src, size_t src_stride, int w, int h);

/*
 * BT.601 luma (and planar chroma) of an 8-bit RGB or BGR frame (order EF_K_RGB/EF_K_BGR),
 * scaled to [0, 1]: Y = (0.299 R + 0.587 G + 0.114 B) / 255, Cb = 0.564 (B - Y) + 0.5,
 * Cr = 0.713 (R - Y) + 0.5 (edgefusion.io.color.rgb_to_ycbcr with scale 1/255).
 * cb and cr may both be NULL (luma only); they share the stride ld_c.
 */
int ef_ycbcr_u8(const uint8_t *src, size_t src_stride, int order, int w, int h, float *y, size_t ld_y,
                float *cb, float *cr, size_t ld_c);

/* ---- frame statistics (contract of student v2) ------------------------------------ */

/*
 * out = [mean(ir), std(ir), mean(vis), std(vis), grad(ir), grad(vis)] of two unpadded
 * w x h planes with stride ld, float64 accumulation (edgefusion/runtime/frame_stats.py):
 * population std; grad(x) = mean|x[:,1:] - x[:,:-1]| + mean|x[1:,:] - x[:-1,:]|, a term
 * over an axis of length 1 is 0.
 */
int ef_frame_stats(const float *ir, const float *vis, size_t ld, int w, int h, float out[EF_K_N_STATS]);

/*
 * ef_frame_stats with the IR plane given as its 8-bit source (ir = src / 255, stride in bytes):
 * exact integer sums, divided at the end (within 1e-7 of the float plane's statistics), about
 * four times fewer instructions than the float plane.
 */
int ef_frame_stats_u8(const uint8_t *ir, size_t ir_stride, const float *vis, size_t ld, int w, int h,
                      float out[EF_K_N_STATS]);

/* ---- stride padding --------------------------------------------------------------- */

/*
 * In place: plane holds a w x h image in a pw x ph buffer (stride ld >= pw, pw >= w,
 * ph >= h); fill columns w..pw-1 and rows h..ph-1 by edge replication (bottom/right).
 */
int ef_pad_edge(float *plane, size_t ld, int w, int h, int pw, int ph);

/* ---- the input pass ----------------------------------------------------------------- */

/*
 * ef_normalize_u8 (IR), ef_ycbcr_u8 luma (visible EF_K_RGB / EF_K_BGR) or ef_normalize_u8
 * (visible EF_K_GRAY), ef_pad_edge of both planes to pw x ph, and, when stats is not NULL,
 * ef_frame_stats_u8 (ef_frame_stats when ir is NULL) in one walk over the rows: each strip of
 * rows is written and its statistics are taken while it is in cache; the source pixels are
 * read once. Same values as those kernels, bit for bit. ir NULL: ir_plane already holds the
 * unpadded IR plane (e.g. from ef_stretch_u16). Both planes share the stride ld.
 */
int ef_prepare_u8(const uint8_t *ir, size_t ir_stride, const uint8_t *vis, size_t vis_stride, int vis_format, int w,
                  int h, int pw, int ph, float *ir_plane, float *vis_plane, size_t ld, float stats[EF_K_N_STATS]);

/*
 * ef_prepare_u8 in bands of rows, for threads (the frame statistics are sums per strip of
 * EF_K_STRIP rows, added in strip order: the same values, bit for bit, for any bands):
 *   - ef_prepare_u8_rows: rows y0 .. y1 - 1 (y0 a multiple of EF_K_STRIP; y1 too, or h) of both
 *     planes, right padding, and, when partials is not NULL, the sums of their strips into
 *     partials (indexed by strip) -- except the band's first strip when y0 > 0 and first_stats is
 *     0: its vertical differences read row y0 - 1, which another band writes;
 *   - ef_prepare_u8_strip_stats: the sums of the strip starting at row y0, once its rows and row
 *     y0 - 1 are written;
 *   - ef_prepare_u8_finish: bottom padding of both planes and, when stats is not NULL, the
 *     statistics from the sums of every strip (ir_u8: the IR plane came from 8-bit ir).
 * partials: ef_prepare_partials_bytes(h) bytes (aligned as malloc's). Bands may run at once.
 */
size_t ef_prepare_partials_bytes(int h);
int ef_prepare_u8_rows(const uint8_t *ir, size_t ir_stride, const uint8_t *vis, size_t vis_stride, int vis_format,
                       int w, int h, int pw, int y0, int y1, int first_stats, float *ir_plane, float *vis_plane,
                       size_t ld, void *partials);
int ef_prepare_u8_strip_stats(const uint8_t *ir, size_t ir_stride, int w, int h, int y0, const float *ir_plane,
                              const float *vis_plane, size_t ld, void *partials);
int ef_prepare_u8_finish(int ir_u8, int w, int h, int pw, int ph, float *ir_plane, float *vis_plane, size_t ld,
                         const void *partials, float stats[EF_K_N_STATS]);

/* ---- composition + color restore + uint8 ------------------------------------------ */

/*
 * Chroma for color restore. Exactly one source or none:
 *   - src != NULL: the 8-bit visible frame (order EF_K_RGB or EF_K_BGR, stride src_stride in
 *     bytes), the fastest path: no chroma planes, the color difference is taken from the
 *     source pixels and the source luma (see ef_restore_u8);
 *   - cb, cr != NULL: planar float chroma (offset 0.5) with stride ld;
 *   - all NULL: gray (fused luma copied to every output channel).
 */
typedef struct {
    const uint8_t *src;
    size_t src_stride;
    int order;
    const float *cb;
    const float *cr;
    size_t ld;
} ef_chroma;

/*
 * Color restore and uint8 conversion of a fused luma plane y (w x h, stride ld_y), as
 * io/color.py ycbcr_to_rgb: R = Y + 1.403 (Cr - 0.5), G = Y - 0.714 (Cr - 0.5) - 0.344 (Cb - 0.5),
 * B = Y + 1.773 (Cb - 0.5), Y and each channel clipped to [0, 1], out = rint(255 v) (round half
 * to even). With an 8-bit source, Cr - 0.5 = 0.713 (R_s - Y_s) and Cb - 0.5 = 0.564 (B_s - Y_s)
 * are folded into the gains and the formula runs on the 0..255 scale (255 Y + k (R_s - 255 Y_s)):
 * the same formula, float rounding may differ by one level at ties.
 * out_format EF_K_GRAY writes the clipped luma only. chroma may be NULL (gray).
 */
int ef_restore_u8(const float *y, size_t ld_y, int w, int h, const ef_chroma *chroma, uint8_t *out,
                  size_t out_stride, int out_format);

/* Bytes of scratch the ef_compose_* kernels need for padded planes of pw x ph (any pw, ph >= 1). */
size_t ef_compose_scratch_bytes(int pw, int ph);

/*
 * fused = clip(A0 + A1 ir + A2 vis + A3 relu(ir - vis), 0, 1), Ak = up4(Mk): x4 bilinear,
 * align_corners=False, edge clamp (edgefusion/runtime/compose.py). ir, vis: padded planes
 * pw x ph (multiples of 4) with stride ld; maps: contiguous 4 x (ph/4) x (pw/4) float32.
 * Writes the top-left w x h (w <= pw, h <= ph) of the fused luma into out (stride ld_out).
 */
int ef_compose_f32(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w,
                   int h, float *out, size_t ld_out, void *scratch);

/*
 * ef_compose_f32 fused with ef_restore_u8 in one strip-wise pass: composes each row into
 * scratch and writes the w x h uint8 frame (gray, RGB or BGR) into out. The chroma source,
 * if any, is the UNPADDED w x h visible frame or chroma planes; with chroma->src, vis must be
 * the BT.601 luma of that frame (as ef_ycbcr_u8 writes it), which the restore reuses as Y_s.
 */
int ef_compose_u8(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w, int h,
                  const ef_chroma *chroma, uint8_t *out, size_t out_stride, int out_format, void *scratch);

/*
 * Output rows y0 .. y1 - 1 only (0 <= y0 < y1 <= h, y0 a multiple of 4) of ef_compose_f32 /
 * ef_compose_u8 (ir, vis, maps and out are the whole frame's): threads may compose
 * disjoint bands of one frame at once, each with its own scratch.
 */
int ef_compose_f32_rows(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w,
                        int h, int y0, int y1, float *out, size_t ld_out, void *scratch);
int ef_compose_u8_rows(const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w,
                       int h, int y0, int y1, const ef_chroma *chroma, uint8_t *out, size_t out_stride,
                       int out_format, void *scratch);

/* ---- build ---------------------------------------------------------------------------- */

/*
 * The instruction set the kernels run with: "avx2" (the AVX2 paths) or "portable" (C99 loops only).
 * Fixed by the compiler flags, or chosen per CPU in builds with run-time dispatch
 * (edgefusion/native/dispatch: x86-64 CMake builds whose flags do not already target AVX2).
 */
const char *ef_kernels_isa(void);

/*
 * The kernel sources this library was built from, "c=<SHA-256 of ef_kernels.c>,h=<SHA-256 of ef_kernels.h>"
 * (lowercase hex), as the CMake target ef_kernels records them (EF_KERNELS_SOURCE); "" when the build did
 * not. The Python runtime loads a prebuilt library (EDGEFUSION_NATIVE_LIB) only when they match its own.
 */
const char *ef_kernels_source(void);

#ifdef __cplusplus
}
#endif

#endif /* EF_KERNELS_H */
