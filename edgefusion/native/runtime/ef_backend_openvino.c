/*
 * OpenVINO backend through its C API. The model is read from memory
 * (ov_core_read_model_from_memory_buffer, weights wrapped in a host-pointer
 * tensor, so no file system is needed), compiled for ef_options.device (default
 * CPU, with INFERENCE_PRECISION_HINT f32 as the Python backend) and run
 * synchronously. Input and output tensors wrap the runtime's own buffers and
 * are re-created only when the frame size or the buffers change.
 *
 * Static shapes (as the Python backend): on CPU, a model with dynamic height and
 * width runs each padded frame size on a copy of the model reshaped to that
 * static size, compiled on the size's first frame (faster per frame than the
 * dynamic model, and one size always gives the same output). The last
 * EF_OV_STATIC_SHAPES sizes are kept (least recently used dropped); a size whose
 * reshape or compilation fails runs on the dynamic model, compiled at create.
 */
#include "ef_backend_openvino.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openvino/c/openvino.h>

/* A compiled model, its infer request and the tensors bound to it (for one padded size). */
typedef struct {
    ov_compiled_model_t *compiled;
    ov_infer_request_t *request;
    ov_tensor_t *inputs[3], *output;
    const float *bound[4]; /* host pointers the tensors wrap: ir, vis, stats, out */
    int h, w;              /* size the tensors are bound for (0: none) */
} ov_runner;

/* A static-shape slot: the model reshaped to h x w and compiled (runner.compiled NULL: that failed). */
typedef struct {
    int h, w;              /* 0: empty */
    unsigned long used;    /* LRU clock */
    ov_runner runner;
} ov_slot;

typedef struct {
    ov_core_t *core;
    ov_tensor_t *weights;
    ef_file xml;           /* the bundle's model.xml (its bytes outlive the backend) */
    char device[128];      /* copied: ef_options.device need not outlive ef_open_* */
    char threads[16];      /* INFERENCE_NUM_THREADS, "" for the engine default */
    ov_runner dynamic;     /* the model as stored (dynamic h, w): fallback */
    int reshape;           /* 1: dynamic h, w on CPU, run each size on a static-shape copy */
    ov_slot slots[EF_OV_STATIC_SHAPES];
    unsigned long clock;
    int n_inputs, output_maps;
} ov_state;

static int fail(char *err, size_t n, const char *what, ov_status_e status) {
    const char *detail = ov_get_last_err_msg();
    snprintf(err, n, "OpenVINO %s failed: %s", what, detail && *detail ? detail : ov_get_error_info(status));
    /* keep the message one line */
    for (; *err; err++)
        if (*err == '\n' || *err == '\r') *err = ' ';
    return 1;
}

static void free_io(ov_runner *r) {
    int i;
    for (i = 0; i < 3; i++) {
        if (r->inputs[i]) ov_tensor_free(r->inputs[i]);
        r->inputs[i] = NULL;
    }
    if (r->output) ov_tensor_free(r->output);
    r->output = NULL;
    memset(r->bound, 0, sizeof r->bound);
    r->h = r->w = 0;
}

static void free_runner(ov_runner *r) {
    free_io(r);
    if (r->request) ov_infer_request_free(r->request);
    if (r->compiled) ov_compiled_model_free(r->compiled);
    r->request = NULL;
    r->compiled = NULL;
}

static void ov_destroy(void *state) {
    ov_state *s = (ov_state *)state;
    int i;
    if (!s) return;
    for (i = 0; i < EF_OV_STATIC_SHAPES; i++) free_runner(&s->slots[i].runner);
    free_runner(&s->dynamic);
    if (s->weights) ov_tensor_free(s->weights);
    if (s->core) ov_core_free(s->core);
    free(s);
}

static ov_status_e host_tensor(const float *data, int rank, const int64_t *dims, ov_tensor_t **tensor) {
    ov_shape_t shape;
    ov_status_e st = ov_shape_create(rank, dims, &shape);
    if (st != OK) return st;
    st = ov_tensor_create_from_host_ptr(F32, shape, (void *)data, tensor);
    ov_shape_free(&shape);
    return st;
}

static ov_status_e read_model(ov_state *s, ov_model_t **model) {
    return ov_core_read_model_from_memory_buffer(s->core, (const char *)s->xml.data, s->xml.size, s->weights, model);
}

/* Compile model for s->device (CPU: f32 precision as the Python backend, threads if set) and create its request. */
static ov_status_e compile(ov_state *s, const ov_model_t *model, ov_runner *r) {
    ov_status_e st;
    if (strcmp(s->device, "CPU") == 0 && s->threads[0])
        st = ov_core_compile_model(s->core, model, s->device, 4, &r->compiled, ov_property_key_hint_inference_precision, "f32",
                                   ov_property_key_inference_num_threads, s->threads);
    else if (strcmp(s->device, "CPU") == 0)
        st = ov_core_compile_model(s->core, model, s->device, 2, &r->compiled, ov_property_key_hint_inference_precision, "f32");
    else
        st = ov_core_compile_model(s->core, model, s->device, 0, &r->compiled);
    if (st == OK) st = ov_compiled_model_create_infer_request(r->compiled, &r->request);
    if (st != OK) free_runner(r);
    return st;
}

static int ov_create(void *user, const ef_model_info *info, void **state, char *err, size_t n) {
    ov_state *s = (ov_state *)calloc(1, sizeof *s);
    ov_model_t *model = NULL;
    const char *device = info->device && *info->device ? info->device : "CPU";
    ov_status_e st;
    (void)user;
    *state = NULL;
    if (!s) { snprintf(err, n, "out of memory"); return 1; }
    s->n_inputs = info->n_inputs;
    s->output_maps = info->output_maps;
    s->xml = *info->model;
    if (strlen(device) >= sizeof s->device) { snprintf(err, n, "OpenVINO device name too long"); goto error; }
    strcpy(s->device, device);
    if (info->threads > 0) snprintf(s->threads, sizeof s->threads, "%d", info->threads);
    if ((st = ov_core_create(&s->core)) != OK) { fail(err, n, "core creation", st); goto error; }
    if (info->weights) {
        int64_t dims[1];
        ov_shape_t shape;
        dims[0] = (int64_t)info->weights->size;
        if ((st = ov_shape_create(1, dims, &shape)) != OK) { fail(err, n, "shape", st); goto error; }
        st = ov_tensor_create_from_host_ptr(U8, shape, (void *)info->weights->data, &s->weights);
        ov_shape_free(&shape);
        if (st != OK) { fail(err, n, "weights tensor", st); goto error; }
    }
    if ((st = read_model(s, &model)) != OK) { fail(err, n, "reading the model", st); goto error; }
    s->reshape = strcmp(s->device, "CPU") == 0 && ov_model_is_dynamic(model);
    st = compile(s, model, &s->dynamic);
    ov_model_free(model);
    if (st != OK) { fail(err, n, "compiling the model", st); goto error; }
    *state = s;
    return 0;
error:
    ov_destroy(s);
    return 1;
}

/* A static-shape runner for h x w: the cached one, or the model read again, reshaped and compiled in the
 * least recently used slot. NULL when that failed (the caller runs the dynamic model for this size). */
static ov_runner *static_runner(ov_state *s, int h, int w) {
    static const char *const names[2] = {"ir", "vis"};
    ov_partial_shape_t shapes[2];
    ov_model_t *model = NULL;
    ov_slot *slot = &s->slots[0];
    int64_t dims[4];
    ov_status_e st;
    int i, made = 0;
    for (i = 0; i < EF_OV_STATIC_SHAPES; i++) {
        if (s->slots[i].h == h && s->slots[i].w == w) {
            s->slots[i].used = ++s->clock;
            return s->slots[i].runner.compiled ? &s->slots[i].runner : NULL;
        }
        if (s->slots[i].used < slot->used) slot = &s->slots[i];
    }
    free_runner(&slot->runner);
    slot->h = h;
    slot->w = w;
    slot->used = ++s->clock;
    dims[0] = 1; dims[1] = 1; dims[2] = h; dims[3] = w;
    memset(shapes, 0, sizeof shapes);
    st = read_model(s, &model);
    for (i = 0; i < 2 && st == OK; i++, made++) st = ov_partial_shape_create_static(4, dims, &shapes[i]);
    if (st == OK) st = ov_model_reshape(model, (const char **)names, shapes, 2);
    if (st == OK) compile(s, model, &slot->runner); /* on failure the slot stays empty: dynamic model */
    for (i = 0; i < made; i++) ov_partial_shape_free(&shapes[i]);
    if (model) ov_model_free(model);
    return slot->runner.compiled ? &slot->runner : NULL;
}

/* Wrap the runtime's buffers in tensors (again only when the size or a pointer changed). */
static int bind(ov_state *s, ov_runner *r, const float *ptrs[4], int h, int w, char *err, size_t n) {
    static const char *const names[3] = {"ir", "vis", "stats"};
    int64_t plane[4], stats[2], out[4];
    ov_status_e st;
    int i;
    plane[0] = 1; plane[1] = 1; plane[2] = h; plane[3] = w;
    stats[0] = 1; stats[1] = 6;
    out[0] = 1; out[1] = s->output_maps ? 4 : 1;
    out[2] = s->output_maps ? h / 4 : h; out[3] = s->output_maps ? w / 4 : w;
    free_io(r);
    for (i = 0; i < s->n_inputs; i++) {
        if ((st = host_tensor(ptrs[i], i < 2 ? 4 : 2, i < 2 ? plane : stats, &r->inputs[i])) != OK) return fail(err, n, "input tensor", st);
        if ((st = ov_infer_request_set_tensor(r->request, names[i], r->inputs[i])) != OK) return fail(err, n, "binding an input", st);
    }
    if ((st = host_tensor(ptrs[3], 4, out, &r->output)) != OK) return fail(err, n, "output tensor", st);
    if ((st = ov_infer_request_set_output_tensor_by_index(r->request, 0, r->output)) != OK) return fail(err, n, "binding the output", st);
    memcpy(r->bound, ptrs, sizeof r->bound);
    r->h = h;
    r->w = w;
    return 0;
}

static int ov_run(void *state, const float *ir, const float *vis, const float *stats, int h, int w, float *out, char *err, size_t n) {
    ov_state *s = (ov_state *)state;
    ov_runner *r = s->reshape ? static_runner(s, h, w) : NULL;
    const float *ptrs[4];
    ov_status_e st;
    if (!r) r = &s->dynamic;
    ptrs[0] = ir; ptrs[1] = vis; ptrs[2] = stats; ptrs[3] = out;
    if (h != r->h || w != r->w || memcmp(ptrs, r->bound, sizeof ptrs) != 0)
        if (bind(s, r, ptrs, h, w, err, n)) return 1;
    if ((st = ov_infer_request_infer(r->request)) != OK) return fail(err, n, "inference", st);
    return 0;
}

const ef_backend *ef_openvino_backend(void) {
    static const ef_backend backend = {ov_create, ov_run, ov_destroy, NULL};
    return &backend;
}
