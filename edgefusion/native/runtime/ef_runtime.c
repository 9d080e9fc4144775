/*
 * The C runtime (edgefusion.h): open a verified bundle, run the frame path
 * (ef_kernels.h) around one backend call, close.
 *
 * Frame path of ef_fuse, for a w x h frame padded to pw x ph (stride multiple,
 * or the bundle's fixed_shape):
 *   1. 16-bit IR: the percentile stretch into the IR plane;
 *   2. one pass over the rows (ef_prepare_u8): 8-bit IR / 255, visible -> BT.601 luma plane
 *      (a color frame with three equal channels is fused as gray), edge padding of both
 *      planes, frame statistics for v2 bundles (unpadded planes);
 *   3. the statistics encoded (times the manifest's stats_encoding.scale) when the bundle says so;
 *   4. backend: maps (compose = runtime) or fused luma;
 *   5. one strip-wise pass: composition, color restore from the visible frame, uint8.
 * Buffers are sized for the largest frame seen and reused: no allocation per frame.
 *
 * Frame threads (ef_options.frame_threads = T > 1): steps 2 and 5 run in T bands of rows on
 * the caller's thread and T - 1 workers (ef_pool.h) started at open: step 2 in bands of whole
 * strips (EF_K_STRIP rows; each band's first strip's statistics after a second barrier, once the
 * row above it is written), step 5 in bands of 4-row map blocks, each band with its own compose
 * scratch. The statistics are sums per strip added in strip order, so every T gives the same
 * bytes. Step 1 (16-bit percentiles) and the gray-in-color check stay on the caller's thread.
 */
#include "edgefusion.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ef_kernels.h"
#include "ef_manifest.h"
#include "ef_pool.h"
#include "ef_sha256.h"
#ifdef EF_WITH_OPENVINO
#include "ef_backend_openvino.h"
#endif

#define EF_ERR_LEN 512

/* ef_pool runs at most EF_MAX_FRAME_THREADS bands (the per-band results below). */
typedef char ef_pool_max_check[EF_POOL_MAX == EF_MAX_FRAME_THREADS ? 1 : -1];

struct ef_context {
    int open;                      /* 1 once ef_open_* succeeded */
    char error[EF_ERR_LEN];
    ef_manifest manifest;
    ef_file model, weights;        /* verified model files (pointing into owned or caller memory) */
    unsigned char *owned[EF_MAX_FILES + 1]; /* file contents read by ef_open_dir */
    ef_backend backend;
    void *state;
    size_t ir_cap, vis_cap, out_cap, scratch_cap, partials_cap; /* allocated bytes */
    float *ir, *vis, *out;
    void *scratch;      /* frame threads x slice bytes: band b's compose scratch at b x slice (band 0: also the percentiles') */
    size_t slice;
    void *partials;     /* per-strip statistics sums (ef_prepare_u8_rows) */
    float stats[EF_K_N_STATS];
    ef_pool pool;
    struct frame_job {  /* the frame the bands work on (set by ef_fuse before each ef_pool_run) */
        const uint8_t *ir, *vis;
        size_t ir_stride, vis_stride, out_stride;
        int vis_format, out_format, w, h, pw, ph, stats;
        const ef_chroma *color;
        uint8_t *out;
        int rc[EF_POOL_MAX]; /* a kernel's result per band */
    } job;
};

/* Keep a one-line message (a path or a backend's text may hold line breaks). */
static ef_status set_error(ef_context *ctx, ef_status status, const char *fmt, ...) {
    va_list args;
    char *c;
    va_start(args, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, args);
    va_end(args);
    for (c = ctx->error; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    return status;
}

/* EF_ERR_BACKEND with the backend's message, or "<what> failed" without one (a backend may fill err to its end). */
static ef_status backend_error(ef_context *ctx, char *reason, size_t len, const char *what) {
    reason[len - 1] = '\0';
    return set_error(ctx, EF_ERR_BACKEND, "%s backend: %s", ctx->manifest.backend, reason[0] ? reason : what);
}

const char *ef_status_name(ef_status status) {
    switch (status) {
    case EF_OK: return "ok";
    case EF_ERR_ARGUMENT: return "invalid argument";
    case EF_ERR_IO: return "cannot read a bundle file";
    case EF_ERR_MANIFEST: return "invalid manifest";
    case EF_ERR_INTEGRITY: return "bundle integrity check failed";
    case EF_ERR_UNSUPPORTED: return "unsupported bundle or frame";
    case EF_ERR_BACKEND: return "inference backend error";
    case EF_ERR_MEMORY: return "out of memory";
    case EF_ERR_STATE: return "context is not open";
    }
    return "unknown status";
}

const char *ef_last_error(const ef_context *ctx) {
    return ctx ? ctx->error : "no context (out of memory or NULL argument)";
}

const ef_backend *ef_builtin_backend(const char *name) {
#ifdef EF_WITH_OPENVINO
    if (name && strcmp(name, "openvino") == 0) return ef_openvino_backend();
#endif
    (void)name;
    return NULL;
}

static const ef_file *find_file(const ef_file *files, size_t n, const char *name) {
    size_t i;
    for (i = 0; i < n; i++)
        if (files[i].name && strcmp(files[i].name, name) == 0) return &files[i];
    return NULL;
}

/* Parse the manifest, verify every hashed file, pick the backend and create it. */
static ef_status open_bundle(ef_context *ctx, const ef_file *files, size_t n, const ef_options *opts) {
    ef_manifest *m = &ctx->manifest;
    const ef_file *manifest = find_file(files, n, "manifest.json"), *f;
    ef_model_info info;
    char reason[EF_ERR_LEN - 64], hex[65];
    int i;
    if (!manifest) return set_error(ctx, EF_ERR_INTEGRITY, "bundle has no manifest.json");
    if (ef_manifest_parse((const char *)manifest->data, manifest->size, m, reason, sizeof reason))
        return set_error(ctx, EF_ERR_MANIFEST, "%s", reason);
    if (ef_manifest_check_seal((const char *)manifest->data, manifest->size, m, reason, sizeof reason))
        return set_error(ctx, EF_ERR_INTEGRITY, "%s", reason);
    for (i = 0; i < m->n_hashes; i++) {
        if (!(f = find_file(files, n, m->hashes[i].name))) return set_error(ctx, EF_ERR_INTEGRITY, "bundle: missing file %s", m->hashes[i].name);
        ef_sha256_hex(f->data, f->size, hex);
        if (strcmp(hex, m->hashes[i].sha256) != 0)
            return set_error(ctx, EF_ERR_INTEGRITY, "bundle: SHA-256 mismatch for %s (file changed after the bundle was written)", f->name);
    }
    ctx->model = *find_file(files, n, m->model);
    if (m->weights[0]) ctx->weights = *find_file(files, n, m->weights);
    if (opts && opts->backend) {
        ctx->backend = *opts->backend;
    } else {
        const ef_backend *builtin = ef_builtin_backend(m->backend);
        if (!builtin)
            return set_error(ctx, EF_ERR_UNSUPPORTED, "bundle backend %s has no built-in C backend in this build (built in: %s); pass ef_options.backend",
                             m->backend, ef_builtin_backend("openvino") ? "openvino" : "none");
        if (strcmp(m->layout, "NCHW") != 0 || strcmp(m->io_dtype, "float32") != 0)
            return set_error(ctx, EF_ERR_UNSUPPORTED, "the built-in %s backend runs NCHW float32 I/O, not %s %s", m->backend, m->layout, m->io_dtype);
        ctx->backend = *builtin;
    }
    if (!ctx->backend.create || !ctx->backend.run) return set_error(ctx, EF_ERR_ARGUMENT, "ef_options.backend lacks create or run");
    switch (ef_pool_start(&ctx->pool, opts ? opts->frame_threads : 0, reason, sizeof reason)) { /* before the (slow) backend */
    case EF_POOL_OK: break;
    case EF_POOL_EARG: return set_error(ctx, EF_ERR_ARGUMENT, "ef_options.%s", reason);
    case EF_POOL_EUNSUPPORTED: return set_error(ctx, EF_ERR_UNSUPPORTED, "ef_options.%s", reason);
    default: return set_error(ctx, EF_ERR_MEMORY, "%s", reason);
    }
    info.backend = m->backend;
    info.precision = m->precision;
    info.model = &ctx->model;
    info.weights = m->weights[0] ? &ctx->weights : NULL;
    info.n_inputs = m->n_inputs;
    info.stats_scale = m->stats_encoded ? m->stats_scale : NULL;
    info.output_maps = m->compose_runtime;
    info.threads = opts ? opts->threads : 0;
    info.device = opts ? opts->device : NULL;
    reason[0] = '\0';
    if (ctx->backend.create(ctx->backend.user, &info, &ctx->state, reason, sizeof reason)) {
        ctx->state = NULL;
        return backend_error(ctx, reason, sizeof reason, "create failed");
    }
    ctx->open = 1;
    return EF_OK;
}

static ef_status new_context(ef_context **ctx) {
    if (!ctx) return EF_ERR_ARGUMENT;
    *ctx = (ef_context *)calloc(1, sizeof **ctx);
    return *ctx ? EF_OK : EF_ERR_MEMORY;
}

ef_status ef_open_memory(const ef_file *files, size_t n_files, const ef_options *opts, ef_context **ctx) {
    ef_status st = new_context(ctx);
    size_t i;
    if (st != EF_OK) return st;
    if (!files || n_files == 0) return set_error(*ctx, EF_ERR_ARGUMENT, "ef_open_memory: no files");
    for (i = 0; i < n_files; i++)
        if (!files[i].name || (!files[i].data && files[i].size))
            return set_error(*ctx, EF_ERR_ARGUMENT, "ef_open_memory: file %lu has no name or data", (unsigned long)i);
    return open_bundle(*ctx, files, n_files, opts);
}

/* Read a whole file; NULL on failure (*size untouched). A file with no first byte to read (e.g. a directory, whose
 * "size" may be LONG_MAX) fails before the allocation. */
static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 && (n == 0 || ungetc(getc(f), f) != EOF)) {
        data = (unsigned char *)malloc(n ? (size_t)n : 1);
        if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
            free(data);
            data = NULL;
        }
        if (data) *size = (size_t)n;
    }
    fclose(f);
    return data;
}

ef_status ef_open_dir(const char *path, const ef_options *opts, ef_context **ctx) {
    ef_file files[EF_MAX_FILES + 1];
    ef_manifest *list;
    char full[EF_NAME_MAX * 2 + 8], reason[EF_ERR_LEN - 64];
    size_t n = 1;
    int i;
    ef_status st = new_context(ctx);
    if (st != EF_OK) return st;
    if (!path) return set_error(*ctx, EF_ERR_ARGUMENT, "ef_open_dir: NULL path");
    if (strlen(path) > EF_NAME_MAX) return set_error(*ctx, EF_ERR_ARGUMENT, "bundle path too long");
    snprintf(full, sizeof full, "%s/manifest.json", path);
    files[0].name = "manifest.json";
    if (!((*ctx)->owned[0] = read_file(full, &files[0].size)))
        return set_error(*ctx, EF_ERR_IO, "bundle %s: cannot read manifest.json", path);
    files[0].data = (*ctx)->owned[0];
    if (!(list = (ef_manifest *)malloc(sizeof *list))) return set_error(*ctx, EF_ERR_MEMORY, "out of memory");
    /* the file list; open_bundle parses the manifest again from memory, as for ef_open_memory */
    if (ef_manifest_parse((const char *)files[0].data, files[0].size, list, reason, sizeof reason)) {
        free(list);
        return set_error(*ctx, EF_ERR_MANIFEST, "bundle %s: %s", path, reason);
    }
    for (i = 0; i < list->n_hashes; i++) {
        snprintf(full, sizeof full, "%s/%s", path, list->hashes[i].name);
        if (!((*ctx)->owned[n] = read_file(full, &files[n].size))) continue; /* reported as missing by open_bundle */
        files[n].name = list->hashes[i].name;
        files[n].data = (*ctx)->owned[n];
        n++;
    }
    st = open_bundle(*ctx, files, n, opts);
    free(list); /* after open_bundle: the file names point into it */
    for (i = 0; i <= EF_MAX_FILES; i++) /* keep only the model files (e.g. not bundle_data.c) */
        if ((*ctx)->owned[i] && (*ctx)->owned[i] != (*ctx)->model.data && (*ctx)->owned[i] != (*ctx)->weights.data) {
            free((*ctx)->owned[i]);
            (*ctx)->owned[i] = NULL;
        }
    if (st != EF_OK) {
        char inner[EF_ERR_LEN];
        snprintf(inner, sizeof inner, "%s", (*ctx)->error);
        set_error(*ctx, st, "bundle %s: %s", path, inner);
    }
    return st;
}

void ef_close(ef_context *ctx) {
    int i;
    if (!ctx) return;
    ef_pool_stop(&ctx->pool);
    if (ctx->state && ctx->backend.destroy) ctx->backend.destroy(ctx->state);
    for (i = 0; i <= EF_MAX_FILES; i++) free(ctx->owned[i]);
    free(ctx->ir);
    free(ctx->vis);
    free(ctx->out);
    free(ctx->scratch);
    free(ctx->partials);
    free(ctx);
}

/* Grow *buf to hold at least need bytes (contents are not kept). */
static int reserve(void **buf, size_t *cap, size_t need) {
    void *p;
    if (need <= *cap) return 0;
    free(*buf);
    *buf = NULL;
    *cap = 0;
    if (!(p = malloc(need))) return -1;
    *buf = p;
    *cap = need;
    return 0;
}

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

/* Padded size of a w x h frame: stride multiples, at least the fixed shape (never above it). */
static ef_status padded_size(ef_context *ctx, int w, int h, int *pw, int *ph) {
    const ef_manifest *m = &ctx->manifest;
    *pw = (int)round_up((size_t)w, (size_t)m->stride);
    *ph = (int)round_up((size_t)h, (size_t)m->stride);
    if (m->fixed_h) {
        if (*ph > m->fixed_h || *pw > m->fixed_w)
            return set_error(ctx, EF_ERR_UNSUPPORTED, "frame %dx%d is larger than the bundle's fixed shape %dx%d (the C runtime does not tile)",
                             w, h, m->fixed_w, m->fixed_h);
        *pw = m->fixed_w;
        *ph = m->fixed_h;
    }
    return EF_OK;
}

static ef_status reserve_frame(ef_context *ctx, int pw, int ph) {
    size_t plane = (size_t)pw * (size_t)ph * sizeof(float);
    size_t out = ctx->manifest.compose_runtime ? plane / 4 : plane; /* 4 maps at 1/16 of the pixels */
    size_t slice = round_up(ef_compose_scratch_bytes(pw, ph), 64), scratch = slice * (size_t)ctx->pool.threads;
    if (scratch < ef_percentiles_scratch_bytes()) scratch = ef_percentiles_scratch_bytes();
    if (reserve((void **)&ctx->ir, &ctx->ir_cap, plane) || reserve((void **)&ctx->vis, &ctx->vis_cap, plane) ||
        reserve((void **)&ctx->out, &ctx->out_cap, out) || reserve(&ctx->scratch, &ctx->scratch_cap, scratch) ||
        reserve(&ctx->partials, &ctx->partials_cap, ef_prepare_partials_bytes(ph)))
        return set_error(ctx, EF_ERR_MEMORY, "out of memory for a %dx%d frame", pw, ph);
    ctx->slice = slice;
    return EF_OK;
}

static int channels(ef_format f) { return f == EF_GRAY ? 1 : 3; }

/* Band b of T over n units of size rows (the last unit may be cut by h): rows *y0 .. *y1 - 1, empty when *y0 >= *y1. */
static void band_rows(int b, int t, int h, int size, int *y0, int *y1) {
    long n = (h + size - 1) / size;
    *y0 = (int)(n * b / t) * size;
    *y1 = (int)(n * (b + 1) / t) * size;
    if (*y1 > h) *y1 = h;
}

/* ef_pool jobs of ef_fuse: the input pass (rows, then each band's first strip's statistics) and the output pass. */
static void prepare_band(void *arg, int b) {
    ef_context *ctx = (ef_context *)arg;
    struct frame_job *f = &ctx->job;
    int y0, y1;
    band_rows(b, ctx->pool.threads, f->h, EF_K_STRIP, &y0, &y1);
    f->rc[b] = y0 >= y1 ? EF_K_OK
                        : ef_prepare_u8_rows(f->ir, f->ir_stride, f->vis, f->vis_stride, f->vis_format, f->w, f->h, f->pw, y0, y1, 0,
                                             ctx->ir, ctx->vis, (size_t)f->pw, f->stats ? ctx->partials : NULL);
}

static void first_strip_band(void *arg, int b) {
    ef_context *ctx = (ef_context *)arg;
    struct frame_job *f = &ctx->job;
    int y0, y1;
    band_rows(b, ctx->pool.threads, f->h, EF_K_STRIP, &y0, &y1);
    if (y0 > 0 && y0 < y1 && f->rc[b] == EF_K_OK)
        f->rc[b] = ef_prepare_u8_strip_stats(f->ir, f->ir_stride, f->w, f->h, y0, ctx->ir, ctx->vis, (size_t)f->pw, ctx->partials);
}

static void output_band(void *arg, int b) {
    ef_context *ctx = (ef_context *)arg;
    struct frame_job *f = &ctx->job;
    size_t ld = (size_t)f->pw;
    int y0, y1;
    band_rows(b, ctx->pool.threads, f->h, 4, &y0, &y1);
    if (y0 >= y1) {
        f->rc[b] = EF_K_OK;
    } else if (ctx->manifest.compose_runtime) {
        f->rc[b] = ef_compose_u8_rows(ctx->ir, ctx->vis, ld, f->pw, f->ph, ctx->out, f->w, f->h, y0, y1, f->color, f->out, f->out_stride,
                                      f->out_format, (unsigned char *)ctx->scratch + (size_t)b * ctx->slice);
    } else { /* restore rows y0 .. y1 - 1: the same kernel on the band's rows */
        ef_chroma band;
        if (f->color) {
            band = *f->color;
            band.src += (size_t)y0 * band.src_stride;
        }
        f->rc[b] = ef_restore_u8(ctx->out + (size_t)y0 * ld, ld, f->w, y1 - y0, f->color ? &band : NULL, f->out + (size_t)y0 * f->out_stride,
                                 f->out_stride, f->out_format);
    }
}

/* EF_K_OK when every band of the last run succeeded. */
static int bands_rc(const ef_context *ctx) {
    int b;
    for (b = 0; b < ctx->pool.threads; b++)
        if (ctx->job.rc[b] != EF_K_OK) return ctx->job.rc[b];
    return EF_K_OK;
}

/* h rows of stride bytes fit in the address space (no row offset y * stride wraps around). */
static int rows_fit(size_t stride, int h) { return stride <= SIZE_MAX / (size_t)h; }

static ef_status check_args(ef_context *ctx, const void *ir, ef_ir_type ir_type, size_t ir_stride, const uint8_t *vis,
                            ef_format vis_format, size_t vis_stride, int w, int h, const uint8_t *out, ef_format out_format,
                            size_t out_stride) {
    if (!ir || !vis || !out) return set_error(ctx, EF_ERR_ARGUMENT, "ef_fuse: NULL pixel buffer");
    if (w < 1 || h < 1 || w > EF_MAX_SIDE || h > EF_MAX_SIDE)
        return set_error(ctx, EF_ERR_ARGUMENT, "ef_fuse: frame %dx%d out of range (1..%d per side)", w, h, EF_MAX_SIDE);
    if (ir_type != EF_U8 && ir_type != EF_U16) return set_error(ctx, EF_ERR_ARGUMENT, "ef_fuse: IR type must be EF_U8 or EF_U16");
    if ((vis_format != EF_GRAY && vis_format != EF_RGB && vis_format != EF_BGR) ||
        (out_format != EF_GRAY && out_format != EF_RGB && out_format != EF_BGR))
        return set_error(ctx, EF_ERR_ARGUMENT, "ef_fuse: formats must be EF_GRAY, EF_RGB or EF_BGR");
    if (ir_stride < (size_t)w * (ir_type == EF_U16 ? 2u : 1u) || vis_stride < (size_t)w * (size_t)channels(vis_format) ||
        out_stride < (size_t)w * (size_t)channels(out_format))
        return set_error(ctx, EF_ERR_ARGUMENT, "ef_fuse: a row stride is smaller than the row");
    if (!rows_fit(ir_stride, h) || !rows_fit(vis_stride, h) || !rows_fit(out_stride, h))
        return set_error(ctx, EF_ERR_ARGUMENT, "ef_fuse: a row stride times the height %d exceeds the address space", h);
    if (ir_type == EF_U16 && ((uintptr_t)ir % 2 || ir_stride % 2))
        return set_error(ctx, EF_ERR_ARGUMENT, "ef_fuse: 16-bit IR needs 2-byte aligned rows");
    return EF_OK;
}

ef_status ef_fuse(ef_context *ctx, const void *ir, ef_ir_type ir_type, size_t ir_stride, const uint8_t *vis,
                  ef_format vis_format, size_t vis_stride, int w, int h, uint8_t *out, ef_format out_format,
                  size_t out_stride) {
    const ef_manifest *m;
    ef_chroma chroma, *color = NULL;
    char reason[EF_ERR_LEN - 64];
    int pw, ph, rc;
    size_t ld;
    ef_status st;
    if (!ctx) return EF_ERR_ARGUMENT;
    if (!ctx->open) return EF_ERR_STATE; /* keeps the open error readable */
    ctx->error[0] = '\0';
    m = &ctx->manifest;
    if ((st = check_args(ctx, ir, ir_type, ir_stride, vis, vis_format, vis_stride, w, h, out, out_format, out_stride)) != EF_OK) return st;
    if ((st = padded_size(ctx, w, h, &pw, &ph)) != EF_OK || (st = reserve_frame(ctx, pw, ph)) != EF_OK) return st;
    ld = (size_t)pw;
    rc = EF_K_OK;
    if (ir_type == EF_U16) { /* the stretch needs the whole frame's percentiles first */
        double lo, hi;
        rc = ef_percentiles_u16((const uint16_t *)ir, ir_stride, w, h, m->stretch_low, m->stretch_high, ctx->scratch, &lo, &hi);
        if (rc == EF_K_OK) rc = ef_stretch_u16((const uint16_t *)ir, ir_stride, w, h, lo, hi, ctx->ir, ld);
    }
    if (vis_format != EF_GRAY && !ef_channels_identical_u8(vis, vis_stride, w, h)) { /* else gray stored in a color frame */
        chroma.src = vis;
        chroma.src_stride = vis_stride;
        chroma.order = vis_format == EF_RGB ? EF_K_RGB : EF_K_BGR;
        chroma.cb = chroma.cr = NULL;
        chroma.ld = 0;
        color = &chroma;
    }
    ctx->job.ir = ir_type == EF_U8 ? (const uint8_t *)ir : NULL;
    ctx->job.ir_stride = ir_stride;
    ctx->job.vis = vis;
    ctx->job.vis_stride = vis_stride;
    ctx->job.vis_format = vis_format == EF_GRAY ? EF_K_GRAY : vis_format == EF_RGB ? EF_K_RGB : EF_K_BGR;
    ctx->job.w = w;
    ctx->job.h = h;
    ctx->job.pw = pw;
    ctx->job.ph = ph;
    ctx->job.stats = m->n_inputs == 3;
    ctx->job.color = color;
    ctx->job.out = out;
    ctx->job.out_stride = out_stride;
    ctx->job.out_format = (int)out_format;
    if (rc == EF_K_OK) {
        ef_pool_run(&ctx->pool, prepare_band, ctx);
        if (ctx->job.stats && ctx->pool.threads > 1) ef_pool_run(&ctx->pool, first_strip_band, ctx);
        rc = bands_rc(ctx);
    }
    if (rc == EF_K_OK)
        rc = ef_prepare_u8_finish(ir_type == EF_U8, w, h, pw, ph, ctx->ir, ctx->vis, ld, ctx->partials, ctx->job.stats ? ctx->stats : NULL);
    if (rc == EF_K_OK && m->stats_encoded) {
        int k;
        for (k = 0; k < EF_N_STATS; k++) ctx->stats[k] *= m->stats_scale[k];
    }
    if (rc != EF_K_OK) return set_error(ctx, EF_ERR_ARGUMENT, "ef_fuse: a frame-path kernel refused the %dx%d frame", w, h);
    reason[0] = '\0';
    if (ctx->backend.run(ctx->state, ctx->ir, ctx->vis, m->n_inputs == 3 ? ctx->stats : NULL, ph, pw, ctx->out, reason, sizeof reason))
        return backend_error(ctx, reason, sizeof reason, "run failed");
    ef_pool_run(&ctx->pool, output_band, ctx);
    rc = bands_rc(ctx);
    if (rc != EF_K_OK) return set_error(ctx, EF_ERR_ARGUMENT, "ef_fuse: composition refused the %dx%d frame", w, h);
    return EF_OK;
}
