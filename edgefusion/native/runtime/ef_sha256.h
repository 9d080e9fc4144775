/* SHA-256 (FIPS 180-4), streaming; used to verify bundle files against manifest.json. */
#ifndef EF_SHA256_H
#define EF_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t length;      /* bytes hashed so far */
    unsigned char block[64];
    size_t used;          /* bytes waiting in block */
} ef_sha256;

void ef_sha256_init(ef_sha256 *s);
void ef_sha256_update(ef_sha256 *s, const void *data, size_t size);
void ef_sha256_final(ef_sha256 *s, unsigned char digest[32]);
/* Lower-case hex digest (64 characters + NUL) of one buffer. */
void ef_sha256_hex(const void *data, size_t size, char hex[65]);

#endif
