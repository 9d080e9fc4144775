/* libFuzzer harness: the manifest reader, its seal check and the JSON tokenizer under them, on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "ef_json.h"
#include "ef_manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ef_manifest m; /* large: keep it off the stack */
    char err[256];
    ef_json_token tokens[64];
    if (ef_manifest_parse((const char *)data, size, &m, err, sizeof err) == 0)
        ef_manifest_check_seal((const char *)data, size, &m, err, sizeof err);
    ef_json_parse((const char *)data, size, tokens, 64, NULL); /* bounded token array */
    return 0;
}
