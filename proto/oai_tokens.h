/* oai_tokens.h - prompt token estimate without a tokenizer.
 *
 * One pass over the UTF-8 text counts what a BPE pre-tokenizer would split
 * on: words, the letters of very long words, groups of three digits,
 * punctuation, whitespace runs other than a single space, CJK characters and
 * other non-ASCII letters. The estimate is a linear combination of those
 * counts with coefficients fitted by least squares against the o200k_base
 * tokenizer (GPT-4o / GPT-5) on tests/data/tokens/calibration.jsonl; the fit
 * is reproduced by sidecar/tools/token_calibration.mjs and the error is
 * stated in sidecar/README.md and checked by tests/unit/test_features.c.
 * Pure, allocation-free.
 */
#ifndef OAI_TOKENS_H
#define OAI_TOKENS_H

#include <stddef.h>
#include <stdint.h>

/* Chat framing, in tokens (OpenAI's chat format). */
#define OAI_TOK_PER_MESSAGE 4 /* <|im_start|>role<|im_sep|> ... <|im_end|> */
#define OAI_TOK_REPLY 3       /* the assistant reply's priming */
#define OAI_TOK_NAME 1        /* a message's `name` */
/* Images (OpenAI vision pricing): "low" detail is a flat 85 tokens; "high" or
 * "auto" is 85 + 170 per 512px tile, taken as a 1024x1024 image = 4 tiles. */
#define OAI_TOK_IMAGE_LOW 85
#define OAI_TOK_IMAGE_HIGH 765
/* Per tool definition, on top of the text of its name, description and
 * parameter schema (not calibrated: the provider's tool framing is private). */
#define OAI_TOK_PER_TOOL 8

/* Feature counts of one text. */
typedef struct {
    uint64_t words;  /* runs of letters (ASCII or non-CJK non-ASCII) */
    uint64_t longer; /* letters beyond the 8th in each run */
    uint64_t digits; /* groups of up to three digits */
    uint64_t punct;  /* ASCII symbols and punctuation */
    uint64_t space;  /* whitespace runs other than one ' ' */
    uint64_t cjk;    /* CJK, kana, hangul, full-width code points */
    uint64_t other;  /* non-ASCII, non-CJK code points */
} oai_tok_counts_t;

/* Adds the features of `s` (len bytes of UTF-8; invalid bytes count as
 * `other`) to `c`. Call oai_tok_counts_init first. Strings are counted one at a
 * time: a word never spans two calls. */
void oai_tok_counts_init(oai_tok_counts_t *c);
void oai_tok_count(oai_tok_counts_t *c, const char *s, size_t len);

/* Estimated tokens of counted text, rounded to the nearest token. */
int64_t oai_tok_estimate(const oai_tok_counts_t *c);

/* Shorthand: estimated tokens of one string. */
int64_t oai_tok_text(const char *s, size_t len);

#endif
