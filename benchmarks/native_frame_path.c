/*
 * The C frame path without the network, timed per stage (a benchmark driver, not shipped).
 *
 * One uint8 IR frame and one RGB visible frame of W x H (deterministic patterns) go
 * through the runtime's two passes: ef_prepare_u8 (IR / 255, BT.601 luma, the 6 frame statistics
 * with the IR from its 8-bit source, stride padding to multiples of 8) and ef_compose_u8
 * (composition with color restore and uint8 RGB output; fixed synthetic maps stand in for the
 * network). Prints one JSON line: median and minimum milliseconds per stage and in
 * total (on a shared machine the minimum is the run least disturbed by other processes).
 *
 *   cc -O3 -std=c99 -march=x86-64-v3 -I edgefusion/native/src benchmarks/native_frame_path.c \
 *      edgefusion/native/src/ef_kernels.c -lm -o /tmp/frame_path && /tmp/frame_path 1920 1080 50 [FRAMES]
 *
 * FRAMES (default 1, "hot"): run r reads and writes the caller's buffer set r % FRAMES (uint8 IR,
 * RGB visible, RGB output; same contents in every set). With FRAMES sets larger in total than
 * twice the last-level cache ("cold", benchmarks/cold.py picks FRAMES) each frame comes from
 * DRAM, as a camera or decoder frame does; the planes and scratch the frame path owns are
 * reused, as the runtime reuses its own.
 *
 * (-march=x86-64-v3: the AVX2 paths, as the Python loader builds on AVX2 CPUs; v2: the portable loops.)
 *
 * With RUNS = 1 and no warm-up it is the program valgrind --tool=callgrind counts.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ef_kernels.h"

#define N_STAGES 2
/* Most buffer sets (allocated per run): the cold protocol needs 2x the last-level cache, e.g. 469 640x480 sets for a
   480 MiB L3. */
#define MAX_SETS 65536
static const char *STAGES[N_STAGES] = {"prepare_ms", "compose_u8_ms"};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s WIDTH HEIGHT RUNS [FRAMES]\n", argv[0]);
        return 2;
    }
    const int w = atoi(argv[1]), h = atoi(argv[2]), runs = atoi(argv[3]), frames = argc == 5 ? atoi(argv[4]) : 1;
    if (w < 1 || h < 1 || runs < 1 || w > 16384 || h > 16384 || frames < 1 || frames > MAX_SETS) {
        fprintf(stderr, "bad size, run or frame count (frames 1..%d)\n", MAX_SETS);
        return 2;
    }
    const int pw = (w + 7) / 8 * 8, ph = (h + 7) / 8 * 8;
    const size_t n = (size_t)w * h, pn = (size_t)pw * ph, ln = (size_t)(pw / 4) * (ph / 4);
    uint8_t *(*sets)[3] = calloc((size_t)frames, sizeof *sets); /* per buffer set: IR, visible, output */
    int missing = !sets;
    for (int f = 0; f < frames && sets; f++) {
        sets[f][0] = malloc(n), sets[f][1] = malloc(3 * n), sets[f][2] = malloc(3 * n);
        missing |= !sets[f][0] || !sets[f][1] || !sets[f][2];
    }
    float *ir_p = malloc(pn * sizeof(float)), *vis_p = malloc(pn * sizeof(float));
    float *maps = malloc(4 * ln * sizeof(float));
    void *scratch = malloc(ef_compose_scratch_bytes(pw, ph));
    double *times = malloc((size_t)runs * (N_STAGES + 1) * sizeof(double));
    if (missing || !ir_p || !vis_p || !maps || !scratch || !times) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (int f = 0; f < frames; f++) {
        uint8_t *ir = sets[f][0], *vis = sets[f][1];
        uint32_t s = 12345u;
        for (size_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            ir[i] = (uint8_t)((i % (size_t)w) * 255 / (size_t)w ^ (s >> 28));
            vis[3 * i] = (uint8_t)(s >> 24);
            vis[3 * i + 1] = (uint8_t)((i / (size_t)w) * 255 / (size_t)h);
            vis[3 * i + 2] = (uint8_t)(s >> 16);
        }
        memset(sets[f][2], 0, 3 * n); /* touch every output page once before timing */
    }
    for (size_t i = 0; i < 4 * ln; i++) maps[i] = (float)((i * 2654435761u) % 1000u) / 1000.0f - 0.25f;
    float stats[EF_K_N_STATS];
    int warmup = runs > 1 ? 3 : 0, status = 0;
    for (int r = -warmup; r < runs; r++) {
        const int f = (r + warmup) % frames;
        const uint8_t *ir = sets[f][0], *vis = sets[f][1];
        uint8_t *out = sets[f][2];
        double t[N_STAGES + 1];
        t[0] = now_ms();
        status |= ef_prepare_u8(ir, (size_t)w, vis, 3u * (size_t)w, EF_K_RGB, w, h, pw, ph, ir_p, vis_p, (size_t)pw, stats);
        t[1] = now_ms();
        ef_chroma chroma = {vis, 3u * (size_t)w, EF_K_RGB, NULL, NULL, 0};
        status |= ef_compose_u8(ir_p, vis_p, (size_t)pw, pw, ph, maps, w, h, &chroma, out, 3u * (size_t)w, EF_K_RGB,
                                scratch);
        t[2] = now_ms();
        if (r < 0) continue;
        for (int k = 0; k < N_STAGES; k++) times[(size_t)k * runs + r] = t[k + 1] - t[k];
        times[(size_t)N_STAGES * runs + r] = t[N_STAGES] - t[0];
    }
    if (status) {
        fprintf(stderr, "a kernel rejected its arguments\n");
        return 1;
    }
    unsigned checksum = 0;
    for (size_t i = 0; i < 3 * n; i++) checksum = checksum * 31u + sets[0][2][i];
    printf("{\"width\": %d, \"height\": %d, \"runs\": %d, \"frames\": %d", w, h, runs, frames);
    for (int k = 0; k <= N_STAGES; k++) {
        double *t = times + (size_t)k * runs;
        double mid = median(t, runs); /* sorts t */
        const char *name = k < N_STAGES ? STAGES[k] : "total_ms";
        printf(", \"%s\": %.4f, \"min_%s\": %.4f", name, mid, name, t[0]);
    }
    printf(", \"stats\": [%.6f, %.6f, %.6f, %.6f, %.6f, %.6f], \"checksum\": %u}\n", stats[0], stats[1], stats[2],
           stats[3], stats[4], stats[5], checksum);
    for (int f = 0; f < frames; f++) free(sets[f][0]), free(sets[f][1]), free(sets[f][2]);
    free(sets), free(ir_p), free(vis_p), free(maps), free(scratch), free(times);
    return 0;
}
