/*
 * Run-time dispatch of the frame-path kernels (x86-64, GCC or Clang). Each function of
 * ef_kernels.h calls its AVX2 variant (ef_kernels_avx2.c) on CPUs with AVX2 and FMA, else
 * its portable one (ef_kernels_portable.c); both write the same bytes (tests/native).
 *
 * CMakeLists.txt builds these three files in place of src/ef_kernels.c for x86-64 targets whose
 * compiler flags do not already enable AVX2 (e.g. a distribution's generic x86-64 image), unless
 * EF_KERNEL_DISPATCH is OFF. The CPU is asked on every call: __builtin_cpu_supports reads what
 * the compiler's runtime library found at start-up (__builtin_cpu_init makes sure of it when a
 * kernel runs from a constructor), so there is no state of ours and any thread may call.
 */
#include "ef_kernels.h"

#if !defined(__GNUC__) || !(defined(__x86_64__) || defined(__i386__))
#error "run-time dispatch needs GCC or Clang on x86 (build src/ef_kernels.c alone elsewhere)"
#endif

static int use_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* X(return type, name, (parameters), (arguments)) for every function of ef_kernels.h. */
#define EF_KERNEL_FUNCTIONS(X)                                                                                         \
    X(int, normalize_u8, (const uint8_t *src, size_t src_stride, int w, int h, float *dst, size_t ld),                 \
      (src, src_stride, w, h, dst, ld))                                                                                \
    X(size_t, percentiles_scratch_bytes, (void), ())                                                                   \
    X(int, percentiles_u16,                                                                                            \
      (const uint16_t *src, size_t src_stride, int w, int h, double low, double high, void *scratch, double *lo,      \
       double *hi),                                                                                                    \
      (src, src_stride, w, h, low, high, scratch, lo, hi))                                                             \
    X(int, stretch_u16, (const uint16_t *src, size_t src_stride, int w, int h, double lo, double hi, float *dst,      \
                         size_t ld),                                                                                   \
      (src, src_stride, w, h, lo, hi, dst, ld))                                                                        \
    X(int, channels_identical_u8, (const uint8_t *src, size_t src_stride, int w, int h), (src, src_stride, w, h))     \
    X(int, ycbcr_u8,                                                                                                   \
      (const uint8_t *src, size_t src_stride, int order, int w, int h, float *y, size_t ld_y, float *cb, float *cr,    \
       size_t ld_c),                                                                                                   \
      (src, src_stride, order, w, h, y, ld_y, cb, cr, ld_c))                                                           \
    X(int, frame_stats, (const float *ir, const float *vis, size_t ld, int w, int h, float out[EF_K_N_STATS]),        \
      (ir, vis, ld, w, h, out))                                                                                        \
    X(int, frame_stats_u8,                                                                                             \
      (const uint8_t *ir, size_t ir_stride, const float *vis, size_t ld, int w, int h, float out[EF_K_N_STATS]),      \
      (ir, ir_stride, vis, ld, w, h, out))                                                                             \
    X(int, pad_edge, (float *plane, size_t ld, int w, int h, int pw, int ph), (plane, ld, w, h, pw, ph))               \
    X(int, prepare_u8,                                                                                                 \
      (const uint8_t *ir, size_t ir_stride, const uint8_t *vis, size_t vis_stride, int vis_format, int w, int h,      \
       int pw, int ph, float *ir_plane, float *vis_plane, size_t ld, float stats[EF_K_N_STATS]),                       \
      (ir, ir_stride, vis, vis_stride, vis_format, w, h, pw, ph, ir_plane, vis_plane, ld, stats))                      \
    X(size_t, prepare_partials_bytes, (int h), (h))                                                                    \
    X(int, prepare_u8_rows,                                                                                            \
      (const uint8_t *ir, size_t ir_stride, const uint8_t *vis, size_t vis_stride, int vis_format, int w, int h,      \
       int pw, int y0, int y1, int first_stats, float *ir_plane, float *vis_plane, size_t ld, void *partials),         \
      (ir, ir_stride, vis, vis_stride, vis_format, w, h, pw, y0, y1, first_stats, ir_plane, vis_plane, ld, partials))  \
    X(int, prepare_u8_strip_stats,                                                                                     \
      (const uint8_t *ir, size_t ir_stride, int w, int h, int y0, const float *ir_plane, const float *vis_plane,      \
       size_t ld, void *partials),                                                                                     \
      (ir, ir_stride, w, h, y0, ir_plane, vis_plane, ld, partials))                                                    \
    X(int, prepare_u8_finish,                                                                                          \
      (int ir_u8, int w, int h, int pw, int ph, float *ir_plane, float *vis_plane, size_t ld, const void *partials,   \
       float stats[EF_K_N_STATS]),                                                                                     \
      (ir_u8, w, h, pw, ph, ir_plane, vis_plane, ld, partials, stats))                                                 \
    X(int, restore_u8,                                                                                                 \
      (const float *y, size_t ld_y, int w, int h, const ef_chroma *chroma, uint8_t *out, size_t out_stride,           \
       int out_format),                                                                                                \
      (y, ld_y, w, h, chroma, out, out_stride, out_format))                                                            \
    X(size_t, compose_scratch_bytes, (int pw, int ph), (pw, ph))                                                       \
    X(int, compose_f32,                                                                                                \
      (const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w, int h, float *out,      \
       size_t ld_out, void *scratch),                                                                                  \
      (ir, vis, ld, pw, ph, maps, w, h, out, ld_out, scratch))                                                         \
    X(int, compose_u8,                                                                                                 \
      (const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w, int h,                  \
       const ef_chroma *chroma, uint8_t *out, size_t out_stride, int out_format, void *scratch),                       \
      (ir, vis, ld, pw, ph, maps, w, h, chroma, out, out_stride, out_format, scratch))                                 \
    X(int, compose_f32_rows,                                                                                           \
      (const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w, int h, int y0, int y1, \
       float *out, size_t ld_out, void *scratch),                                                                      \
      (ir, vis, ld, pw, ph, maps, w, h, y0, y1, out, ld_out, scratch))                                                 \
    X(int, compose_u8_rows,                                                                                            \
      (const float *ir, const float *vis, size_t ld, int pw, int ph, const float *maps, int w, int h, int y0, int y1, \
       const ef_chroma *chroma, uint8_t *out, size_t out_stride, int out_format, void *scratch),                       \
      (ir, vis, ld, pw, ph, maps, w, h, y0, y1, chroma, out, out_stride, out_format, scratch))                         \
    X(const char *, kernels_isa, (void), ())                                                                          \
    X(const char *, kernels_source, (void), ())

#define DECLARE_VARIANTS(ret, name, params, args) \
    ret ef_avx2_##name params;                    \
    ret ef_portable_##name params;
EF_KERNEL_FUNCTIONS(DECLARE_VARIANTS)

#define DISPATCH(ret, name, params, args) \
    ret ef_##name params { return use_avx2() ? ef_avx2_##name args : ef_portable_##name args; }
EF_KERNEL_FUNCTIONS(DISPATCH)
