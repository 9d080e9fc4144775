/*
 * fuse_frames: fuse an IR and a visible frame with a bundle through the edgefusion C runtime.
 *
 *   fuse_frames --model BUNDLE --ir IR.pgm --vis VIS.ppm -o OUT.ppm [--threads N] [--frame-threads N] [--device CPU]
 *   fuse_frames --model BUNDLE --size 1920x1080 --bench 50 [--warmup 5] [--frames K] [--json FILE]
 *
 * IR: P5 8 or 16 bit; visible: P5 or P6 8 bit; output: P6 (RGB) for a color
 * visible frame, else P5. Built with EF_EMBEDDED_BUNDLE (the firmware folder of
 * `edgefusion native`), --model may be omitted: the bundle compiled into the
 * program (bundle_data.c) is used. --bench N times N frames (after --warmup) and
 * prints the statistics keys of `edgefusion bench --json` as JSON (stdout, or
 * --json FILE); --size WxH fuses a synthetic pair instead of --ir/--vis. --frames K (default 1)
 * cycles the timed frames through K copies of the input and output buffers: with K sets larger
 * than the last-level cache each frame comes from memory, as a camera or decoder frame does
 * ("cold"; K = 1 reuses one set, "hot"); the JSON gets "frames": K.
 * --threads N: the engine's threads (default: the engine's choice, all cores for OpenVINO);
 * --frame-threads N: the frame path's (ef_options.frame_threads), default --threads when given, else
 * the online CPU count (as the engine's default), 1 in an EF_NO_THREADS build; the JSON gets
 * "frame_threads": N.
 * Errors: one line on stderr, exit 2.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "edgefusion.h"
#include "pnm.h"
#ifdef EF_EMBEDDED_BUNDLE
#include "bundle_data.h"
#endif

typedef struct {
    const char *model, *ir, *vis, *out, *device, *json;
    int threads, frame_threads, bench, warmup, frames, size_w, size_h;
} args_t;

/* Most --frames buffer sets (allocated per run): the cold protocol needs 2x the last-level cache, e.g. 469 640x480 sets
   for a 480 MiB L3. */
#define MAX_FRAMES 65536

/* A backend wrapping the real one to time its calls (an example of a custom ef_backend). */
typedef struct {
    const ef_backend *inner;
    void *state;
    double last_ms, end; /* duration and end time of the last run */
} timing_t;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int timed_create(void *user, const ef_model_info *info, void **state, char *err, size_t n) {
    timing_t *t = (timing_t *)user;
    *state = t;
    if (!(t->inner = ef_builtin_backend(info->backend))) {
        snprintf(err, n, "no built-in C backend for %s bundles in this build (the runtime takes a custom ef_backend)", info->backend);
        return 1;
    }
    return t->inner->create(t->inner->user, info, &t->state, err, n);
}

static int timed_run(void *state, const float *ir, const float *vis, const float *stats, int h, int w, float *out, char *err, size_t n) {
    timing_t *t = (timing_t *)state;
    double start = now_ms();
    int rc = t->inner->run(t->state, ir, vis, stats, h, w, out, err, n);
    t->end = now_ms();
    t->last_ms = t->end - start;
    return rc;
}

static void timed_destroy(void *state) {
    timing_t *t = (timing_t *)state;
    if (t->inner && t->inner->destroy && t->state) t->inner->destroy(t->state);
}

static int die(const char *message) {
    fprintf(stderr, "fuse_frames: %s\n", message);
    return 2;
}

/* --frame-threads when not given: the engine's threads, else the online CPUs (capped), 1 without threads. */
static int default_frame_threads(int threads) {
#ifdef EF_NO_THREADS
    (void)threads;
    return 1;
#else
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (threads > 0) cores = threads;
    return cores < 1 ? 1 : cores > EF_MAX_FRAME_THREADS ? EF_MAX_FRAME_THREADS : (int)cores;
#endif
}

static int parse_args(int argc, char **argv, args_t *a) {
    int i;
    memset(a, 0, sizeof *a);
    a->warmup = 5;
    a->frames = 1;
    a->frame_threads = -1; /* default below */
    for (i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return -1;
        if (!strcmp(k, "--model")) a->model = v;
        else if (!strcmp(k, "--ir")) a->ir = v;
        else if (!strcmp(k, "--vis")) a->vis = v;
        else if (!strcmp(k, "-o") || !strcmp(k, "--out")) a->out = v;
        else if (!strcmp(k, "--device")) a->device = v;
        else if (!strcmp(k, "--json")) a->json = v;
        else if (!strcmp(k, "--threads")) a->threads = atoi(v);
        else if (!strcmp(k, "--frame-threads")) { if ((a->frame_threads = atoi(v)) < 0) return -1; }
        else if (!strcmp(k, "--bench")) { if ((a->bench = atoi(v)) < 1) return -1; }
        else if (!strcmp(k, "--warmup")) { if ((a->warmup = atoi(v)) < 0) return -1; }
        else if (!strcmp(k, "--frames")) { if ((a->frames = atoi(v)) < 1 || a->frames > MAX_FRAMES) return -1; }
        else if (!strcmp(k, "--size")) { if (sscanf(v, "%dx%d", &a->size_w, &a->size_h) != 2 || a->size_w < 1 || a->size_h < 1) return -1; }
        else return -1;
        i++;
    }
    if (a->size_w ? (a->ir || a->vis) : !(a->ir && a->vis)) return -1;
    if (!a->bench && !a->out) return -1;
    if (a->frame_threads < 0) a->frame_threads = default_frame_threads(a->threads);
#ifndef EF_EMBEDDED_BUNDLE
    if (!a->model) return -1;
#endif
    return 0;
}

/* A smooth IR frame and a complementary RGB visible frame with deterministic noise (as edgefusion.bench). */
static int synthetic(int w, int h, pnm_image *ir, pnm_image *vis) {
    unsigned int seed = 12345u;
    int x, y, c;
    ir->width = vis->width = w;
    ir->height = vis->height = h;
    ir->channels = 1;
    vis->channels = 3;
    ir->bits = vis->bits = 8;
    ir->data = (unsigned char *)malloc((size_t)w * h);
    vis->data = (unsigned char *)malloc((size_t)w * h * 3);
    if (!ir->data || !vis->data) return -1;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            double base = 0.5 + 0.25 * sin(x / 37.0) * cos(y / 23.0);
            seed = seed * 1103515245u + 12345u;
            ir->data[(size_t)y * w + x] = (unsigned char)(fmin(fmax(base + ((seed >> 16) % 26 - 13) / 255.0, 0.0), 1.0) * 255);
            for (c = 0; c < 3; c++) {
                seed = seed * 1103515245u + 12345u;
                vis->data[((size_t)y * w + x) * 3 + c] = (unsigned char)fmin(fmax((1 - base) * 255 + (int)((seed >> 16) % 49) - 24, 0.0), 255.0);
            }
        }
    return 0;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* numpy.percentile (linear) of sorted values. */
static double percentile(const double *sorted, int n, double q) {
    double pos = q / 100.0 * (n - 1);
    int lo = (int)pos;
    return lo + 1 < n ? sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]) : sorted[n - 1];
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_double);
    return percentile(v, n, 50.0);
}

/* s as a JSON string literal. */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static double peak_rss_mb(void) {
    struct rusage usage;
    return getrusage(RUSAGE_SELF, &usage) == 0 ? usage.ru_maxrss / 1024.0 : 0.0;
}

static int fuse_once(ef_context *ctx, const pnm_image *ir, const pnm_image *vis, unsigned char *out, int out_channels) {
    size_t ir_bytes = (size_t)(ir->bits / 8);
    return ef_fuse(ctx, ir->data, ir->bits == 16 ? EF_U16 : EF_U8, (size_t)ir->width * ir_bytes, vis->data,
                   vis->channels == 3 ? EF_RGB : EF_GRAY, (size_t)vis->width * vis->channels, ir->width, ir->height,
                   out, out_channels == 3 ? EF_RGB : EF_GRAY, (size_t)ir->width * out_channels);
}

/* Copies k = 1 .. n - 1 of the input frames and output buffer (set 0: the originals); 0, or -1 out of memory. */
static int copy_sets(const pnm_image *ir, const pnm_image *vis, unsigned char *out, size_t out_bytes, int n,
                     pnm_image irs[], pnm_image viss[], unsigned char *outs[]) {
    size_t ir_bytes = (size_t)ir->width * ir->height * (size_t)(ir->bits / 8);
    size_t vis_bytes = (size_t)vis->width * vis->height * (size_t)vis->channels;
    int k;
    irs[0] = *ir;
    viss[0] = *vis;
    outs[0] = out;
    for (k = 1; k < n; k++) {
        irs[k] = *ir;
        viss[k] = *vis;
        irs[k].data = (unsigned char *)malloc(ir_bytes);
        viss[k].data = (unsigned char *)malloc(vis_bytes);
        outs[k] = (unsigned char *)calloc(out_bytes, 1);
        if (!irs[k].data || !viss[k].data || !outs[k]) return -1;
        memcpy(irs[k].data, ir->data, ir_bytes);
        memcpy(viss[k].data, vis->data, vis_bytes);
    }
    return 0;
}

static int bench(ef_context *ctx, timing_t *timing, const args_t *a, const pnm_image *ir, const pnm_image *vis,
                 unsigned char *out, int out_channels, double init_ms) {
    int n = a->bench, i, k;
    double *total = (double *)malloc(n * sizeof(double)), *model = (double *)malloc(n * sizeof(double));
    double *compose = (double *)malloc(n * sizeof(double)), *rest = (double *)malloc(n * sizeof(double));
    double start, first_ms, sum = 0, med;
    char tmp[4096];
    FILE *f = stdout;
    pnm_image *irs = (pnm_image *)calloc((size_t)a->frames, sizeof *irs), *viss = (pnm_image *)calloc((size_t)a->frames, sizeof *viss);
    unsigned char **outs = (unsigned char **)calloc((size_t)a->frames, sizeof *outs);
    int rc = 0;
    if (!total || !model || !compose || !rest || !irs || !viss || !outs ||
        copy_sets(ir, vis, out, (size_t)ir->width * ir->height * out_channels, a->frames, irs, viss, outs)) {
        rc = die("out of memory");
        goto done;
    }
    start = now_ms();
    if (fuse_once(ctx, ir, vis, out, out_channels)) { rc = die(ef_last_error(ctx)); goto done; }
    first_ms = now_ms() - start;
    for (i = 0; i < a->warmup + n; i++) {
        double end;
        k = i % a->frames;
        start = now_ms();
        if (fuse_once(ctx, &irs[k], &viss[k], outs[k], out_channels)) { rc = die(ef_last_error(ctx)); goto done; }
        end = now_ms();
        if (i < a->warmup) continue;
        total[i - a->warmup] = end - start;
        model[i - a->warmup] = timing->last_ms;
        compose[i - a->warmup] = end - timing->end; /* composition, color restore and uint8 after the network */
        rest[i - a->warmup] = total[i - a->warmup] - model[i - a->warmup] - compose[i - a->warmup];
        sum += total[i - a->warmup];
    }
    if (a->json && (snprintf(tmp, sizeof tmp, "%s.tmp", a->json) >= (int)sizeof tmp || !(f = fopen(tmp, "w")))) {
        rc = die("cannot write the --json file");
        goto done;
    }
    med = median(total, n);
    fprintf(f, "{\"bundle\": ");
    json_string(f, a->model ? a->model : "(embedded)");
    fprintf(f, ", \"runtime\": \"edgefusion C %s\", \"kernels\": \"%s\", \"sizes\": [{\"size\": \"%dx%d\", \"width\": %d, \"height\": %d, "
               "\"init_ms\": %.4f, \"first_inference_ms\": %.4f, \"median_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
               "\"mean_ms\": %.4f, \"min_ms\": %.4f, \"max_ms\": %.4f, \"fps\": %.3f, ",
            EF_VERSION, ef_kernels_isa(), ir->width, ir->height, ir->width, ir->height, init_ms, first_ms, med,
            percentile(total, n, 90), percentile(total, n, 99), sum / n, total[0], total[n - 1], med > 0 ? 1000.0 / med : 0.0);
    fprintf(f, "\"model_ms\": %.4f, \"compose_ms\": %.4f, \"overhead_ms\": %.4f, \"peak_rss_mb\": %.2f, \"runs\": %d, "
               "\"frames\": %d, \"frame_threads\": %d}]}\n",
            median(model, n), median(compose, n), median(rest, n), peak_rss_mb(), n, a->frames, a->frame_threads);
    if (f != stdout && (fclose(f) || rename(tmp, a->json))) { /* atomic: no half-written file */
        remove(tmp);
        rc = die("cannot write the --json file");
    }
done:
    for (k = 1; k < a->frames && irs && viss && outs; k++) {
        free(irs[k].data);
        free(viss[k].data);
        free(outs[k]);
    }
    free(irs); free(viss); free(outs);
    free(total); free(model); free(compose); free(rest);
    return rc;
}

int main(int argc, char **argv) {
    args_t a;
    pnm_image ir, vis;
    char err[512];
    ef_backend timed = {timed_create, timed_run, timed_destroy, NULL};
    timing_t timing;
    ef_options opts;
    ef_context *ctx = NULL;
    ef_status st;
    unsigned char *out;
    int out_channels, rc = 0;
    double start;
    if (parse_args(argc, argv, &a))
        return die("usage: fuse_frames [--model BUNDLE] (--ir IR.pgm --vis VIS.pgm|ppm | --size WxH) (-o OUT | --bench N) "
                   "[--warmup N] [--frames K (1..65536)] [--json FILE] [--threads N] [--frame-threads N] [--device NAME]");
    memset(&ir, 0, sizeof ir);
    memset(&vis, 0, sizeof vis);
    if (a.size_w) {
        if (synthetic(a.size_w, a.size_h, &ir, &vis)) return die("out of memory");
    } else {
        if (pnm_read(a.ir, &ir, err, sizeof err) || pnm_read(a.vis, &vis, err, sizeof err)) return die(err);
        if (ir.channels != 1) return die("the IR frame must be gray (P5)");
        if (vis.bits != 8) return die("the visible frame must be 8-bit");
        if (ir.width != vis.width || ir.height != vis.height) return die("IR and visible sizes differ");
    }
    memset(&timing, 0, sizeof timing);
    memset(&opts, 0, sizeof opts);
    opts.device = a.device;
    opts.threads = a.threads;
    opts.frame_threads = a.frame_threads;
    start = now_ms();
    timed.user = &timing;
    opts.backend = &timed; /* the built-in backend of the bundle, timed */
#ifdef EF_EMBEDDED_BUNDLE
    if (!a.model)
        st = ef_open_memory(edgefusion_bundle_files, edgefusion_bundle_n_files, &opts, &ctx);
    else
#endif
        st = ef_open_dir(a.model, &opts, &ctx);
    if (st != EF_OK) {
        rc = die(ef_last_error(ctx));
        goto done;
    }
    out_channels = vis.channels;
    out = (unsigned char *)malloc((size_t)ir.width * ir.height * out_channels);
    if (!out) {
        rc = die("out of memory");
    } else if (a.bench) {
        rc = bench(ctx, &timing, &a, &ir, &vis, out, out_channels, now_ms() - start);
    } else if (fuse_once(ctx, &ir, &vis, out, out_channels)) {
        rc = die(ef_last_error(ctx));
    } else if (pnm_write(a.out, out, ir.width, ir.height, out_channels, (size_t)ir.width * out_channels)) {
        snprintf(err, sizeof err, "cannot write %s", a.out);
        rc = die(err);
    }
    free(out);
done:
    ef_close(ctx);
    free(ir.data);
    free(vis.data);
    return rc;
}
