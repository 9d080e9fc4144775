/* Minimal strict JSON tokenizer (see ef_json.h). */
#include "ef_json.h"

#include <math.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t len, pos;
    ef_json_token *tokens;
    int max, count;
} parser;

static void skip_ws(parser *p) {
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int new_token(parser *p, ef_json_type type, size_t start) {
    int i = p->count++;
    if (p->tokens && i < p->max) {
        p->tokens[i].type = type;
        p->tokens[i].start = start;
        p->tokens[i].end = start;
        p->tokens[i].size = 0;
        p->tokens[i].next = i + 1;
    }
    return i;
}

static ef_json_token *tok(parser *p, int i) { return p->tokens && i < p->max ? &p->tokens[i] : NULL; }

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_string(parser *p) {
    size_t start;
    int i;
    p->pos++; /* opening quote */
    start = p->pos;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            ef_json_token *t;
            i = new_token(p, EF_JSON_STRING, start);
            if ((t = tok(p, i)) != NULL) t->end = p->pos;
            p->pos++;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c == '\\') {
            if (p->pos + 1 >= p->len) return -1;
            c = (unsigned char)p->s[p->pos + 1];
            if (c == 'u') {
                int k;
                if (p->pos + 6 > p->len) return -1;
                for (k = 2; k < 6; k++)
                    if (!is_hex(p->s[p->pos + k])) return -1;
                p->pos += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", c) || c == '\0') return -1;
            p->pos += 2;
            continue;
        }
        p->pos++;
    }
    return -1;
}

static int match_word(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return 0;
    p->pos += n;
    return 1;
}

static int parse_number(parser *p) {
    size_t start = p->pos;
    ef_json_token *t;
    int i;
    if (p->pos < p->len && p->s[p->pos] == '-') p->pos++;
    if (match_word(p, "Infinity")) goto done;
    if (p->pos >= p->len || !is_digit(p->s[p->pos])) return -1;
    if (p->s[p->pos] == '0') p->pos++;
    else while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos])) return -1;
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos])) return -1;
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
done:
    i = new_token(p, EF_JSON_NUMBER, start);
    if ((t = tok(p, i)) != NULL) t->end = p->pos;
    return 0;
}

static int parse_value(parser *p, int depth);

static int parse_container(parser *p, int depth) {
    char open = p->s[p->pos], close = open == '{' ? '}' : ']';
    int i = new_token(p, open == '{' ? EF_JSON_OBJECT : EF_JSON_ARRAY, p->pos), n = 0;
    ef_json_token *t;
    if (depth >= EF_JSON_MAX_DEPTH) return -1;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            skip_ws(p);
            if (open == '{') {
                if (p->pos >= p->len || p->s[p->pos] != '"' || parse_string(p)) return -1;
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':') return -1;
                p->pos++;
            }
            if (parse_value(p, depth + 1)) return -1;
            n++;
            skip_ws(p);
            if (p->pos >= p->len) return -1;
            if (p->s[p->pos] == ',') { p->pos++; continue; }
            if (p->s[p->pos] == close) { p->pos++; break; }
            return -1;
        }
    }
    if ((t = tok(p, i)) != NULL) {
        t->end = p->pos;
        t->size = n;
        t->next = p->count;
    }
    return 0;
}

static int parse_value(parser *p, int depth) {
    skip_ws(p);
    if (p->pos >= p->len) return -1;
    switch (p->s[p->pos]) {
    case '{':
    case '[': return parse_container(p, depth);
    case '"': return parse_string(p);
    case 't': return match_word(p, "true") ? (new_token(p, EF_JSON_TRUE, p->pos - 4), 0) : -1;
    case 'f': return match_word(p, "false") ? (new_token(p, EF_JSON_FALSE, p->pos - 5), 0) : -1;
    case 'n': return match_word(p, "null") ? (new_token(p, EF_JSON_NULL, p->pos - 4), 0) : -1;
    case 'N': {
        size_t start = p->pos;
        int i;
        ef_json_token *t;
        if (!match_word(p, "NaN")) return -1;
        i = new_token(p, EF_JSON_NUMBER, start);
        if ((t = tok(p, i)) != NULL) t->end = p->pos;
        return 0;
    }
    default: return parse_number(p);
    }
}

int ef_json_parse(const char *text, size_t len, ef_json_token *tokens, int max_tokens, size_t *where) {
    parser p;
    p.s = text;
    p.len = len;
    p.pos = 0;
    p.tokens = tokens;
    p.max = tokens ? max_tokens : 0;
    p.count = 0;
    if (text == NULL || parse_value(&p, 0)) goto fail;
    skip_ws(&p);
    if (p.pos != len) goto fail;
    if (tokens && p.count > max_tokens) return -2;
    return p.count;
fail:
    if (where) *where = p.pos;
    return -1;
}

static int hex4(const char *s) {
    int v = 0, k;
    for (k = 0; k < 4; k++) {
        char c = s[k];
        v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* Append code point cp as UTF-8; -1 when it does not fit. */
static int put_utf8(char *buf, size_t size, size_t *n, long cp) {
    unsigned char out[4];
    size_t k, m;
    if (cp < 0x80) { out[0] = (unsigned char)cp; m = 1; }
    else if (cp < 0x800) { out[0] = (unsigned char)(0xC0 | (cp >> 6)); out[1] = (unsigned char)(0x80 | (cp & 63)); m = 2; }
    else if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12)); out[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
        out[2] = (unsigned char)(0x80 | (cp & 63)); m = 3;
    } else {
        out[0] = (unsigned char)(0xF0 | (cp >> 18)); out[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
        out[2] = (unsigned char)(0x80 | ((cp >> 6) & 63)); out[3] = (unsigned char)(0x80 | (cp & 63)); m = 4;
    }
    if (*n + m >= size) return -1;
    for (k = 0; k < m; k++) buf[(*n)++] = (char)out[k];
    return 0;
}

int ef_json_string(const ef_json_doc *doc, int tok_index, char *buf, size_t size) {
    const ef_json_token *t;
    const char *s;
    size_t i, n = 0;
    if (tok_index < 0 || tok_index >= doc->count || size == 0) return -1;
    t = &doc->tokens[tok_index];
    if (t->type != EF_JSON_STRING) return -1;
    s = doc->text;
    for (i = t->start; i < t->end; i++) {
        long cp = (unsigned char)s[i];
        if (s[i] == '\\') {
            char e = s[++i];
            if (e == 'u') {
                cp = hex4(s + i + 1);
                i += 4;
                if (cp >= 0xD800 && cp < 0xDC00) { /* high surrogate: a low one must follow */
                    long lo;
                    if (i + 6 >= t->end || s[i + 1] != '\\' || s[i + 2] != 'u') return -1;
                    lo = hex4(s + i + 3);
                    if (lo < 0xDC00 || lo >= 0xE000) return -1;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else if (cp >= 0xDC00 && cp < 0xE000) {
                    return -1;
                }
                if (cp == 0) return -1; /* an embedded NUL cannot be a C string */
            } else {
                cp = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
            }
            if (put_utf8(buf, size, &n, cp)) return -1;
            continue;
        }
        if (n + 1 >= size) return -1;
        buf[n++] = (char)cp;
    }
    buf[n] = '\0';
    return 0;
}

int ef_json_get(const ef_json_doc *doc, int obj, const char *key) {
    const ef_json_token *t;
    int i, k, found = -1;
    char name[256];
    if (obj < 0 || obj >= doc->count) return -1;
    t = &doc->tokens[obj];
    if (t->type != EF_JSON_OBJECT) return -1;
    for (i = obj + 1, k = 0; k < t->size; k++) {
        int value = i + 1;
        if (ef_json_string(doc, i, name, sizeof name) == 0 && strcmp(name, key) == 0) found = value;
        i = doc->tokens[value].next;
    }
    return found;
}

int ef_json_at(const ef_json_doc *doc, int arr, int index) {
    const ef_json_token *t;
    int i, k;
    if (arr < 0 || arr >= doc->count) return -1;
    t = &doc->tokens[arr];
    if (t->type != EF_JSON_ARRAY || index < 0 || index >= t->size) return -1;
    for (i = arr + 1, k = 0; k < index; k++) i = doc->tokens[i].next;
    return i;
}

int ef_json_number(const ef_json_doc *doc, int tok_index, double *value) {
    const ef_json_token *t;
    const char *s;
    size_t i;
    double mantissa = 0.0, sign = 1.0, scale;
    long exponent = 0, e = 0;
    int esign = 1;
    if (tok_index < 0 || tok_index >= doc->count) return -1;
    t = &doc->tokens[tok_index];
    if (t->type != EF_JSON_NUMBER) return -1;
    s = doc->text;
    i = t->start;
    if (s[i] == 'N') { *value = NAN; return 0; }
    if (s[i] == '-') { sign = -1.0; i++; }
    if (s[i] == 'I') { *value = sign * INFINITY; return 0; }
    for (; i < t->end && is_digit(s[i]); i++) mantissa = mantissa * 10.0 + (s[i] - '0');
    if (i < t->end && s[i] == '.')
        for (i++; i < t->end && is_digit(s[i]); i++) { mantissa = mantissa * 10.0 + (s[i] - '0'); exponent--; }
    if (i < t->end && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (s[i] == '+' || s[i] == '-') esign = s[i++] == '-' ? -1 : 1;
        for (; i < t->end && is_digit(s[i]); i++) if (e < 100000) e = e * 10 + (s[i] - '0');
    }
    exponent += esign * e;
    if (mantissa == 0.0) { *value = sign * 0.0; return 0; }
    scale = pow(10.0, (double)(exponent < 0 ? -exponent : exponent));
    *value = sign * (exponent < 0 ? mantissa / scale : mantissa * scale);
    return 0;
}
