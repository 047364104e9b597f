/* test_lex.c - tokens, values and locations of the policy lexer. */
#include <criterion/criterion.h>
#include <string.h>

#include "eng_lex.h"

/* Lexes src fully into kinds[] (ERROR included); returns the count before EOF. */
static int s_kinds(const char *src, eng_tok_kind_t *kinds, eng_token_t *toks, int max)
{
    eng_lex_t lx;
    eng_lex_init(&lx, src, strlen(src));
    int n = 0;
    for (;;) {
        eng_token_t t;
        eng_tok_kind_t k = eng_lex_next(&lx, &t);
        if (k == ENG_TOK_EOF) {
            /* EOF is sticky */
            cr_assert_eq(eng_lex_next(&lx, &t), ENG_TOK_EOF);
            return n;
        }
        cr_assert_lt(n, max);
        kinds[n] = k;
        if (toks) {
            toks[n] = t;
        }
        n++;
    }
}

Test(eng_lex, punctuation_and_operators)
{
    eng_tok_kind_t k[32];
    int n = s_kinds("{ } ( ) [ ] , ; . < <= > >= == != ~", k, NULL, 32);
    eng_tok_kind_t want[] = {ENG_TOK_LBRACE,   ENG_TOK_RBRACE,   ENG_TOK_LPAREN, ENG_TOK_RPAREN,
                             ENG_TOK_LBRACKET, ENG_TOK_RBRACKET, ENG_TOK_COMMA,  ENG_TOK_SEMI,
                             ENG_TOK_DOT,      ENG_TOK_LT,       ENG_TOK_LE,     ENG_TOK_GT,
                             ENG_TOK_GE,       ENG_TOK_EQ,       ENG_TOK_NE,     ENG_TOK_MATCH};
    cr_assert_eq(n, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < n; i++) {
        cr_assert_eq(k[i], want[i], "token %d", i);
    }
}

Test(eng_lex, identifiers_with_dashes_and_offsets)
{
    eng_tok_kind_t k[8];
    eng_token_t t[8];
    const char *src = "route long-context_2 meta.tenant";
    int n = s_kinds(src, k, t, 8);
    cr_assert_eq(n, 5);
    cr_assert_eq(k[1], ENG_TOK_IDENT);
    cr_assert_eq(t[1].start, 6);
    cr_assert_eq(t[1].end, 20);
    cr_assert_eq(k[3], ENG_TOK_DOT);
}

Test(eng_lex, comments_and_blanks_are_skipped)
{
    eng_tok_kind_t k[8];
    int n = s_kinds("# a comment { not a token\n\t tier  # trailing\r\n x", k, NULL, 8);
    cr_assert_eq(n, 2);
    cr_assert_eq(k[0], ENG_TOK_IDENT);
}

Test(eng_lex, numbers_with_money_and_suffixes)
{
    const struct {
        const char *src;
        double value;
        int money;
    } cases[] = {
        {"12", 12, 0},        {"0.5", 0.5, 0},     {"32k", 32000, 0},
        {"1.5M", 1500000, 0}, {"$0.15", 0.15, 1},  {"$10", 10, 1},
        {"-3", -3, 0},        {"100K", 100000, 0}, {"2m", 2000000, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eng_lex_t lx;
        eng_lex_init(&lx, cases[i].src, strlen(cases[i].src));
        eng_token_t t;
        cr_assert_eq(eng_lex_next(&lx, &t), ENG_TOK_NUMBER, "%s", cases[i].src);
        double v;
        int money;
        cr_assert_eq(eng_lex_number(cases[i].src, &t, &v, &money), 0);
        cr_assert_float_eq(v, cases[i].value, 1e-9, "%s", cases[i].src);
        cr_assert_eq(money, cases[i].money, "%s", cases[i].src);
    }
}

Test(eng_lex, malformed_numbers)
{
    const char *bad[] = {"12abc", "1.", "$", "3.4.5", "10kb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eng_lex_t lx;
        eng_lex_init(&lx, bad[i], strlen(bad[i]));
        eng_token_t t;
        cr_assert_eq(eng_lex_next(&lx, &t), ENG_TOK_ERROR, "%s", bad[i]);
        cr_assert_not_null(lx.err);
    }
}

Test(eng_lex, strings_unescape)
{
    const char *src = "\"a \\\"quoted\\\" word\\n\\\\\"";
    eng_lex_t lx;
    eng_lex_init(&lx, src, strlen(src));
    eng_token_t t;
    cr_assert_eq(eng_lex_next(&lx, &t), ENG_TOK_STRING);
    cr_assert_eq(t.end, strlen(src));
    char buf[64];
    size_t n = eng_lex_string(src, &t, buf, sizeof buf);
    cr_assert_str_eq(buf, "a \"quoted\" word\n\\");
    cr_assert_eq(n, strlen(buf));
    /* truncation still reports the full length */
    char small[4];
    cr_assert_eq(eng_lex_string(src, &t, small, sizeof small), n);
    cr_assert_str_eq(small, "a \"");
}

Test(eng_lex, regex_literals)
{
    const char *src = "/pragma\\s+solidity|a\\/b/i x";
    eng_tok_kind_t k[4];
    eng_token_t t[4];
    int n = s_kinds(src, k, t, 4);
    cr_assert_eq(n, 2);
    cr_assert_eq(k[0], ENG_TOK_REGEX);
    cr_assert_eq(t[0].end, strlen(src) - 2); /* the escaped slash does not close it; flags kept */
}

Test(eng_lex, errors_are_tokens_and_lexing_continues)
{
    eng_tok_kind_t k[16];
    eng_token_t t[16];
    const char *src = "a = b ! c @ \"open\n/re\n d";
    int n = s_kinds(src, k, t, 16);
    eng_tok_kind_t want[] = {ENG_TOK_IDENT, ENG_TOK_ERROR, ENG_TOK_IDENT,
                             ENG_TOK_ERROR, ENG_TOK_IDENT, ENG_TOK_ERROR,
                             ENG_TOK_ERROR, ENG_TOK_ERROR, ENG_TOK_IDENT};
    cr_assert_eq(n, 9);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(k[i], want[i], "token %d", i);
    }
    cr_assert_eq(t[5].start, 10); /* '@' */
    cr_assert_eq(t[5].end, 11);
}

Test(eng_lex, messages)
{
    const struct {
        const char *src;
        const char *msg;
    } cases[] = {
        {"\"abc", "unterminated string"},
        {"/abc", "unterminated regex (a regex ends with '/' on the same line)"},
        {"=", "unexpected '=' (comparison is '==')"},
        {"!", "unexpected '!' (negation is 'not')"},
        {"\xc3\xa9", "unexpected character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eng_lex_t lx;
        eng_lex_init(&lx, cases[i].src, strlen(cases[i].src));
        eng_token_t t;
        cr_assert_eq(eng_lex_next(&lx, &t), ENG_TOK_ERROR);
        cr_assert_str_eq(lx.err, cases[i].msg);
        cr_assert_eq(t.end, strlen(cases[i].src), "a whole UTF-8 character is one error");
    }
}

Test(eng_lex, locate_lines_and_columns)
{
    const char *src = "ab\ncd\n\tef";
    int line, col;
    uint32_t ls;
    eng_lex_locate(src, strlen(src), 0, &line, &col, &ls);
    cr_assert_eq(line, 1);
    cr_assert_eq(col, 1);
    eng_lex_locate(src, strlen(src), 4, &line, &col, &ls);
    cr_assert_eq(line, 2);
    cr_assert_eq(col, 2);
    cr_assert_eq(ls, 3);
    eng_lex_locate(src, strlen(src), 7, &line, &col, &ls);
    cr_assert_eq(line, 3);
    cr_assert_eq(col, 2); /* columns count bytes; the caret printer keeps the tab */
    eng_lex_locate(src, strlen(src), 999, &line, &col, NULL);
    cr_assert_eq(line, 3);
}

Test(eng_lex, kind_names)
{
    cr_assert_str_eq(eng_tok_kind_name(ENG_TOK_LBRACE), "'{'");
    cr_assert_str_eq(eng_tok_kind_name(ENG_TOK_EOF), "end of file");
    cr_assert_str_eq(eng_tok_kind_name((eng_tok_kind_t)999), "token");
}

Test(eng_lex, nul_bytes_do_not_stop_the_lexer)
{
    const char src[] = "a\0b";
    eng_lex_t lx;
    eng_lex_init(&lx, src, 3);
    eng_token_t t;
    cr_assert_eq(eng_lex_next(&lx, &t), ENG_TOK_IDENT);
    cr_assert_eq(eng_lex_next(&lx, &t), ENG_TOK_ERROR);
    cr_assert_eq(eng_lex_next(&lx, &t), ENG_TOK_IDENT);
    cr_assert_eq(eng_lex_next(&lx, &t), ENG_TOK_EOF);
}
