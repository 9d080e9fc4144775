/*
 * One variant of the frame-path kernels for run-time dispatch (see ef_dispatch.c): included
 * before src/ef_kernels.c, it renames every function of ef_kernels.h from ef_NAME to
 * ef_<EF_KERNELS_VARIANT>_NAME, in the declarations and the definitions alike, so that the
 * variants (portable, avx2) link into one library beside the dispatching ef_NAME.
 */
#ifndef EF_KERNELS_VARIANT
#error "define EF_KERNELS_VARIANT (portable or avx2) before including ef_kernels_variant.h"
#endif

#define EF_VARIANT_PASTE(variant, name) ef_##variant##_##name
#define EF_VARIANT_NAME(variant, name) EF_VARIANT_PASTE(variant, name)
#define EF_V(name) EF_VARIANT_NAME(EF_KERNELS_VARIANT, name)

#define ef_normalize_u8 EF_V(normalize_u8)
#define ef_percentiles_scratch_bytes EF_V(percentiles_scratch_bytes)
#define ef_percentiles_u16 EF_V(percentiles_u16)
#define ef_stretch_u16 EF_V(stretch_u16)
#define ef_channels_identical_u8 EF_V(channels_identical_u8)
#define ef_ycbcr_u8 EF_V(ycbcr_u8)
#define ef_frame_stats EF_V(frame_stats)
#define ef_frame_stats_u8 EF_V(frame_stats_u8)
#define ef_pad_edge EF_V(pad_edge)
#define ef_prepare_u8 EF_V(prepare_u8)
#define ef_prepare_partials_bytes EF_V(prepare_partials_bytes)
#define ef_prepare_u8_rows EF_V(prepare_u8_rows)
#define ef_prepare_u8_strip_stats EF_V(prepare_u8_strip_stats)
#define ef_prepare_u8_finish EF_V(prepare_u8_finish)
#define ef_restore_u8 EF_V(restore_u8)
#define ef_compose_scratch_bytes EF_V(compose_scratch_bytes)
#define ef_compose_f32 EF_V(compose_f32)
#define ef_compose_u8 EF_V(compose_u8)
#define ef_compose_f32_rows EF_V(compose_f32_rows)
#define ef_compose_u8_rows EF_V(compose_u8_rows)
#define ef_kernels_isa EF_V(kernels_isa)
#define ef_kernels_source EF_V(kernels_source)
