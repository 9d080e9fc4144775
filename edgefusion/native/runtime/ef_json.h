/*
 * A minimal, strict JSON reader (RFC 8259 plus Python's NaN/Infinity) for manifest.json.
 *
 * ef_json_parse tokenizes a text into a flat array of tokens (one per value and
 * per object key, in document order); callers then walk it with ef_json_get /
 * ef_json_at and read leaves with ef_json_string / ef_json_number. The text is
 * not modified or copied. Nesting deeper than EF_JSON_MAX_DEPTH is refused, so
 * malformed input can neither overflow the stack nor read past the text
 * (fuzzed by fuzz/fuzz_manifest.c).
 */
#ifndef EF_JSON_H
#define EF_JSON_H

#include <stddef.h>

#define EF_JSON_MAX_DEPTH 64

typedef enum { EF_JSON_OBJECT, EF_JSON_ARRAY, EF_JSON_STRING, EF_JSON_NUMBER, EF_JSON_TRUE, EF_JSON_FALSE, EF_JSON_NULL } ef_json_type;

typedef struct {
    ef_json_type type;
    size_t start, end; /* text[start:end]: strings without their quotes */
    int size;          /* children: array items, object keys */
    int next;          /* index of the first token after this value's subtree */
} ef_json_token;

typedef struct {
    const char *text;
    const ef_json_token *tokens;
    int count;
} ef_json_doc;

/*
 * Tokenize text[0:len]. With tokens == NULL only counts. Returns the number of
 * tokens, or -1 for malformed JSON (error offset in *where when not NULL), or -2
 * when more than max_tokens are needed.
 */
int ef_json_parse(const char *text, size_t len, ef_json_token *tokens, int max_tokens, size_t *where);

/* Value token of key in the object at index obj (the last one for duplicate keys), or -1. */
int ef_json_get(const ef_json_doc *doc, int obj, const char *key);
/* Token of item i of the array at index arr, or -1. */
int ef_json_at(const ef_json_doc *doc, int arr, int i);
/* Unescaped UTF-8 string of a string token into buf (NUL-terminated); 0, or -1 if not a string or too long. */
int ef_json_string(const ef_json_doc *doc, int tok, char *buf, size_t size);
/* Value of a number token; 0, or -1 if not a number. */
int ef_json_number(const ef_json_doc *doc, int tok, double *value);

#endif
