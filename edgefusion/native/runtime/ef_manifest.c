/* manifest.json reader (see ef_manifest.h). */
#include "ef_manifest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ef_json.h"
#include "ef_sha256.h"

static const char *const REQUIRED[] = {"schema", "edgefusion_version", "backend", "target", "precision", "files", "inputs",
                                       "outputs", "layout", "io_dtype", "value_range", "stride", "fixed_shape", "sha256"};

#define FAIL(...) do { snprintf(err, err_len, __VA_ARGS__); return -1; } while (0)

static int one_of(const char *value, const char *const *options) {
    for (; *options; options++)
        if (strcmp(value, *options) == 0) return 1;
    return 0;
}

/* An integer token (no fraction or exponent) within [lo, hi]. */
static int get_int(const ef_json_doc *d, int tok, long lo, long hi, int *out) {
    double v;
    size_t i;
    if (tok < 0 || ef_json_number(d, tok, &v)) return -1;
    for (i = d->tokens[tok].start; i < d->tokens[tok].end; i++)
        if (strchr(".eEIN", d->text[i])) return -1;
    if (!(v >= (double)lo && v <= (double)hi)) return -1;
    *out = (int)v;
    return 0;
}

/* Python's _safe_relative: not absolute, no "..", not empty, not the manifest itself. */
static int safe_relative(const char *rel) {
    const char *part = rel;
    if (rel[0] == '\0' || rel[0] == '/' || strcmp(rel, "manifest.json") == 0) return 0;
    while (*part) {
        const char *end = strchr(part, '/');
        size_t n = end ? (size_t)(end - part) : strlen(part);
        if (n == 2 && part[0] == '.' && part[1] == '.') return 0;
        part += n;
        if (*part == '/') part++;
    }
    return 1;
}

static int is_hex64(const char *s) {
    size_t i;
    if (strlen(s) != 64) return 0;
    for (i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static int read_files(const ef_json_doc *d, int root, ef_manifest *m, char *err, size_t err_len) {
    int files = ef_json_get(d, root, "files"), hashes = ef_json_get(d, root, "sha256"), i, k;
    if (files < 0 || d->tokens[files].type != EF_JSON_OBJECT)
        FAIL("manifest 'files' must map roles (at least 'model') to relative paths");
    if (hashes < 0 || d->tokens[hashes].type != EF_JSON_OBJECT || d->tokens[hashes].size > EF_MAX_FILES)
        FAIL("manifest 'sha256' must map at most %d file names to hex digests", EF_MAX_FILES);
    for (i = hashes + 1, k = 0; k < d->tokens[hashes].size; k++, i = d->tokens[i + 1].next) {
        ef_manifest_hash *h = &m->hashes[m->n_hashes++];
        if (ef_json_string(d, i, h->name, sizeof h->name) || !safe_relative(h->name))
            FAIL("manifest names an unsafe or too long file path in 'sha256'");
        if (ef_json_string(d, i + 1, h->sha256, sizeof h->sha256) || !is_hex64(h->sha256))
            FAIL("manifest 'sha256' of %s is not a 64-digit lower-case hex digest", h->name);
    }
    for (i = files + 1, k = 0; k < d->tokens[files].size; k++, i = d->tokens[i + 1].next) {
        char role[64], rel[EF_NAME_MAX];
        int j, hashed = 0;
        if (ef_json_string(d, i, role, sizeof role) || ef_json_string(d, i + 1, rel, sizeof rel) || !safe_relative(rel))
            FAIL("manifest 'files' must map roles to safe relative paths");
        for (j = 0; j < m->n_hashes; j++) hashed |= strcmp(m->hashes[j].name, rel) == 0;
        if (!hashed) FAIL("model file %s has no SHA-256 in the manifest", rel);
        if (strcmp(role, "model") == 0) strcpy(m->model, rel);
        if (strcmp(role, "weights") == 0) strcpy(m->weights, rel);
    }
    if (m->model[0] == '\0') FAIL("manifest 'files' must map roles (at least 'model') to relative paths");
    return 0;
}

/* inputs: ["ir", "vis"(, "stats")] or [{"name": ...}, ...] as written by quantize. */
static int read_inputs(const ef_json_doc *d, int root, ef_manifest *m, char *err, size_t err_len) {
    int inputs = ef_json_get(d, root, "inputs"), k, seen = 0;
    if (inputs < 0 || d->tokens[inputs].type != EF_JSON_ARRAY) FAIL("manifest 'inputs' must be a list");
    for (k = 0; k < d->tokens[inputs].size; k++) {
        int item = ef_json_at(d, inputs, k);
        char name[16];
        if (d->tokens[item].type == EF_JSON_OBJECT) item = ef_json_get(d, item, "name");
        if (ef_json_string(d, item, name, sizeof name)) FAIL("manifest input %d has no name", k);
        if (strcmp(name, "ir") == 0) seen |= 1;
        else if (strcmp(name, "vis") == 0) seen |= 2;
        else if (strcmp(name, "stats") == 0) seen |= 4;
        else FAIL("manifest input %s is not one of ir, vis, stats", name);
    }
    if ((seen & 3) != 3 || d->tokens[inputs].size != (seen & 4 ? 3 : 2))
        FAIL("manifest inputs must be ir, vis and optionally stats, each once");
    m->n_inputs = seen & 4 ? 3 : 2;
    return 0;
}

/* stats_encoding (optional, v2 bundles): {"scale": [6 finite numbers > 0]}; any other form is an encoding this runtime
   does not know, refused rather than run with raw statistics. */
static int read_stats_encoding(const ef_json_doc *d, int root, ef_manifest *m, char *err, size_t err_len) {
    int enc = ef_json_get(d, root, "stats_encoding"), scale, k;
    double v;
    if (enc < 0) return 0;
    if (m->n_inputs != 3) FAIL("manifest stats_encoding is given but the model takes no stats input");
    scale = d->tokens[enc].type == EF_JSON_OBJECT && d->tokens[enc].size == 1 ? ef_json_get(d, enc, "scale") : -1;
    if (scale < 0 || d->tokens[scale].type != EF_JSON_ARRAY || d->tokens[scale].size != EF_N_STATS)
        FAIL("manifest stats_encoding is not supported (this runtime reads {\"scale\": [%d numbers > 0]})", EF_N_STATS);
    for (k = 0; k < EF_N_STATS; k++) {
        if (ef_json_number(d, ef_json_at(d, scale, k), &v) || !(v > 0.0 && v <= 3.4e38))
            FAIL("manifest stats_encoding.scale must be %d finite numbers > 0", EF_N_STATS);
        m->stats_scale[k] = (float)v;
    }
    m->stats_encoded = 1;
    return 0;
}

static int read_options(const ef_json_doc *d, int root, ef_manifest *m, char *err, size_t err_len) {
    static const char *const backends[] = {"onnxruntime", "openvino", "litert", "tensorrt", NULL};
    static const char *const precisions[] = {"fp32", "fp16", "int8", NULL};
    static const char *const layouts[] = {"NCHW", "NHWC", NULL};
    static const char *const dtypes[] = {"float32", "uint8", "int8", NULL};
    struct { const char *key; char *dest; size_t size; const char *const *options; } fields[] = {
        {"backend", m->backend, sizeof m->backend, backends}, {"precision", m->precision, sizeof m->precision, precisions},
        {"layout", m->layout, sizeof m->layout, layouts}, {"io_dtype", m->io_dtype, sizeof m->io_dtype, dtypes}};
    int schema, fixed, compose, pre, k;
    size_t f;
    if (get_int(d, ef_json_get(d, root, "schema"), 1, 1, &schema)) FAIL("manifest schema is not supported (this runtime reads schema 1)");
    for (f = 0; f < sizeof fields / sizeof fields[0]; f++)
        if (ef_json_string(d, ef_json_get(d, root, fields[f].key), fields[f].dest, fields[f].size) || !one_of(fields[f].dest, fields[f].options))
            FAIL("manifest has an unknown %s", fields[f].key);
    if (get_int(d, ef_json_get(d, root, "stride"), 1, EF_MAX_STRIDE, &m->stride)) FAIL("manifest stride must be an integer in 1..%d", EF_MAX_STRIDE);
    fixed = ef_json_get(d, root, "fixed_shape");
    if (d->tokens[fixed].type != EF_JSON_NULL &&
        (d->tokens[fixed].type != EF_JSON_ARRAY || d->tokens[fixed].size != 2 ||
         get_int(d, ef_json_at(d, fixed, 0), 1, EF_MAX_SIDE, &m->fixed_h) || get_int(d, ef_json_at(d, fixed, 1), 1, EF_MAX_SIDE, &m->fixed_w)))
        FAIL("manifest fixed_shape must be [H, W] (1..%d) or null", EF_MAX_SIDE);
    compose = ef_json_get(d, root, "compose");
    if (compose >= 0) {
        char value[16];
        if (ef_json_string(d, compose, value, sizeof value) || !(strcmp(value, "model") == 0 || strcmp(value, "runtime") == 0))
            FAIL("manifest compose must be 'model' or 'runtime'");
        m->compose_runtime = strcmp(value, "runtime") == 0;
    }
    if (m->compose_runtime && m->stride % 4) FAIL("runtime composition needs a stride that is a multiple of 4");
    m->stretch_low = 0.5;
    m->stretch_high = 99.5;
    pre = ef_json_get(d, root, "preprocessing");
    if (pre >= 0 && d->tokens[pre].type == EF_JSON_OBJECT && (k = ef_json_get(d, pre, "thermal_stretch")) >= 0) {
        if (d->tokens[k].type != EF_JSON_ARRAY || d->tokens[k].size != 2 || ef_json_number(d, ef_json_at(d, k, 0), &m->stretch_low) ||
            ef_json_number(d, ef_json_at(d, k, 1), &m->stretch_high) || !(0.0 <= m->stretch_low && m->stretch_low < m->stretch_high && m->stretch_high <= 100.0))
            FAIL("manifest preprocessing.thermal_stretch must be [low, high] percentiles with 0 <= low < high <= 100");
    }
    return 0;
}

/* manifest_sha256 (optional here; ef_manifest_check_seal requires it): a 64-digit lower-case hex string. */
static int read_seal(const ef_json_doc *d, int root, ef_manifest *m, char *err, size_t err_len) {
    int seal = ef_json_get(d, root, "manifest_sha256");
    if (seal >= 0 && (ef_json_string(d, seal, m->seal, sizeof m->seal) || !is_hex64(m->seal)))
        FAIL("manifest.json manifest_sha256 must be a 64-digit lower-case hex string");
    return 0;
}

static int json_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int ef_manifest_check_seal(const char *text, size_t len, const ef_manifest *m, char *err, size_t err_len) {
    static const char key[] = "\"manifest_sha256\"";
    static const char zeros[64] = "0000000000000000000000000000000000000000000000000000000000000000";
    const size_t key_len = sizeof key - 1;
    size_t i, at = 0, start;
    int count = 0;
    ef_sha256 s;
    unsigned char digest[32];
    char hex[65];
    if (!m->seal[0])
        FAIL("manifest.json has no manifest_sha256 seal (written by an older edgefusion, or edited); rebuild the bundle with this version");
    for (i = 0; i + key_len <= len; i++) /* the key: the quoted name, JSON whitespace, ':' (a string value is no key) */
        if (memcmp(text + i, key, key_len) == 0) {
            size_t j = i + key_len;
            while (j < len && json_space(text[j])) j++;
            if (j < len && text[j] == ':') {
                count++;
                at = j + 1;
            }
        }
    if (count != 1) FAIL("manifest.json must name manifest_sha256 exactly once");
    while (at < len && json_space(text[at])) at++;
    start = at + 1;
    if (at >= len || text[at] != '"' || len - start < 65 || text[start + 64] != '"')
        FAIL("manifest.json manifest_sha256 must be a 64-digit lower-case hex string");
    for (i = 0; i < 64; i++)
        if (!((text[start + i] >= '0' && text[start + i] <= '9') || (text[start + i] >= 'a' && text[start + i] <= 'f')))
            FAIL("manifest.json manifest_sha256 must be a 64-digit lower-case hex string");
    if (memcmp(text + start, m->seal, 64) != 0) FAIL("manifest.json holds two different manifest_sha256 values (edited?)");
    ef_sha256_init(&s);
    ef_sha256_update(&s, text, start);
    ef_sha256_update(&s, zeros, 64);
    ef_sha256_update(&s, text + start + 64, len - start - 64);
    ef_sha256_final(&s, digest);
    for (i = 0; i < 32; i++) {
        hex[2 * i] = "0123456789abcdef"[digest[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[digest[i] & 15];
    }
    if (memcmp(hex, m->seal, 64) != 0)
        FAIL("manifest.json changed after the bundle was written (its manifest_sha256 seal does not match)");
    return 0;
}

int ef_manifest_parse(const char *text, size_t len, ef_manifest *m, char *err, size_t err_len) {
    ef_json_token *tokens;
    ef_json_doc d;
    size_t where = 0, k;
    int count = ef_json_parse(text, len, NULL, 0, &where), rc;
    memset(m, 0, sizeof *m);
    if (count < 0) FAIL("manifest.json is not valid JSON (byte %lu)", (unsigned long)where);
    tokens = (ef_json_token *)malloc((size_t)count * sizeof *tokens);
    if (!tokens) FAIL("out of memory reading manifest.json");
    ef_json_parse(text, len, tokens, count, NULL);
    d.text = text;
    d.tokens = tokens;
    d.count = count;
    rc = -1;
    if (tokens[0].type != EF_JSON_OBJECT) {
        snprintf(err, err_len, "manifest.json must hold a JSON object");
        goto done;
    }
    for (k = 0; k < sizeof REQUIRED / sizeof REQUIRED[0]; k++)
        if (ef_json_get(&d, 0, REQUIRED[k]) < 0) {
            snprintf(err, err_len, "manifest.json lacks %s", REQUIRED[k]);
            goto done;
        }
    rc = read_options(&d, 0, m, err, err_len);
    if (rc == 0) rc = read_inputs(&d, 0, m, err, err_len);
    if (rc == 0) rc = read_stats_encoding(&d, 0, m, err, err_len);
    if (rc == 0) rc = read_files(&d, 0, m, err, err_len);
    if (rc == 0) rc = read_seal(&d, 0, m, err, err_len);
done:
    free(tokens);
    return rc;
}
