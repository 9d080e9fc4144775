/* Binary PGM/PPM (P5/P6) reading and writing, 8 and 16 bit, no image library. */
#ifndef EF_PNM_H
#define EF_PNM_H

#include <stddef.h>

#define PNM_MAX_PIXELS (1L << 28)

typedef struct {
    int width, height;
    int channels;        /* 1 (P5) or 3 (P6) */
    int bits;            /* 8 (maxval <= 255) or 16 (maxval > 255; samples in host order) */
    unsigned char *data; /* width * height * channels samples of bits/8 bytes, row-major */
} pnm_image;

/* Parse a P5/P6 file held in memory; 0, or -1 with a reason in err. On success free image->data. */
int pnm_parse(const unsigned char *buf, size_t size, pnm_image *image, char *err, size_t err_len);
/* Read a file; 0, or -1 with a reason in err. */
int pnm_read(const char *path, pnm_image *image, char *err, size_t err_len);
/* Write 8-bit gray (channels 1) or RGB (channels 3) pixels with a row stride in bytes, atomically
   (PATH.tmp renamed onto PATH); 0 or -1. */
int pnm_write(const char *path, const unsigned char *pixels, int width, int height, int channels, size_t stride);

#endif
