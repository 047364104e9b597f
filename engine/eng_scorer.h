/* eng_scorer.h - a learned prompt scorer: hashed n-gram logistic regression.
 *
 * A scorer maps the request's text sample to a number in [0, 1] (for the
 * bundled model: the probability that the cheap model answers wrongly). The
 * features are hashed into 2^bits buckets:
 *
 *   - words: runs of ASCII letters and digits, lower-cased, digits folded
 *     to '0' (so "12" and "47" are the same word), and with `words 2` the
 *     pairs of consecutive words;
 *   - chars: every `chars`-byte window of the same folded text (0 = none);
 *   - shape: the bucket of log2 of the sample's length and of its count of
 *     numbers.
 *
 * Each occurrence counts 1/sqrt(n) (n = features of the text), so
 *
 *   score = 1 / (1 + exp(-(bias + sum of w[feature] / sqrt(n))))
 *
 * Only the first `max_bytes` bytes of the text are read: the cost of a
 * score is bounded whatever the sample's size. Scoring allocates nothing
 * and only reads the scorer, so any number of threads may share one.
 *
 * The model file is text (policies/SCORER.md):
 *
 *   hpp-scorer 1
 *   bits 14
 *   words 2
 *   chars 4
 *   max_bytes 512
 *   bias -1.25
 *   w 4711 0.0831
 *   ...
 *
 * The header keys come first, in any order, each once; `w INDEX WEIGHT`
 * lines follow (buckets not listed weigh 0; each index at most once).
 * Blank lines and '#' comments are ignored. Every error names the file and
 * line (eng_error_t).
 */
#ifndef ENG_SCORER_H
#define ENG_SCORER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eng_common.h"

#define ENG_SCORER_VERSION 1
#define ENG_SCORER_MIN_BITS 4
#define ENG_SCORER_MAX_BITS 24
#define ENG_SCORER_MAX_CHARS 8
#define ENG_SCORER_MAX_FILE (64u * 1024 * 1024)
#define ENG_SCORER_MAX_BYTES (1u << 20) /* largest max_bytes */

/* How text becomes features. */
typedef struct {
    uint32_t bits;      /* hash buckets: 2^bits */
    uint32_t words;     /* 0: no word features, 1: words, 2: words and pairs */
    uint32_t chars;     /* char window length, 0 = none */
    uint32_t max_bytes; /* bytes of the text read */
} eng_scorer_params_t;

/* Parameters the trainer uses by default. */
eng_scorer_params_t eng_scorer_default_params(void);

typedef struct eng_scorer eng_scorer_t;

/* Called once per feature occurrence with its bucket. */
typedef void (*eng_scorer_feature_fn)(void *ctx, uint32_t bucket);

/* Feeds every feature of text[0..len) to fn; returns how many. */
uint32_t eng_scorer_features(const eng_scorer_params_t *p, const char *text, size_t len,
                             eng_scorer_feature_fn fn, void *ctx);

/* A scorer from parameters, a bias and 2^bits weights (copied); NULL when
 * out of memory or the parameters are out of range. For the trainer and
 * tests. */
eng_scorer_t *eng_scorer_new(const eng_scorer_params_t *p, double bias, const float *weights);

/* Parses a model file's text (`file` names it in errors). NULL with `err`
 * located at the offending line. */
eng_scorer_t *eng_scorer_parse(const char *file, const char *text, size_t len, eng_error_t *err);

/* Reads and parses the model file at `path`. */
eng_scorer_t *eng_scorer_load(const char *path, eng_error_t *err);
/* The same, showing the file's bytes as read to on_source (may be NULL):
 * the snapshot's policy hash covers the model, so two engines whose models
 * differ do not report the same hash. */
eng_scorer_t *eng_scorer_load_observed(const char *path, eng_error_t *err, eng_source_fn on_source,
                                       void *ctx);

void eng_scorer_destroy(eng_scorer_t **self_p);

/* The scorer's parameters, bias and weights (2^bits of them). */
const eng_scorer_params_t *eng_scorer_params(const eng_scorer_t *self);
double eng_scorer_bias(const eng_scorer_t *self);
const float *eng_scorer_weights(const eng_scorer_t *self);

/* The score of text[0..len) in [0, 1]. No allocation. */
double eng_scorer_score(const eng_scorer_t *self, const char *text, size_t len);

/* Writes the model file text to `f` (weights with |w| < 1e-6 are left out,
 * the rest printed with 6 significant digits). Returns 0 or -1 (write error). */
int eng_scorer_write(const eng_scorer_t *self, const char *comment, FILE *f);

#endif
