/* libFuzzer harness: the PGM/PPM reader of the example on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pnm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pnm_image image;
    char err[256];
    if (pnm_parse(data, size, &image, err, sizeof err) == 0) {
        volatile unsigned char sink = image.data[0]; /* touch the first and last sample */
        sink = image.data[(size_t)image.width * image.height * image.channels * (image.bits / 8) - 1];
        (void)sink;
        free(image.data);
    }
    return 0;
}
