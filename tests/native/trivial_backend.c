/*
 * Test driver: the C runtime with a trivial custom backend (no inference engine),
 * and a counting allocator (link with -Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc).
 *
 *   trivial_backend [--frame-threads N] MODE...   any mode below with ef_options.frame_threads = N (default 0);
 *     an open that fails prints "trivial_backend: open: STATUS: message" and exits 2
 *   trivial_backend BUNDLE IR.pgm VIS.pgm|ppm OUT.pgm|ppm [REPEAT]
 *     fuses REPEAT times (default 2) with maps M0 = stats[0] (v2 bundles) or 0,
 *     M1 = M2 = 0.5, M3 = 0: fused = stats[0] + (ir + vis) / 2 (clipped); prints JSON:
 *     {"allocs_after_first": N, "peak_heap": BYTES, "runs": N, "stats": [6 or none], "stats_scale": [6 or none],
 *      "bgr_difference": N}   (stats as run() got them; stats_scale: ef_model_info.stats_scale, none when NULL)
 *     (bgr_difference: largest difference between the RGB result and the result of the same
 *     frame given as BGR into a BGR output with padded rows, channels swapped back; -1 for gray)
 *   trivial_backend --bad-args BUNDLE   prints one status per invalid call, one line each
 *   trivial_backend --backend-errors BUNDLE   prints "STATUS MESSAGE" per call, one line each: a backend whose create,
 *     then run, fails with a two-line message or fills err to its end without a NUL, a fuse after those, and
 *     ef_open_memory of the bundle's manifest with its model given as NULL, 0 (an empty file)
 *   trivial_backend --bench BUNDLE WxH N [FRAMES]   times N fuses of a synthetic uint8 IR + RGB frame (after 3
 *     warm-up frames); prints the median milliseconds of ef_fuse without the backend call (the C frame path).
 *     FRAMES (default 1): fuse n reads and writes the caller's buffer set n % FRAMES (IR, visible, output;
 *     equal contents): more sets than fit twice in the last-level cache time frames that come from DRAM
 *     ("cold", benchmarks/cold.py)
 *   trivial_backend --synthetic BUNDLE WxH   fuses a synthetic uint8 IR + RGB frame 3 times; prints the
 *     runtime's peak heap, the input+output bytes and the allocations of the third call
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgefusion.h"
#include "pnm.h"

/* ---- counting allocator ---------------------------------------------------------- */
void *__real_malloc(size_t n);
void __real_free(void *p);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

static size_t live, peak, allocs;
#define HDR 16

void *__wrap_malloc(size_t n) {
    unsigned char *p = (unsigned char *)__real_malloc(n + HDR);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    live += n;
    allocs++;
    if (live > peak) peak = live;
    return p + HDR;
}
void __wrap_free(void *q) {
    size_t n;
    if (!q) return;
    memcpy(&n, (unsigned char *)q - HDR, sizeof n);
    live -= n;
    __real_free((unsigned char *)q - HDR);
}
void *__wrap_calloc(size_t n, size_t m) {
    void *p = __wrap_malloc(n * m);
    if (p) memset(p, 0, n * m);
    return p;
}
void *__wrap_realloc(void *q, size_t n) {
    size_t old = 0;
    void *p;
    if (q) memcpy(&old, (unsigned char *)q - HDR, sizeof old);
    p = __wrap_malloc(n);
    if (p && q) memcpy(p, q, old < n ? old : n);
    if (p) __wrap_free(q);
    return p;
}

#ifdef TRIVIAL_FAIL_THREAD
/* Built with -DTRIVIAL_FAIL_THREAD=K -Wl,--wrap=pthread_create: the K-th thread creation fails (EAGAIN). */
#include <errno.h>
#include <pthread.h>
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg) {
    static int calls;
    return ++calls == TRIVIAL_FAIL_THREAD ? EAGAIN : __real_pthread_create(t, a, f, arg);
}
#endif

/* ---- the trivial backend ------------------------------------------------------------ */
typedef struct {
    int n_inputs, output_maps, runs;
    float stats[6], stats_scale[6];
    int encoded;
    double run_ms; /* wall time of the last run */
} trivial;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static trivial T; /* the driver opens one context at a time */
static int frame_threads; /* --frame-threads */

static int t_create(void *user, const ef_model_info *info, void **state, char *err, size_t n) {
    (void)user;
    if (info->model == NULL || info->model->size == 0) {
        snprintf(err, n, "no model bytes");
        return 1;
    }
    memset(&T, 0, sizeof T);
    T.n_inputs = info->n_inputs;
    T.output_maps = info->output_maps;
    T.encoded = info->stats_scale != NULL;
    if (T.encoded) memcpy(T.stats_scale, info->stats_scale, sizeof T.stats_scale);
    *state = &T;
    return 0;
}

static int t_run(void *state, const float *ir, const float *vis, const float *stats, int h, int w, float *out, char *err, size_t n) {
    trivial *t = (trivial *)state;
    size_t plane = (size_t)(h / 4) * (size_t)(w / 4), i;
    float m0 = stats ? stats[0] : 0.0f;
    double start = now_ms();
    (void)ir;
    (void)vis;
    if ((t->n_inputs == 3) != (stats != NULL) || !t->output_maps || h % 4 || w % 4) {
        snprintf(err, n, "unexpected call");
        return 1;
    }
    if (stats) memcpy(t->stats, stats, sizeof t->stats);
    for (i = 0; i < plane; i++) {
        out[i] = m0;
        out[plane + i] = 0.5f;
        out[2 * plane + i] = 0.5f;
        out[3 * plane + i] = 0.0f;
    }
    t->runs++;
    t->run_ms = now_ms() - start;
    return 0;
}

static void t_destroy(void *state) { (void)state; }

static const ef_backend TRIVIAL = {t_create, t_run, t_destroy, NULL};

/* The trivial backend, with create or run failing as fail_create / fail_run say: 1 a message over two lines,
   2 err filled to its end without a NUL; 0 succeed. */
static int fail_create, fail_run;

static int fail_with(int mode, char *err, size_t n) {
    if (mode == 1)
        snprintf(err, n, "first line\nsecond line");
    else
        memset(err, 'x', n);
    return 1;
}

static int f_create(void *user, const ef_model_info *info, void **state, char *err, size_t n) {
    return fail_create ? fail_with(fail_create, err, n) : t_create(user, info, state, err, n);
}

static int f_run(void *state, const float *ir, const float *vis, const float *stats, int h, int w, float *out, char *err, size_t n) {
    return fail_run ? fail_with(fail_run, err, n) : t_run(state, ir, vis, stats, h, w, out, err, n);
}

static int fail(ef_context *ctx, const char *what) {
    fprintf(stderr, "trivial_backend: %s: %s\n", what, ef_last_error(ctx));
    ef_close(ctx);
    return 2;
}

static int open_trivial(const char *bundle, ef_context **ctx) {
    ef_options opts;
    ef_status st;
    memset(&opts, 0, sizeof opts);
    opts.backend = &TRIVIAL;
    opts.frame_threads = frame_threads;
    if ((st = ef_open_dir(bundle, &opts, ctx)) == EF_OK) return 0;
    fprintf(stderr, "trivial_backend: open: %d: %s\n", (int)st, ef_last_error(*ctx));
    ef_close(*ctx);
    return -1;
}

static int bad_args(const char *bundle) {
    ef_context *ctx;
    uint8_t px[64 * 3], out[64 * 3];
    uint16_t ir16[64];
    memset(px, 100, sizeof px);
    memset(ir16, 0, sizeof ir16);
    if (open_trivial(bundle, &ctx)) return 2;
    printf("%d\n", ef_fuse(NULL, px, EF_U8, 8, px, EF_GRAY, 8, 8, 8, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, NULL, EF_U8, 8, px, EF_GRAY, 8, 8, 8, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, px, EF_U8, 8, px, EF_GRAY, 8, 0, 8, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, px, EF_U8, 8, px, EF_GRAY, 8, 8, -3, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, px, EF_U8, 7, px, EF_GRAY, 8, 8, 8, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, px, (ef_ir_type)9, 8, px, EF_GRAY, 8, 8, 8, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, px, EF_U8, 8, px, (ef_format)2, 8, 8, 8, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, px, EF_U8, 8, px, EF_RGB, 8, 8, 8, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, (uint8_t *)ir16 + 1, EF_U16, 16, px, EF_GRAY, 8, 8, 8, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, px, EF_U8, 8, px, EF_GRAY, 8, 100000, 1, out, EF_GRAY, 8));
    printf("%d\n", ef_fuse(ctx, px, EF_U8, (size_t)-1, px, EF_GRAY, 8, 8, 2, out, EF_GRAY, 8)); /* row 1 would wrap below px */
    printf("%d %s\n", ef_fuse(ctx, px, EF_U8, 8, px, EF_GRAY, 8, 8, 8, out, EF_GRAY, 8), ef_last_error(ctx));
    ef_close(ctx);
    return 0;
}

/* "STATUS MESSAGE" of an 8x8 gray fuse. */
static void print_fuse8(ef_context *ctx) {
    uint8_t px[64], out[64];
    memset(px, 100, sizeof px);
    printf("%d %s\n", ef_fuse(ctx, px, EF_U8, 8, px, EF_GRAY, 8, 8, 8, out, EF_GRAY, 8), ef_last_error(ctx));
}

static int backend_errors(const char *bundle) {
    static const ef_backend failing = {f_create, f_run, t_destroy, NULL};
    static unsigned char manifest[1 << 16];
    char path[1024];
    ef_file files[2] = {{"manifest.json", manifest, 0}, {"model.plan", NULL, 0}};
    ef_options opts;
    ef_context *ctx;
    ef_status st;
    FILE *f;
    memset(&opts, 0, sizeof opts);
    opts.backend = &failing;
    for (fail_create = 1; fail_create <= 2; fail_create++) {
        st = ef_open_dir(bundle, &opts, &ctx);
        printf("%d %s\n", st, ef_last_error(ctx));
        ef_close(ctx);
    }
    fail_create = 0;
    if (ef_open_dir(bundle, &opts, &ctx) != EF_OK) return fail(ctx, "open");
    for (fail_run = 1; fail_run <= 2; fail_run++) print_fuse8(ctx);
    fail_run = 0;
    print_fuse8(ctx); /* the context still fuses */
    ef_close(ctx);
    snprintf(path, sizeof path, "%s/manifest.json", bundle);
    if (!(f = fopen(path, "rb"))) return 2;
    files[0].size = fread(manifest, 1, sizeof manifest, f);
    fclose(f);
    st = ef_open_memory(files, 2, &opts, &ctx);
    printf("%d %s\n", st, ef_last_error(ctx));
    ef_close(ctx);
    return 0;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Most buffer sets of --bench (allocated per run): the cold protocol needs 2x the last-level cache, e.g. 469 640x480
   sets for a 480 MiB L3. */
#define MAX_SETS 65536

static int synthetic(const char *bundle, const char *size, int bench, int frames) {
    ef_context *ctx;
    int w, h, k, f;
    size_t i, n;
    uint8_t **ir, **vis, **out;
    if (sscanf(size, "%dx%d", &w, &h) != 2 || w < 1 || h < 1 || frames < 1 || frames > MAX_SETS) {
        fprintf(stderr, "trivial_backend: bad size %s or buffer sets %d (1..%d)\n", size, frames, MAX_SETS);
        return 2;
    }
    n = (size_t)w * h;
    ir = (uint8_t **)calloc((size_t)frames, sizeof *ir);
    vis = (uint8_t **)calloc((size_t)frames, sizeof *vis);
    out = (uint8_t **)calloc((size_t)frames, sizeof *out);
    if (!ir || !vis || !out) return 2;
    for (f = 0; f < frames; f++) {
        ir[f] = (uint8_t *)malloc(n);
        vis[f] = (uint8_t *)malloc(3 * n);
        out[f] = (uint8_t *)malloc(3 * n);
        if (!ir[f] || !vis[f] || !out[f]) return 2;
        for (i = 0; i < n; i++) ir[f][i] = (uint8_t)(i * 7);
        for (i = 0; i < 3 * n; i++) vis[f][i] = (uint8_t)(i * 13 + 5);
        memset(out[f], 0, 3 * n);
    }
    if (open_trivial(bundle, &ctx)) return 2;
    if (bench > 0) {
        double *ms = (double *)malloc((size_t)bench * sizeof *ms);
        if (!ms) return 2;
        for (k = -3; k < bench; k++) {
            double start, total;
            f = (k + 3) % frames;
            start = now_ms();
            if (ef_fuse(ctx, ir[f], EF_U8, (size_t)w, vis[f], EF_RGB, 3 * (size_t)w, w, h, out[f], EF_RGB, 3 * (size_t)w) != EF_OK) return fail(ctx, "fuse");
            total = now_ms() - start;
            if (k >= 0) ms[k] = total - T.run_ms;
        }
        qsort(ms, (size_t)bench, sizeof *ms, compare);
        printf("{\"size\": \"%dx%d\", \"frame_path_median_ms\": %.4f, \"frame_path_min_ms\": %.4f, \"runs\": %d, \"frames\": %d, "
               "\"frame_threads\": %d}\n", w, h, bench % 2 ? ms[bench / 2] : 0.5 * (ms[bench / 2 - 1] + ms[bench / 2]), ms[0], bench, frames,
               frame_threads);
        free(ms);
    } else {
        size_t base = peak, io = 7 * n, before; /* uint8 IR + RGB visible + RGB output */
        for (k = 0; k < 2; k++)
            if (ef_fuse(ctx, ir[0], EF_U8, (size_t)w, vis[0], EF_RGB, 3 * (size_t)w, w, h, out[0], EF_RGB, 3 * (size_t)w) != EF_OK) return fail(ctx, "fuse");
        before = allocs;
        if (ef_fuse(ctx, ir[0], EF_U8, (size_t)w, vis[0], EF_RGB, 3 * (size_t)w, w, h, out[0], EF_RGB, 3 * (size_t)w) != EF_OK) return fail(ctx, "fuse");
        printf("{\"size\": \"%dx%d\", \"peak_heap\": %lu, \"io_bytes\": %lu, \"allocs_after_first\": %lu}\n", w, h,
               (unsigned long)(peak - base), (unsigned long)io, (unsigned long)(allocs - before));
    }
    ef_close(ctx);
    for (f = 0; f < frames; f++) {
        free(ir[f]);
        free(vis[f]);
        free(out[f]);
    }
    free(ir);
    free(vis);
    free(out);
    return 0;
}

/* Fuse again with the visible frame as BGR into a BGR output (rows padded to a larger stride):
   the largest difference to the RGB result with channels swapped, -2 on error. */
static int bgr_difference(ef_context *ctx, const pnm_image *ir, const pnm_image *vis, const unsigned char *rgb_out) {
    size_t w = (size_t)ir->width, h = (size_t)ir->height, stride = 3 * w + 5, x, y;
    unsigned char *bgr = (unsigned char *)malloc(stride * h), *out = (unsigned char *)malloc(stride * h);
    int diff = 0;
    if (!bgr || !out) return -2;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            const unsigned char *p = vis->data + (y * w + x) * 3;
            bgr[y * stride + 3 * x] = p[2];
            bgr[y * stride + 3 * x + 1] = p[1];
            bgr[y * stride + 3 * x + 2] = p[0];
        }
    if (ef_fuse(ctx, ir->data, ir->bits == 16 ? EF_U16 : EF_U8, w * (size_t)(ir->bits / 8), bgr, EF_BGR, stride, (int)w, (int)h,
                out, EF_BGR, stride) != EF_OK)
        diff = -2;
    for (y = 0; diff >= 0 && y < h; y++)
        for (x = 0; x < 3 * w; x++) {
            int d = abs((int)rgb_out[y * 3 * w + x] - (int)out[y * stride + x / 3 * 3 + 2 - x % 3]);
            if (d > diff) diff = d;
        }
    free(bgr);
    free(out);
    return diff;
}

int main(int argc, char **argv) {
    pnm_image ir, vis;
    char err[300];
    ef_context *ctx;
    unsigned char *out;
    int repeat, i, out_channels, bgr, runs;
    size_t before;
    if (argc > 2 && strcmp(argv[1], "--frame-threads") == 0) {
        frame_threads = atoi(argv[2]);
        argv += 2;
        argc -= 2;
    }
    if (argc == 3 && strcmp(argv[1], "--bad-args") == 0) return bad_args(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--backend-errors") == 0) return backend_errors(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--synthetic") == 0) return synthetic(argv[2], argv[3], 0, 1);
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "--bench") == 0)
        return synthetic(argv[2], argv[3], atoi(argv[4]) > 0 ? atoi(argv[4]) : 1, argc == 6 ? atoi(argv[5]) : 1);
    if (argc < 5) {
        fprintf(stderr, "usage: trivial_backend BUNDLE IR VIS OUT [REPEAT]\n");
        return 2;
    }
    repeat = argc > 5 ? atoi(argv[5]) : 2;
    if (pnm_read(argv[2], &ir, err, sizeof err) || pnm_read(argv[3], &vis, err, sizeof err)) {
        fprintf(stderr, "trivial_backend: %s\n", err);
        return 2;
    }
    if (open_trivial(argv[1], &ctx)) {
        free(ir.data);
        free(vis.data);
        return 2;
    }
    out_channels = vis.channels;
    out = (unsigned char *)malloc((size_t)ir.width * ir.height * out_channels);
    before = allocs;
    for (i = 0; i < repeat; i++) {
        if (i == 1) before = allocs;
        if (ef_fuse(ctx, ir.data, ir.bits == 16 ? EF_U16 : EF_U8, (size_t)ir.width * (ir.bits / 8), vis.data,
                    vis.channels == 3 ? EF_RGB : EF_GRAY, (size_t)vis.width * vis.channels, ir.width, ir.height, out,
                    out_channels == 3 ? EF_RGB : EF_GRAY, (size_t)ir.width * out_channels) != EF_OK)
            return fail(ctx, "fuse");
    }
    if (pnm_write(argv[4], out, ir.width, ir.height, out_channels, (size_t)ir.width * out_channels)) return fail(ctx, "write");
    runs = T.runs;
    before = allocs - before; /* allocations of the frames after the first */
    bgr = out_channels == 3 ? bgr_difference(ctx, &ir, &vis, out) : -1;
    printf("{\"allocs_after_first\": %lu, \"peak_heap\": %lu, \"runs\": %d, \"stats\": [", (unsigned long)before,
           (unsigned long)peak, runs);
    for (i = 0; T.n_inputs == 3 && i < 6; i++) printf("%s%.9g", i ? ", " : "", T.stats[i]);
    printf("], \"stats_scale\": [");
    for (i = 0; T.encoded && i < 6; i++) printf("%s%.9g", i ? ", " : "", T.stats_scale[i]);
    printf("], \"bgr_difference\": %d}\n", bgr);
    ef_close(ctx);
    free(out);
    free(ir.data);
    free(vis.data);
    return 0;
}
