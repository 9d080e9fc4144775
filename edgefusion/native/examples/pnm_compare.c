/*
 * pnm_compare: are two 8-bit PGM/PPM images equal within a tolerance (gray levels)?
 *
 *   pnm_compare RESULT.pgm EXPECTED.pgm [TOLERANCE]     (tolerance default 1)
 *
 * Prints "max difference D over N samples (M differ)"; exit 0 when the sizes and
 * channel counts match and D <= TOLERANCE, 1 when they differ, 2 on unreadable input.
 * The firmware folder's ctest runs it on fuse_frames' results and the Python runtime's.
 */
#include <stdio.h>
#include <stdlib.h>

#include "pnm.h"

int main(int argc, char **argv) {
    pnm_image a, b;
    char err[256];
    long tolerance = 1, worst = 0, differ = 0;
    size_t n, i;
    int rc;
    if (argc < 3 || argc > 4 || (argc == 4 && (tolerance = strtol(argv[3], NULL, 10)) < 0)) {
        fprintf(stderr, "pnm_compare: usage: pnm_compare RESULT.pgm|ppm EXPECTED.pgm|ppm [TOLERANCE>=0]\n");
        return 2;
    }
    if (pnm_read(argv[1], &a, err, sizeof err)) {
        fprintf(stderr, "pnm_compare: %s: %s\n", argv[1], err);
        return 2;
    }
    if (pnm_read(argv[2], &b, err, sizeof err)) {
        fprintf(stderr, "pnm_compare: %s: %s\n", argv[2], err);
        free(a.data);
        return 2;
    }
    if (a.width != b.width || a.height != b.height || a.channels != b.channels || a.bits != 8 || b.bits != 8) {
        fprintf(stderr, "pnm_compare: %dx%dx%d (%d bit) vs %dx%dx%d (%d bit): not comparable\n", a.width, a.height, a.channels,
                a.bits, b.width, b.height, b.channels, b.bits);
        rc = 1;
    } else {
        n = (size_t)a.width * a.height * a.channels;
        for (i = 0; i < n; i++) {
            long d = labs((long)a.data[i] - (long)b.data[i]);
            differ += d != 0;
            if (d > worst) worst = d;
        }
        printf("max difference %ld over %zu samples (%ld differ)\n", worst, n, differ);
        rc = worst > tolerance;
    }
    free(a.data);
    free(b.data);
    return rc;
}
