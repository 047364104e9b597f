/* eng_lex.h - tokens of the policy language.
 *
 * The lexer turns policy text into tokens that carry byte offsets into the
 * source, never copies: the parser and the compiler slice the source when
 * they need a token's text, and line/column are computed only when a
 * diagnostic is printed. Keywords are plain identifiers here; the parser's
 * tables decide what a word means where it appears.
 */
#ifndef ENG_LEX_H
#define ENG_LEX_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ENG_TOK_EOF = 0,  /* end of input */
    ENG_TOK_IDENT,    /* [A-Za-z_][A-Za-z0-9_-]* : keywords, field and tier names */
    ENG_TOK_NUMBER,   /* 12, 0.5, 32k, 1.5M, $0.15 (see eng_lex_number) */
    ENG_TOK_STRING,   /* "text" with \" \\ \n \t escapes */
    ENG_TOK_REGEX,    /* /pattern/flags */
    ENG_TOK_LBRACE,   /* { */
    ENG_TOK_RBRACE,   /* } */
    ENG_TOK_LPAREN,   /* ( */
    ENG_TOK_RPAREN,   /* ) */
    ENG_TOK_LBRACKET, /* [ */
    ENG_TOK_RBRACKET, /* ] */
    ENG_TOK_COMMA,    /* , */
    ENG_TOK_SEMI,     /* ; (optional separator between properties) */
    ENG_TOK_DOT,      /* . */
    ENG_TOK_LT,       /* < */
    ENG_TOK_LE,       /* <= */
    ENG_TOK_GT,       /* > */
    ENG_TOK_GE,       /* >= */
    ENG_TOK_EQ,       /* == */
    ENG_TOK_NE,       /* != */
    ENG_TOK_MATCH,    /* ~ */
    ENG_TOK_ERROR,    /* a lexical error; message in eng_lex_t.err */
    ENG_TOK_COUNT
} eng_tok_kind_t;

typedef struct {
    eng_tok_kind_t kind; /* what it is */
    uint32_t start;      /* byte offset of the first byte */
    uint32_t end;        /* byte offset one past the last byte */
} eng_token_t;

/* Lexer state over a borrowed buffer (which must outlive it). */
typedef struct {
    const char *src; /* the text */
    uint32_t len;    /* its length */
    uint32_t pos;    /* next byte to read */
    const char *err; /* message of the last ENG_TOK_ERROR (static string) */
} eng_lex_t;

/* Longest source the lexer accepts (offsets are 32-bit). */
#define ENG_LEX_MAX_SRC (UINT32_C(16) << 20)

/* Starts lexing src[0..len). len must be <= ENG_LEX_MAX_SRC. */
void eng_lex_init(eng_lex_t *lx, const char *src, size_t len);

/* Reads the next token into *tok and returns its kind. Skips blanks and
 * `#` comments. On a lexical error returns ENG_TOK_ERROR with tok covering
 * the offending bytes and lx->err set; the next call continues after them,
 * so a caller can report every error. At the end returns ENG_TOK_EOF forever. */
eng_tok_kind_t eng_lex_next(eng_lex_t *lx, eng_token_t *tok);

/* Human name of a token kind for messages: "identifier", "'{'", ... */
const char *eng_tok_kind_name(eng_tok_kind_t kind);

/* Value of an ENG_TOK_NUMBER token: digits with an optional fraction, an
 * optional leading '$' (money, in USD) and an optional suffix k (x1e3) or
 * M (x1e6). Sets *is_money. Returns 0, or -1 if the value is not finite or
 * has more than 63 digits. */
int eng_lex_number(const char *src, const eng_token_t *tok, double *value, int *is_money);

/* Unescapes the body of an ENG_TOK_STRING token into buf (NUL-terminated,
 * truncated to n-1). Returns the unescaped length (which may exceed n-1). */
size_t eng_lex_string(const char *src, const eng_token_t *tok, char *buf, size_t n);

/* 1-based line and column (in bytes) of byte offset `off`; also the offset
 * of the start of that line. */
void eng_lex_locate(const char *src, size_t len, uint32_t off, int *line, int *col,
                    uint32_t *line_start);

#endif
