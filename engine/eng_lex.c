/* eng_lex.c - the policy lexer.
 *
 * A hand-written scanner over a borrowed buffer. It owns nothing and never
 * allocates: a token is a kind and a byte range. Errors are tokens too
 * (ENG_TOK_ERROR with a static message), so the parser can report one and
 * keep going, which is how `hpp-policy check` lists every error in one run.
 * There is no arithmetic in the language, so '/' always opens a regex
 * literal and '-' may appear inside names (`long-prompt`).
 */
#include "eng_lex.h"

#include "eng_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_kind_names[ENG_TOK_COUNT] = {
    [ENG_TOK_EOF] = "end of file", [ENG_TOK_IDENT] = "identifier",
    [ENG_TOK_NUMBER] = "number",   [ENG_TOK_STRING] = "string",
    [ENG_TOK_REGEX] = "regex",     [ENG_TOK_LBRACE] = "'{'",
    [ENG_TOK_RBRACE] = "'}'",      [ENG_TOK_LPAREN] = "'('",
    [ENG_TOK_RPAREN] = "')'",      [ENG_TOK_LBRACKET] = "'['",
    [ENG_TOK_RBRACKET] = "']'",    [ENG_TOK_COMMA] = "','",
    [ENG_TOK_SEMI] = "';'",        [ENG_TOK_DOT] = "'.'",
    [ENG_TOK_LT] = "'<'",          [ENG_TOK_LE] = "'<='",
    [ENG_TOK_GT] = "'>'",          [ENG_TOK_GE] = "'>='",
    [ENG_TOK_EQ] = "'=='",         [ENG_TOK_NE] = "'!='",
    [ENG_TOK_MATCH] = "'~'",       [ENG_TOK_ERROR] = "invalid token",
};

void eng_lex_init(eng_lex_t *lx, const char *src, size_t len)
{
    lx->src = src;
    lx->len = len > ENG_LEX_MAX_SRC ? ENG_LEX_MAX_SRC : (uint32_t)len;
    lx->pos = (uint32_t)eng_bom_len(src, lx->len);
    lx->err = NULL;
}

const char *eng_tok_kind_name(eng_tok_kind_t kind)
{
    if ((unsigned)kind < ENG_TOK_COUNT) {
        return s_kind_names[kind];
    }
    return "token";
}

/* Byte classes, by table: one lookup per byte instead of a chain of range
 * tests, each of which a coverage-guided fuzzer traces as a comparison. */
enum { S_BLANK = 1, S_ID_START = 2, S_ID = 4, S_DIGIT = 8 };
static const unsigned char s_class[256] = {
    [' '] = S_BLANK,
    ['\t'] = S_BLANK,
    ['\n'] = S_BLANK,
    ['\r'] = S_BLANK,
    ['\f'] = S_BLANK,
    ['\v'] = S_BLANK,
    ['a' ... 'z'] = S_ID_START | S_ID,
    ['A' ... 'Z'] = S_ID_START | S_ID,
    ['_'] = S_ID_START | S_ID,
    ['0' ... '9'] = S_ID | S_DIGIT,
    ['-'] = S_ID,
};

/* `c` is a byte (0..255) or -1 for "none". */
static int s_is(int c, int cls)
{
    return (unsigned)c < 256u && (s_class[c] & cls) != 0;
}

static int s_is_ident_start(int c)
{
    return s_is(c, S_ID_START);
}

static int s_is_ident(int c)
{
    return s_is(c, S_ID);
}

static int s_is_digit(int c)
{
    return s_is(c, S_DIGIT);
}

/* Skips blanks and comments; returns the next byte or -1 at the end. */
static int s_skip(eng_lex_t *lx)
{
    while (lx->pos < lx->len) {
        unsigned char c = (unsigned char)lx->src[lx->pos];
        if (s_class[c] & S_BLANK) {
            lx->pos++;
        } else if (c == '#') {
            /* To the end of the line with memchr: comments are most of a policy's bytes (more
             * than half of the default one), and a byte loop tested each twice. */
            const char *nl = memchr(lx->src + lx->pos, '\n', lx->len - lx->pos);
            lx->pos = nl ? (uint32_t)(nl - lx->src) : lx->len;
        } else {
            return c;
        }
    }
    return -1;
}

static eng_tok_kind_t s_error(eng_lex_t *lx, eng_token_t *tok, uint32_t start, const char *msg)
{
    if (lx->pos <= start) {
        lx->pos = start + 1; /* always make progress */
    }
    tok->kind = ENG_TOK_ERROR;
    tok->start = start;
    tok->end = lx->pos;
    lx->err = msg;
    return ENG_TOK_ERROR;
}

/* [-][$]digits[.digits][kKmM], not followed by a name character. */
static eng_tok_kind_t s_number(eng_lex_t *lx, eng_token_t *tok, uint32_t start)
{
    const char *s = lx->src;
    uint32_t p = start;
    if (s[p] == '-') {
        p++;
    }
    if (p < lx->len && s[p] == '$') {
        p++;
    }
    if (p >= lx->len || !s_is_digit((unsigned char)s[p])) {
        lx->pos = p;
        return s_error(lx, tok, start, "expected digits in number");
    }
    while (p < lx->len && s_is_digit((unsigned char)s[p])) {
        p++;
    }
    if (p < lx->len && s[p] == '.') {
        p++;
        if (p >= lx->len || !s_is_digit((unsigned char)s[p])) {
            lx->pos = p;
            return s_error(lx, tok, start, "expected digits after '.' in number");
        }
        while (p < lx->len && s_is_digit((unsigned char)s[p])) {
            p++;
        }
    }
    if (p < lx->len && (s[p] == 'k' || s[p] == 'K' || s[p] == 'm' || s[p] == 'M')) {
        p++;
    }
    if (p < lx->len && (s_is_ident((unsigned char)s[p]) || s[p] == '.')) {
        while (p < lx->len && (s_is_ident((unsigned char)s[p]) || s[p] == '.')) {
            p++;
        }
        lx->pos = p;
        return s_error(lx, tok, start, "malformed number (suffixes are k and M)");
    }
    lx->pos = p;
    tok->kind = ENG_TOK_NUMBER;
    tok->start = start;
    tok->end = p;
    return ENG_TOK_NUMBER;
}

/* Scans from the opening delimiter at `start` to the matching `close` on the
 * same line; a backslash escapes any byte but a newline. Returns the offset of
 * `close`, or -1 with *stop at the byte where the scan gave up. */
static int64_t s_scan_delimited(const eng_lex_t *lx, uint32_t start, char close, uint32_t *stop)
{
    uint32_t p = start + 1;
    while (p < lx->len) {
        char c = lx->src[p];
        if (c == close) {
            return p;
        }
        if (c == '\n') {
            break;
        }
        if (c == '\\') {
            if (p + 1 >= lx->len || lx->src[p + 1] == '\n') {
                break;
            }
            p++;
        }
        p++;
    }
    *stop = p;
    return -1;
}

/* "..." on one line; backslash escapes any byte. */
static eng_tok_kind_t s_string(eng_lex_t *lx, eng_token_t *tok, uint32_t start)
{
    uint32_t stop;
    int64_t close = s_scan_delimited(lx, start, '"', &stop);
    if (close < 0) {
        lx->pos = stop;
        return s_error(lx, tok, start, "unterminated string");
    }
    lx->pos = (uint32_t)close + 1;
    tok->kind = ENG_TOK_STRING;
    tok->start = start;
    tok->end = lx->pos;
    return ENG_TOK_STRING;
}

/* /.../flags on one line; \/ does not close it (the regex engine reads it as '/'). */
static eng_tok_kind_t s_regex(eng_lex_t *lx, eng_token_t *tok, uint32_t start)
{
    uint32_t stop;
    int64_t close = s_scan_delimited(lx, start, '/', &stop);
    if (close < 0) {
        lx->pos = stop;
        return s_error(lx, tok, start,
                       "unterminated regex (a regex ends with '/' on the same line)");
    }
    uint32_t p = (uint32_t)close + 1;
    while (p < lx->len && s_is_ident_start((unsigned char)lx->src[p])) {
        p++; /* flags, e.g. i */
    }
    lx->pos = p;
    tok->kind = ENG_TOK_REGEX;
    tok->start = start;
    tok->end = p;
    return ENG_TOK_REGEX;
}

static eng_tok_kind_t s_simple(eng_lex_t *lx, eng_token_t *tok, eng_tok_kind_t kind, uint32_t n)
{
    tok->kind = kind;
    tok->start = lx->pos;
    tok->end = lx->pos + n;
    lx->pos += n;
    return kind;
}

eng_tok_kind_t eng_lex_next(eng_lex_t *lx, eng_token_t *tok)
{
    int c = s_skip(lx);
    if (c < 0) {
        tok->kind = ENG_TOK_EOF;
        tok->start = tok->end = lx->len;
        return ENG_TOK_EOF;
    }
    uint32_t start = lx->pos;
    int next = start + 1 < lx->len ? (unsigned char)lx->src[start + 1] : -1;
    if (s_is_ident_start(c)) {
        uint32_t p = start + 1;
        while (p < lx->len && s_is_ident((unsigned char)lx->src[p])) {
            p++;
        }
        lx->pos = p;
        tok->kind = ENG_TOK_IDENT;
        tok->start = start;
        tok->end = p;
        return ENG_TOK_IDENT;
    }
    if (s_is_digit(c) || c == '$' || (c == '-' && (s_is_digit(next) || next == '$'))) {
        return s_number(lx, tok, start);
    }
    switch (c) {
    case '"':
        return s_string(lx, tok, start);
    case '/':
        return s_regex(lx, tok, start);
    case '{':
        return s_simple(lx, tok, ENG_TOK_LBRACE, 1);
    case '}':
        return s_simple(lx, tok, ENG_TOK_RBRACE, 1);
    case '(':
        return s_simple(lx, tok, ENG_TOK_LPAREN, 1);
    case ')':
        return s_simple(lx, tok, ENG_TOK_RPAREN, 1);
    case '[':
        return s_simple(lx, tok, ENG_TOK_LBRACKET, 1);
    case ']':
        return s_simple(lx, tok, ENG_TOK_RBRACKET, 1);
    case ',':
        return s_simple(lx, tok, ENG_TOK_COMMA, 1);
    case ';':
        return s_simple(lx, tok, ENG_TOK_SEMI, 1);
    case '.':
        return s_simple(lx, tok, ENG_TOK_DOT, 1);
    case '~':
        return s_simple(lx, tok, ENG_TOK_MATCH, 1);
    case '<':
        return next == '=' ? s_simple(lx, tok, ENG_TOK_LE, 2) : s_simple(lx, tok, ENG_TOK_LT, 1);
    case '>':
        return next == '=' ? s_simple(lx, tok, ENG_TOK_GE, 2) : s_simple(lx, tok, ENG_TOK_GT, 1);
    case '=':
        if (next == '=') {
            return s_simple(lx, tok, ENG_TOK_EQ, 2);
        }
        lx->pos = start + 1;
        return s_error(lx, tok, start, "unexpected '=' (comparison is '==')");
    case '!':
        if (next == '=') {
            return s_simple(lx, tok, ENG_TOK_NE, 2);
        }
        lx->pos = start + 1;
        return s_error(lx, tok, start, "unexpected '!' (negation is 'not')");
    default:
        break;
    }
    /* Skip a whole UTF-8 sequence so the caret covers one character. */
    uint32_t p = start + 1;
    while (p < lx->len && ((unsigned char)lx->src[p] & 0xC0) == 0x80) {
        p++;
    }
    lx->pos = p;
    return s_error(lx, tok, start, "unexpected character");
}

int eng_lex_number(const char *src, const eng_token_t *tok, double *value, int *is_money)
{
    const char *p = src + tok->start;
    const char *end = src + tok->end;
    int neg = 0;
    *is_money = 0;
    *value = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p < end && *p == '$') {
        *is_money = 1;
        p++;
    }
    /* strtod on a bounded copy: the digits are not NUL-terminated in the source. */
    char buf[64];
    size_t n = 0;
    while (p < end && (s_is_digit((unsigned char)*p) || *p == '.')) {
        if (n + 1 >= sizeof buf) {
            return -1;
        }
        buf[n++] = *p++;
    }
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    if (p < end && (*p == 'k' || *p == 'K')) {
        v *= 1e3;
    } else if (p < end && (*p == 'm' || *p == 'M')) {
        v *= 1e6;
    }
    *value = neg ? -v : v;
    return isfinite(v) ? 0 : -1;
}

size_t eng_lex_string(const char *src, const eng_token_t *tok, char *buf, size_t n)
{
    size_t out = 0;
    uint32_t p = tok->start + 1;
    uint32_t end = tok->end > tok->start + 1 ? tok->end - 1 : tok->start + 1;
    while (p < end) {
        char c = src[p++];
        if (c == '\\' && p < end) {
            c = src[p++];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
        }
        if (n > 0 && out < n - 1) {
            buf[out] = c;
        }
        out++;
    }
    if (n > 0) {
        buf[out < n - 1 ? out : n - 1] = '\0';
    }
    return out;
}

void eng_lex_locate(const char *src, size_t len, uint32_t off, int *line, int *col,
                    uint32_t *line_start)
{
    if (off > len) {
        off = (uint32_t)len;
    }
    /* memchr rather than a byte loop: a policy with many diagnostics
     * locates each one from the start, so this scan is the cost that grows. */
    int ln = 1;
    uint32_t ls = 0;
    const char *p = src, *end = src + off, *nl;
    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        ln++;
        p = nl + 1;
        ls = (uint32_t)(p - src);
    }
    *line = ln;
    /* Columns as the editor shows them: a byte order mark is invisible. */
    uint32_t bom = ls == 0 && off >= 3 ? (uint32_t)eng_bom_len(src, len) : 0;
    *col = (int)(off - ls - bom) + 1;
    if (line_start) {
        *line_start = ls;
    }
}
