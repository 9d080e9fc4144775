/*
 * manifest.json of a bundle (schema 1, as written by edgefusion/runtime/bundle.py),
 * reduced to what the C runtime needs, with the same checks as the Python
 * validate_manifest: required keys, known backend/precision/layout/io_dtype, safe
 * relative file names, every model file hashed, stride and fixed_shape in range,
 * stats_encoding (edgefusion/runtime/stats_encoding.py) absent or {"scale": [6 numbers > 0]};
 * and its seal of itself (ef_manifest_check_seal).
 */
#ifndef EF_MANIFEST_H
#define EF_MANIFEST_H

#include <stddef.h>

#define EF_MAX_FILES 16
#define EF_NAME_MAX 256
#define EF_MAX_STRIDE 256
#define EF_MAX_SIDE 16384
#define EF_N_STATS 6

typedef struct {
    char name[EF_NAME_MAX]; /* relative path in the bundle */
    char sha256[65];        /* lower-case hex */
} ef_manifest_hash;

typedef struct {
    char backend[32], precision[16], layout[8], io_dtype[16];
    int stride;
    int compose_runtime;      /* "compose": "runtime" (output maps) */
    int fixed_h, fixed_w;     /* 0, 0 when fixed_shape is null */
    int n_inputs;             /* 2 (ir, vis) or 3 (ir, vis, stats) */
    double stretch_low, stretch_high;
    char model[EF_NAME_MAX];  /* files.model */
    char weights[EF_NAME_MAX];/* files.weights, "" when absent */
    int n_hashes;
    ef_manifest_hash hashes[EF_MAX_FILES];
    int stats_encoded;        /* 1: the model takes stats[i] * stats_scale[i] ("stats_encoding"); 0: raw stats */
    float stats_scale[EF_N_STATS];
    char seal[65];            /* "manifest_sha256" (lower-case hex), "" when absent; see ef_manifest_check_seal */
} ef_manifest;

/* Parse and check text[0:len]; 0, or -1 with a one-line reason in err. Allocates only temporarily. */
int ef_manifest_parse(const char *text, size_t len, ef_manifest *m, char *err, size_t err_len);

/*
 * The manifest's seal of itself (rules in edgefusion/runtime/manifest_seal.py): text[0:len] holds the key
 * "manifest_sha256" (the quoted name, JSON whitespace, ':') exactly once, followed by JSON whitespace and a
 * quoted 64-digit lower-case hex string equal to m->seal (parsed from the same text), and those digits are
 * the SHA-256 of the text with them replaced by '0'. 0, or -1 with a one-line reason in err. No allocation.
 */
int ef_manifest_check_seal(const char *text, size_t len, const ef_manifest *m, char *err, size_t err_len);

#endif
