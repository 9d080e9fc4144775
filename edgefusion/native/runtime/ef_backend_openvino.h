/* The built-in backend: OpenVINO's C API (compiled with EF_WITH_OPENVINO, link libopenvino_c). */
#ifndef EF_BACKEND_OPENVINO_H
#define EF_BACKEND_OPENVINO_H

#include "edgefusion.h"

/* The OpenVINO backend (model.xml + model.bin from memory; float32 NCHW inputs ir, vis [, stats]). */
const ef_backend *ef_openvino_backend(void);

#endif
