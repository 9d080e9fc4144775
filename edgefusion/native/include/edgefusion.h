/*
 * edgefusion C runtime: fuse an infrared and a visible frame with a deployment bundle.
 *
 * C99, no global state, no allocation per frame once a frame size has been seen
 * (buffers grow on a new, larger size only). Functions never abort on bad input:
 * they return an ef_status and keep a one-line message, read with ef_last_error().
 *
 * Threads: a context is not thread-safe; use one context per thread (contexts
 * share nothing, so several threads may each fuse on their own context).
 * ef_options.frame_threads > 1 gives a context its own worker threads (POSIX threads,
 * created by ef_open_*, joined by ef_close) that run the frame path before and after
 * the network in bands of rows, with the calling thread; they are internal to the
 * context and only work during its ef_fuse calls. Every frame_threads value writes the
 * same bytes (and gives the backend the same statistics). Builds with EF_NO_THREADS
 * (targets without pthreads) refuse frame_threads > 1 (EF_ERR_UNSUPPORTED).
 *
 * Pixel conventions (identical to the Python runtime, edgefusion/preprocess.py):
 *   - uint8 IR is divided by 255; uint16 IR is mapped by a per-frame percentile
 *     stretch (manifest preprocessing.thermal_stretch, default 0.5 .. 99.5 %).
 *   - the model sees the IR plane and the visible BT.601 luma Y; color comes back
 *     from the visible image's CbCr (OpenCV RGB2YCrCb coefficients).
 *   - frames are padded to the bundle's stride by edge replication, cropped back.
 *
 * Bundles: a folder with manifest.json (ef_open_dir) or the same files given as
 * memory arrays (ef_open_memory, e.g. the arrays written by
 * `edgefusion quantize --c-array` / `edgefusion native`). The manifest's seal of itself
 * ("manifest_sha256") and every file listed in its "sha256" must be present and match,
 * else EF_ERR_INTEGRITY.
 *
 * Backends: the analysis network runs behind ef_backend (a struct of function
 * pointers). The built-in backend is OpenVINO's C API (compile with
 * EF_WITH_OPENVINO and link libopenvino_c); any other engine (TensorRT, a vendor
 * NPU) plugs in through ef_options.backend, see the example at the end of this file.
 * The OpenVINO backend compiles a static-shape copy of a dynamic-shape model on the
 * first frame of each padded size (on CPU; the dynamic model when that fails) and
 * keeps the last EF_OV_STATIC_SHAPES (2) sizes: a new size costs one compilation
 * and its engine buffers; a kept size costs nothing (cycling through more sizes than
 * EF_OV_STATIC_SHAPES recompiles each time one comes back).
 */
#ifndef EDGEFUSION_H
#define EDGEFUSION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EF_VERSION "0.2.0"

typedef enum {
    EF_OK = 0,
    EF_ERR_ARGUMENT = 1,    /* NULL pointer, bad size, stride or format */
    EF_ERR_IO = 2,          /* a bundle file cannot be read */
    EF_ERR_MANIFEST = 3,    /* manifest.json malformed or lacks a key the runtime needs */
    EF_ERR_INTEGRITY = 4,   /* a file is missing or its SHA-256 differs from the manifest, or the manifest from its seal */
    EF_ERR_UNSUPPORTED = 5, /* backend, precision, layout, shape or frame_threads this build cannot run */
    EF_ERR_BACKEND = 6,     /* the inference engine failed */
    EF_ERR_MEMORY = 7,      /* allocation (or starting a frame thread) failed */
    EF_ERR_STATE = 8        /* the context failed to open; only ef_last_error/ef_close are valid */
} ef_status;

/* Pixel formats. IR: EF_U8 or EF_U16 gray. Visible: EF_GRAY, EF_RGB, EF_BGR (8-bit). Output: same three. */
typedef enum { EF_U8 = 1, EF_U16 = 2 } ef_ir_type;
typedef enum { EF_GRAY = 1, EF_RGB = 3, EF_BGR = 4 } ef_format;

/* One bundle file in memory: name relative to the bundle ("manifest.json", "model.xml", ...). */
typedef struct {
    const char *name;
    const unsigned char *data;
    size_t size;
} ef_file;

/* What a backend is told when it is created. Files are the bundle's, verified; their bytes
 * stay valid until destroy() (the strings and structs only during create()). */
typedef struct {
    const char *backend;     /* manifest "backend": "openvino", "tensorrt", ... */
    const char *precision;   /* "int8", "fp32", ... */
    const ef_file *model;    /* manifest files.model */
    const ef_file *weights;  /* manifest files.weights, or NULL */
    int n_inputs;            /* 2: (ir, vis); 3: (ir, vis, stats) for student v2 bundles */
    int output_maps;         /* 1: output "maps" (N,4,H/4,W/4), compose in the runtime; 0: output "fused" (N,1,H,W) */
    int threads;             /* ef_options.threads (0: engine default) */
    const char *device;      /* ef_options.device (NULL: engine default) */
    const float *stats_scale;/* NULL: run() gets the raw frame statistics; else 6 factors: run() gets
                                stats[i] * stats_scale[i] (manifest "stats_encoding", see run() below) */
} ef_model_info;

/*
 * An inference engine. create() is called once by ef_open_*; run() once per frame
 * with the padded planes (row-major float32, h x w, h and w multiples of the
 * stride), the 6 frame statistics for v2 bundles (else NULL), and the output
 * buffer: 4 x (h/4) x (w/4) maps when info->output_maps, else h x w fused luma.
 * Statistics are ENCODED when the manifest has "stats_encoding" (info->stats_scale
 * not NULL; e.g. --target arm:int8-io): stats[i] = raw[i] * stats_scale[i], which the
 * model decodes itself; an integer-input engine quantizes these encoded floats with
 * the manifest's io_quantization.stats (scale 1/255 over [0, 1]: saturate, do not
 * wrap). A stats_encoding of another form is refused by ef_open_* (EF_ERR_MANIFEST).
 * Pointers stay the same between calls of one frame size, so an engine may bind
 * them once. Errors: return non-zero and write a message into err (err_len bytes; one line,
 * line breaks become spaces). A create() that fails releases what it made: destroy() is not called.
 */
typedef struct {
    int (*create)(void *user, const ef_model_info *info, void **state, char *err, size_t err_len);
    int (*run)(void *state, const float *ir, const float *vis, const float *stats, int h, int w,
               float *out, char *err, size_t err_len);
    void (*destroy)(void *state);
    void *user; /* passed to create() */
} ef_backend;

/* Most frame threads of one context. */
#define EF_MAX_FRAME_THREADS 64

/* Options; a zeroed struct (or NULL) gives the defaults. */
typedef struct {
    const ef_backend *backend; /* NULL: the built-in OpenVINO backend (needs EF_WITH_OPENVINO) */
    const char *device;        /* OpenVINO device name, default "CPU" */
    int threads;               /* engine threads, 0 = engine default */
    int frame_threads;         /* threads of the frame path (input pass, composition, color, uint8) including the
                                  caller's: 0 or 1 = the caller's thread only (NOT "as threads": the engine's
                                  default is unknown here); 2 .. EF_MAX_FRAME_THREADS; else EF_ERR_ARGUMENT at open.
                                  A worker that cannot be started fails ef_open_* with EF_ERR_MEMORY. */
} ef_options;

typedef struct ef_context ef_context;

/*
 * Open a bundle folder / a bundle given as memory arrays (not copied: they must
 * outlive the context). On return *ctx is always set unless it is NULL or memory
 * ran out: on failure it holds only the error message (ef_last_error); close it
 * with ef_close in both cases.
 */
ef_status ef_open_dir(const char *path, const ef_options *opts, ef_context **ctx);
ef_status ef_open_memory(const ef_file *files, size_t n_files, const ef_options *opts, ef_context **ctx);

/*
 * Fuse one frame of w x h pixels. ir: EF_U8 or EF_U16 gray, ir_stride in bytes;
 * vis: EF_GRAY/EF_RGB/EF_BGR 8-bit, vis_stride in bytes; out: EF_GRAY/EF_RGB/EF_BGR
 * 8-bit, out_stride in bytes. A gray visible frame gives gray fused pixels (copied
 * to the three channels for a color output); a color output of a color visible
 * frame restores the visible chroma. Buffers must not overlap.
 */
ef_status ef_fuse(ef_context *ctx, const void *ir, ef_ir_type ir_type, size_t ir_stride,
                  const uint8_t *vis, ef_format vis_format, size_t vis_stride, int w, int h,
                  uint8_t *out, ef_format out_format, size_t out_stride);

/* The last error of ctx ("" after success); a static text for a NULL context. */
const char *ef_last_error(const ef_context *ctx);
/* A static description of a status code. */
const char *ef_status_name(ef_status status);
/* A built-in backend by bundle backend name ("openvino"), or NULL when this build has none
 * (e.g. to wrap it in a custom backend that measures or logs). */
const ef_backend *ef_builtin_backend(const char *name);
/* Release everything (NULL is allowed). ctx is gone afterwards: closing it twice is undefined, as free() twice is. */
void ef_close(ef_context *ctx);
/* The instruction set of the frame-path kernels in this build on this CPU: "avx2" or "portable"
 * (x86-64 CMake builds without AVX2 flags pick per CPU; see README.md and dispatch/ef_dispatch.c). */
const char *ef_kernels_isa(void);

/*
 * Example: a custom backend (e.g. TensorRT). The engine sees exactly the planes
 * and output the OpenVINO adapter sees; bind them on the first call of a size.
 *
 *   static int trt_create(void *user, const ef_model_info *info, void **state, char *err, size_t n) {
 *       my_engine *e = my_engine_load(info->model->data, info->model->size);   // e.g. deserialize a plan
 *       if (!e) { snprintf(err, n, "cannot load the engine"); return 1; }
 *       *state = e; return 0;
 *   }
 *   static int trt_run(void *state, const float *ir, const float *vis, const float *stats,
 *                      int h, int w, float *out, char *err, size_t n) {
 *       my_engine *e = state;                       // bindings: ir, vis (1x1xhxw), [stats (1x6)], maps (1x4xh/4xw/4)
 *       void *bind[4] = {(void *)ir, (void *)vis, (void *)stats, out};
 *       if (!my_engine_enqueue(e, bind, h, w)) { snprintf(err, n, "enqueue failed"); return 1; }
 *       return 0;                                    // synchronous: the maps must be ready on return
 *   }
 *   static void trt_destroy(void *state) { my_engine_free(state); }
 *
 *   ef_backend trt = {trt_create, trt_run, trt_destroy, NULL};
 *   ef_options opts = {&trt, NULL, 0};
 *   ef_context *ctx;
 *   if (ef_open_dir("bundle", &opts, &ctx) != EF_OK) fprintf(stderr, "%s\n", ef_last_error(ctx));
 */

#ifdef __cplusplus
}
#endif
#endif
