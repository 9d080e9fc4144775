/*
 * OpenVINO backend through its C API. The model is read from memory
 * (ov_core_read_model_from_memory_buffer, weights wrapped in a host-pointer
 * tensor, so no file system is needed), compiled for ef_options.device (default
 * CPU, with INFERENCE_PRECISION_HINT f32 as the Python backend) and run
 * synchronously. Input and output tensors wrap the runtime's own buffers and
 * are re-created only when the frame size or the buffers change.
 */
#include "ef_backend_openvino.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openvino/c/openvino.h>

typedef struct {
    ov_core_t *core;
    ov_model_t *model;
    ov_compiled_model_t *compiled;
    ov_infer_request_t *request;
    ov_tensor_t *weights;
    ov_tensor_t *inputs[3], *output;
    const float *bound[4]; /* host pointers the tensors wrap: ir, vis, stats, out */
    int h, w, n_inputs, output_maps;
} ov_state;

static int fail(char *err, size_t n, const char *what, ov_status_e status) {
    const char *detail = ov_get_last_err_msg();
    snprintf(err, n, "OpenVINO %s failed: %s", what, detail && *detail ? detail : ov_get_error_info(status));
    /* keep the message one line */
    for (; *err; err++)
        if (*err == '\n' || *err == '\r') *err = ' ';
    return 1;
}

static void free_io(ov_state *s) {
    int i;
    for (i = 0; i < 3; i++) {
        if (s->inputs[i]) ov_tensor_free(s->inputs[i]);
        s->inputs[i] = NULL;
    }
    if (s->output) ov_tensor_free(s->output);
    s->output = NULL;
    memset(s->bound, 0, sizeof s->bound);
}

static void ov_destroy(void *state) {
    ov_state *s = (ov_state *)state;
    if (!s) return;
    free_io(s);
    if (s->request) ov_infer_request_free(s->request);
    if (s->compiled) ov_compiled_model_free(s->compiled);
    if (s->model) ov_model_free(s->model);
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

static int ov_create(void *user, const ef_model_info *info, void **state, char *err, size_t n) {
    ov_state *s = (ov_state *)calloc(1, sizeof *s);
    const char *device = info->device && *info->device ? info->device : "CPU";
    char threads[16];
    ov_status_e st;
    (void)user;
    *state = NULL;
    if (!s) { snprintf(err, n, "out of memory"); return 1; }
    s->n_inputs = info->n_inputs;
    s->output_maps = info->output_maps;
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
    st = ov_core_read_model_from_memory_buffer(s->core, (const char *)info->model->data, info->model->size, s->weights, &s->model);
    if (st != OK) { fail(err, n, "reading the model", st); goto error; }
    snprintf(threads, sizeof threads, "%d", info->threads);
    if (strcmp(device, "CPU") == 0 && info->threads > 0)
        st = ov_core_compile_model(s->core, s->model, device, 4, &s->compiled, ov_property_key_hint_inference_precision, "f32",
                                   ov_property_key_inference_num_threads, threads);
    else if (strcmp(device, "CPU") == 0)
        st = ov_core_compile_model(s->core, s->model, device, 2, &s->compiled, ov_property_key_hint_inference_precision, "f32");
    else
        st = ov_core_compile_model(s->core, s->model, device, 0, &s->compiled);
    if (st != OK) { fail(err, n, "compiling the model", st); goto error; }
    if ((st = ov_compiled_model_create_infer_request(s->compiled, &s->request)) != OK) { fail(err, n, "infer request", st); goto error; }
    *state = s;
    return 0;
error:
    ov_destroy(s);
    return 1;
}

/* Wrap the runtime's buffers in tensors (again only when the size or a pointer changed). */
static int bind(ov_state *s, const float *ptrs[4], int h, int w, char *err, size_t n) {
    static const char *const names[3] = {"ir", "vis", "stats"};
    int64_t plane[4], stats[2], out[4];
    ov_status_e st;
    int i;
    plane[0] = 1; plane[1] = 1; plane[2] = h; plane[3] = w;
    stats[0] = 1; stats[1] = 6;
    out[0] = 1; out[1] = s->output_maps ? 4 : 1;
    out[2] = s->output_maps ? h / 4 : h; out[3] = s->output_maps ? w / 4 : w;
    free_io(s);
    for (i = 0; i < s->n_inputs; i++) {
        if ((st = host_tensor(ptrs[i], i < 2 ? 4 : 2, i < 2 ? plane : stats, &s->inputs[i])) != OK) return fail(err, n, "input tensor", st);
        if ((st = ov_infer_request_set_tensor(s->request, names[i], s->inputs[i])) != OK) return fail(err, n, "binding an input", st);
    }
    if ((st = host_tensor(ptrs[3], 4, out, &s->output)) != OK) return fail(err, n, "output tensor", st);
    if ((st = ov_infer_request_set_output_tensor_by_index(s->request, 0, s->output)) != OK) return fail(err, n, "binding the output", st);
    memcpy(s->bound, ptrs, sizeof s->bound);
    s->h = h;
    s->w = w;
    return 0;
}

static int ov_run(void *state, const float *ir, const float *vis, const float *stats, int h, int w, float *out, char *err, size_t n) {
    ov_state *s = (ov_state *)state;
    const float *ptrs[4];
    ov_status_e st;
    ptrs[0] = ir; ptrs[1] = vis; ptrs[2] = stats; ptrs[3] = out;
    if (h != s->h || w != s->w || memcmp(ptrs, s->bound, sizeof ptrs) != 0)
        if (bind(s, ptrs, h, w, err, n)) return 1;
    if ((st = ov_infer_request_infer(s->request)) != OK) return fail(err, n, "inference", st);
    return 0;
}

const ef_backend *ef_openvino_backend(void) {
    static const ef_backend backend = {ov_create, ov_run, ov_destroy, NULL};
    return &backend;
}
