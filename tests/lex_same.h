/* lex_same.h - whether two policy texts hold the same tokens, byte for
 * byte, in the same order: what `hpp-policy fmt` must keep, checked by
 * tests/unit/test_policy_authoring.c and tests/fuzz/fuzz_policy_fmt.c. */
#ifndef LEX_SAME_H
#define LEX_SAME_H

#include <stdbool.h>
#include <string.h>

#include "eng_lex.h"

static inline bool lex_same_tokens(const char *a, size_t alen, const char *b, size_t blen)
{
    eng_lex_t la, lb;
    eng_lex_init(&la, a, alen);
    eng_lex_init(&lb, b, blen);
    for (;;) {
        eng_token_t ta, tb;
        eng_tok_kind_t ka = eng_lex_next(&la, &ta);
        eng_tok_kind_t kb = eng_lex_next(&lb, &tb);
        if (ka != kb || ta.end - ta.start != tb.end - tb.start ||
            memcmp(a + ta.start, b + tb.start, ta.end - ta.start) != 0) {
            return false;
        }
        if (ka == ENG_TOK_EOF) {
            return true;
        }
    }
}

#endif
