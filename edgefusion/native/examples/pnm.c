/* Binary PGM/PPM reader and writer (see pnm.h); fuzzed by fuzz/fuzz_pnm.c. */
#include "pnm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) do { snprintf(err, err_len, __VA_ARGS__); return -1; } while (0)

/* Skip whitespace and '#' comments, then read a decimal number of at most 9 digits. */
static int header_number(const unsigned char *buf, size_t size, size_t *pos, long *value) {
    int digits = 0;
    while (*pos < size) {
        unsigned char c = buf[*pos];
        if (c == '#') {
            while (*pos < size && buf[*pos] != '\n' && buf[*pos] != '\r') (*pos)++;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
            (*pos)++;
        } else {
            break;
        }
    }
    *value = 0;
    while (*pos < size && buf[*pos] >= '0' && buf[*pos] <= '9') {
        if (++digits > 9) return -1;
        *value = *value * 10 + (buf[(*pos)++] - '0');
    }
    return digits ? 0 : -1;
}

int pnm_parse(const unsigned char *buf, size_t size, pnm_image *image, char *err, size_t err_len) {
    size_t pos = 2, samples, bytes, i;
    long w, h, maxval;
    memset(image, 0, sizeof *image);
    if (size < 2 || buf[0] != 'P' || (buf[1] != '5' && buf[1] != '6')) FAIL("not a binary PGM/PPM file (P5/P6)");
    if (header_number(buf, size, &pos, &w) || header_number(buf, size, &pos, &h) || header_number(buf, size, &pos, &maxval))
        FAIL("malformed PGM/PPM header");
    if (pos >= size || !(buf[pos] == ' ' || buf[pos] == '\t' || buf[pos] == '\n' || buf[pos] == '\r')) FAIL("malformed PGM/PPM header");
    pos++;
    if (w < 1 || h < 1 || w * h > PNM_MAX_PIXELS) FAIL("PGM/PPM size %ldx%ld out of range", w, h);
    if (maxval < 1 || maxval > 65535) FAIL("PGM/PPM maxval %ld out of range", maxval);
    image->width = (int)w;
    image->height = (int)h;
    image->channels = buf[1] == '5' ? 1 : 3;
    image->bits = maxval > 255 ? 16 : 8;
    samples = (size_t)w * (size_t)h * (size_t)image->channels;
    bytes = samples * (size_t)(image->bits / 8);
    if (size - pos < bytes) FAIL("PGM/PPM file is truncated (%lu of %lu pixel bytes)", (unsigned long)(size - pos), (unsigned long)bytes);
    image->data = (unsigned char *)malloc(bytes);
    if (!image->data) FAIL("out of memory for a %ldx%ld image", w, h);
    if (image->bits == 8) {
        memcpy(image->data, buf + pos, bytes);
    } else {
        unsigned short *out = (unsigned short *)(void *)image->data;
        for (i = 0; i < samples; i++) out[i] = (unsigned short)(buf[pos + 2 * i] << 8 | buf[pos + 2 * i + 1]);
    }
    return 0;
}

int pnm_read(const char *path, pnm_image *image, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long size;
    int rc;
    memset(image, 0, sizeof *image);
    if (!f) FAIL("cannot open %s", path);
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        FAIL("cannot read %s", path);
    }
    buf = (unsigned char *)malloc(size ? (size_t)size : 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        FAIL("cannot read %s", path);
    }
    fclose(f);
    rc = pnm_parse(buf, (size_t)size, image, err, err_len);
    free(buf);
    if (rc) {
        char reason[200];
        snprintf(reason, sizeof reason, "%s", err);
        snprintf(err, err_len, "%s: %s", path, reason);
    }
    return rc;
}

int pnm_write(const char *path, const unsigned char *pixels, int width, int height, int channels, size_t stride) {
    char tmp[4096];
    FILE *f;
    int y, ok;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp || !(f = fopen(tmp, "wb"))) return -1;
    ok = fprintf(f, "P%c\n%d %d\n255\n", channels == 1 ? '5' : '6', width, height) > 0;
    for (y = 0; ok && y < height; y++)
        ok = fwrite(pixels + (size_t)y * stride, (size_t)width * (size_t)channels, 1, f) == 1;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0) return 0; /* atomic: no half-written output */
    remove(tmp);
    return -1;
}
