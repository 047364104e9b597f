/* eng_labels.h - labelled prompts for training and evaluating a scorer.
 *
 * Each example is a prompt with, for two models (a strong and a weak one),
 * whether the model answered it correctly and, when known, how many tokens
 * its answer took. Two file formats (policies/README.md, "Scorer data"):
 *
 *   CSV (RFC 4180, as RouteLLM publishes it): a header row with a `prompt`
 *   column and one True/False column per model named by the model; a column
 *   MODEL_response, when present, holds that model's answer, whose token
 *   estimate is its output tokens. Quoted fields may hold commas, doubled
 *   quotes and line breaks.
 *
 *   JSONL: one object a line with the same keys: "prompt" (a string), MODEL
 *   (true/false), optionally MODEL_response (a string) or
 *   MODEL_output_tokens (a whole number).
 *
 * The train/test split is a fixed function of the prompt's bytes
 * (eng_labels_split), so every tool and run puts a prompt on the same side.
 * Every error names the file, line and column (eng_error_t).
 */
#ifndef ENG_LABELS_H
#define ENG_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_common.h"
#include "eng_scorer.h"

#define ENG_CSV_MAX_FIELDS 64              /* columns of one record */
#define ENG_LABELS_MAX_FILE (256u << 20)   /* bytes of one data file */
#define ENG_LABELS_MAX_EXAMPLES (1u << 22) /* examples in one set */

/* RFC 4180 reader ------------------------------------------------------------ */

typedef struct {
    const char *text; /* the whole file (not NUL-terminated) */
    size_t len;       /* its length */
    size_t pos;       /* next byte */
    size_t line;      /* 1-based line of pos */
    size_t col_base;  /* offset of the line holding pos */
} eng_csv_t;

/* One field: the bytes between the delimiters, quotes excluded; a quoted
 * field still holds its doubled quotes (eng_csv_unescape). */
typedef struct {
    const char *ptr; /* in the text */
    size_t len;      /* byte count */
    bool quoted;     /* was in quotes */
    size_t line;     /* 1-based line where it starts */
} eng_csv_field_t;

/* Starts reading text[0..len) (a UTF-8 byte-order mark is skipped). */
void eng_csv_init(eng_csv_t *c, const char *text, size_t len);

/* The next record's fields into f[0..*nf) (at most max). Returns 1, 0 at the
 * end of the text, or -1 with `err` located (file, line, column): a quote
 * that is never closed, text after a closing quote, a bare quote inside an
 * unquoted field, more than `max` fields. A record ends at LF or CRLF
 * outside quotes; a final line ending is optional. */
int eng_csv_next(eng_csv_t *c, const char *file, eng_csv_field_t *f, size_t max, size_t *nf,
                 eng_error_t *err);

/* Copies a field's value into out (room for f->len bytes), undoubling the
 * quotes of a quoted field. Returns the value's length. */
size_t eng_csv_unescape(const eng_csv_field_t *f, char *out);

/* Labelled examples -------------------------------------------------------------- */

typedef struct {
    char *prompt;       /* NUL-terminated, owned by the set */
    size_t prompt_len;  /* its length */
    bool strong_ok;     /* the strong model answered correctly */
    bool weak_ok;       /* the weak model did */
    int64_t in_tokens;  /* the project's token estimate of the prompt (a one-message chat) */
    int64_t strong_out; /* output tokens of the strong model's answer, -1 unknown */
    int64_t weak_out;   /* the weak model's, -1 unknown */
    uint32_t file;      /* index of the file it came from */
} eng_example_t;

typedef struct eng_labels eng_labels_t;

/* An empty set for the two models' columns; NULL when out of memory. */
eng_labels_t *eng_labels_new(const char *strong, const char *weak);
void eng_labels_destroy(eng_labels_t **self_p);

/* Adds a file's examples, in CSV or JSONL (`jsonl`). Returns 0 or -1 with
 * `err` located; the examples of a file with an error are not kept. */
int eng_labels_add(eng_labels_t *self, const char *file, const char *text, size_t len, bool jsonl,
                   eng_error_t *err);

/* Reads `path`: JSONL when it ends in .jsonl, else CSV. */
int eng_labels_load(eng_labels_t *self, const char *path, eng_error_t *err);

size_t eng_labels_count(const eng_labels_t *self);
const eng_example_t *eng_labels_at(const eng_labels_t *self, size_t i);
/* Name of file index `i` as given. */
const char *eng_labels_file(const eng_labels_t *self, uint32_t i);

/* Splits. test: 20% of prompts; train: the other 80%, itself cut into
 * fit (70%) and valid (10%) for choosing training settings without the
 * test split. */
typedef enum {
    ENG_SPLIT_ALL,
    ENG_SPLIT_TRAIN,
    ENG_SPLIT_TEST,
    ENG_SPLIT_FIT,
    ENG_SPLIT_VALID,
    /* Cross-validation over train: ENG_SPLIT_FOLD + k ("foldK", k = 2..9)
     * is the tenth of prompts with hash digit k, ENG_SPLIT_NOT_FOLD + k
     * ("notfoldK") the rest of train. */
    ENG_SPLIT_FOLD = 16,
    ENG_SPLIT_NOT_FOLD = 32,
} eng_split_t;

/* Parses "all", "train", "test", "fit", "valid", "foldK", "notfoldK"
 * (K = 2..9); -1 when unknown. */
int eng_split_parse(const char *s);
const char *eng_split_name(eng_split_t s);
/* True when the prompt falls in split s: FNV-1a 64 of its bytes, mod 10:
 * 0-1 test, 2 valid, 3-9 fit. */
bool eng_labels_in_split(const char *prompt, size_t len, eng_split_t s);

/* Training ---------------------------------------------------------------------- */

/* What the scorer learns to predict. */
typedef enum {
    ENG_LABEL_WEAK_WRONG,  /* the weak model answers wrongly */
    ENG_LABEL_STRONG_GAIN, /* the strong model answers correctly and the weak one does not */
} eng_label_t;

typedef struct {
    eng_scorer_params_t features; /* how text becomes features */
    eng_label_t label;            /* the target */
    uint32_t epochs;              /* passes over the data */
    double rate;                  /* initial learning rate (AdaGrad) */
    double l2;                    /* L2 penalty per example */
    uint64_t seed;                /* order of the examples in each pass */
    eng_split_t split;            /* examples trained on */
} eng_train_opts_t;

eng_train_opts_t eng_train_default_opts(void);

/* Trains a scorer on the set's examples in opts->split: logistic
 * regression by AdaGrad, the order of each pass shuffled from the seed, so
 * a seed gives the same model bit for bit. NULL with `err` when no example
 * is in the split or memory runs out. `*used` gets the count trained on. */
eng_scorer_t *eng_scorer_train(const eng_labels_t *set, const eng_train_opts_t *opts, size_t *used,
                               eng_error_t *err);

#endif
