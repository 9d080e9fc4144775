/* The portable variant of the kernels (ef_portable_*), for run-time dispatch: see ef_dispatch.c. */
#define EF_KERNELS_VARIANT portable
#include "ef_kernels_variant.h"
#include "ef_kernels.c"
