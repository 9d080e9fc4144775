/* The built-in backend: OpenVINO's C API (compiled with EF_WITH_OPENVINO, link libopenvino_c). */
#ifndef EF_BACKEND_OPENVINO_H
#define EF_BACKEND_OPENVINO_H

#include "edgefusion.h"

/* Frame sizes (at least 1) kept compiled as static-shape models (each holds its own engine buffers, about
 * 70 MB at 1920x1088 for the student); a size beyond them is compiled again when it comes back. */
#ifndef EF_OV_STATIC_SHAPES
#define EF_OV_STATIC_SHAPES 2
#endif
#if EF_OV_STATIC_SHAPES < 1
#error "EF_OV_STATIC_SHAPES must be at least 1"
#endif

/* The OpenVINO backend (model.xml + model.bin from memory; float32 NCHW inputs ir, vis [, stats]). */
const ef_backend *ef_openvino_backend(void);

#endif
