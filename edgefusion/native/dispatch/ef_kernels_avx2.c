/*
 * The AVX2 variant of the kernels (ef_avx2_*), for run-time dispatch: see ef_dispatch.c.
 * Compiled with -mavx2 -mfma (CMakeLists.txt); FMA only for -DEF_FMA=1, as contraction stays off.
 */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "ef_kernels_avx2.c is compiled with -mavx2 -mfma"
#endif
#define EF_KERNELS_VARIANT avx2
#include "ef_kernels_variant.h"
#include "ef_kernels.c"
