/* test_scorer.c - the prompt scorer, its model file, the labelled-data
 * readers (RFC 4180 CSV, JSONL), the trainer and score conditions in a
 * policy. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_labels.h"
#include "eng_policy.h"
#include "eng_scorer.h"
#include "hpp_request.h"

static double s_sigmoid(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

/* A hand-made model: 16 buckets, words only, every weight 0.5, bias -1.
 * "a b c" has 3 words + 2 shape features = 5, each counting 1/sqrt(5):
 * z = -1 + 5 * 0.5 / sqrt(5) = -1 + 0.5 * sqrt(5), wherever they hash. */
static const char s_flat[] = "hpp-scorer 1\n"
                             "# a comment\n"
                             "bits 4\nwords 1\nchars 0\nmax_bytes 100\nbias -1\n"
                             "w 0 0.5\nw 1 0.5\nw 2 0.5\nw 3 0.5\nw 4 0.5\nw 5 0.5\n"
                             "w 6 0.5\nw 7 0.5\nw 8 0.5\nw 9 0.5\nw 10 0.5\nw 11 0.5\n"
                             "w 12 0.5\nw 13 0.5\nw 14 0.5\nw 15 0.5\n";

Test(scorer, score_is_the_logistic_of_the_mean_weight)
{
    eng_error_t err = {0};
    eng_scorer_t *s = eng_scorer_parse("flat.model", s_flat, strlen(s_flat), &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_float_eq(eng_scorer_score(s, "a b c", 5), s_sigmoid(-1 + 0.5 * sqrt(5.0)), 1e-9);
    /* max_bytes 100: only the first 100 bytes count (50 words of "x "). */
    char big[400];
    for (int i = 0; i < 200; i++) {
        big[2 * i] = 'x';
        big[2 * i + 1] = ' ';
    }
    cr_assert_float_eq(eng_scorer_score(s, big, sizeof big), s_sigmoid(-1 + 0.5 * sqrt(52.0)),
                       1e-9);
    /* No text: the shape features only. */
    cr_assert_float_eq(eng_scorer_score(s, NULL, 0), s_sigmoid(-1 + 0.5 * sqrt(2.0)), 1e-9);
    eng_scorer_destroy(&s);
    cr_assert_null(s);
}

/* One weight set: the score moves exactly with the features in its bucket. */
static void s_count(void *ctx, uint32_t b)
{
    ((uint32_t *)ctx)[b]++;
}

Test(scorer, weights_are_summed_per_feature_occurrence)
{
    eng_scorer_params_t p = {6, 2, 3, 4096};
    uint32_t counts[64] = {0};
    const char *t = "Tom has 12 apples, Ann has 47.";
    uint32_t n = eng_scorer_features(&p, t, strlen(t), s_count, counts);
    cr_assert_gt(n, 10);
    float w[64];
    for (int i = 0; i < 64; i++) {
        w[i] = (float)(i % 7) * 0.125f - 0.25f;
    }
    eng_scorer_t *s = eng_scorer_new(&p, 0.25, w);
    cr_assert_not_null(s);
    double sum = 0;
    for (int i = 0; i < 64; i++) {
        sum += counts[i] * (double)w[i];
    }
    cr_assert_float_eq(eng_scorer_score(s, t, strlen(t)), s_sigmoid(0.25 + sum / sqrt(n)), 1e-9);
    /* Case and digits are folded: the same features. */
    const char *u = "TOM HAS 99 APPLES, ANN HAS 10.";
    cr_assert_float_eq(eng_scorer_score(s, u, strlen(u)), eng_scorer_score(s, t, strlen(t)), 1e-12);
    eng_scorer_destroy(&s);
}

Test(scorer, a_written_model_reads_back)
{
    eng_error_t err = {0};
    eng_scorer_t *s = eng_scorer_parse("flat.model", s_flat, strlen(s_flat), &err);
    cr_assert_not_null(s);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(eng_scorer_write(s, "round trip", f), 0);
    fclose(f);
    eng_scorer_t *t = eng_scorer_parse("copy.model", buf, len, &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_float_eq(eng_scorer_score(t, "x y", 3), eng_scorer_score(s, "x y", 3), 1e-7);
    free(buf);
    eng_scorer_destroy(&s);
    eng_scorer_destroy(&t);
}

/* Each bad file is refused with the line (and column) of its fault. */
Test(scorer, bad_model_files_are_located_errors)
{
    static const struct {
        const char *text;
        int line;
        const char *msg;
    } cases[] = {
        {"", 0, "empty file"},
        {"hello 1\n", 1, "not a scorer model"},
        {"hpp-scorer 2\n", 1, "unsupported model version"},
        {"hpp-scorer 1\nbits 4\nwords 1\nchars 0\nmax_bytes 9\nw 1 1\n", 6, "lacks 'bias'"},
        {"hpp-scorer 1\nbits 40\nwords 1\nchars 0\nmax_bytes 9\nbias 0\nw 1 1\n", 7, "bits"},
        {"hpp-scorer 1\nbits 4\nwords 1\nchars 0\nmax_bytes 9\nbias 0\nw 16 1\n", 7,
         "out of range"},
        {"hpp-scorer 1\nbits 4\nwords 1\nchars 0\nmax_bytes 9\nbias 0\nw 1 1\nw 1 2\n", 8,
         "second weight"},
        {"hpp-scorer 1\nbits 4\nbits 5\n", 3, "second"},
        {"hpp-scorer 1\nbits 4\nwords 1\nchars 0\nmax_bytes 9\nbias nan\n", 6, "finite"},
        {"hpp-scorer 1\nbits 4 5\n", 2, "end of the line"},
        {"hpp-scorer 1\nfoo 1\n", 2, "unknown key"},
        {"hpp-scorer 1\nbits 4\nwords 1\nchars 0\nmax_bytes 9\nbias 0\nw 1 1\nbits 4\n", 8,
         "after the weights"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eng_error_t err = {0};
        eng_scorer_t *s = eng_scorer_parse("m.model", cases[i].text, strlen(cases[i].text), &err);
        cr_assert_null(s, "case %zu parsed", i);
        cr_assert_eq(err.line, cases[i].line, "case %zu: line %d (%s)", i, err.line, err.msg);
        cr_assert_str_eq(err.file, "m.model");
        cr_assert_not_null(strstr(err.msg, cases[i].msg), "case %zu: %s", i, err.msg);
    }
    eng_error_t err = {0};
    cr_assert_null(eng_scorer_load("no/such.model", &err));
    cr_assert_eq(err.code, ENG_ERR_IO);
}

/* CSV ------------------------------------------------------------------------ */

Test(csv, quoted_fields_hold_commas_quotes_and_line_breaks)
{
    const char *t = "\xEF\xBB\xBF"
                    "a,\"b,1\",\"say \"\"hi\"\"\"\r\n"
                    "\"two\nlines\",,x\n"
                    "last,\"\",";
    eng_csv_t c;
    eng_csv_init(&c, t, strlen(t));
    eng_csv_field_t f[8];
    size_t nf;
    eng_error_t err = {0};
    char buf[64];
    cr_assert_eq(eng_csv_next(&c, "t.csv", f, 8, &nf, &err), 1);
    cr_assert_eq(nf, 3);
    cr_assert_eq(eng_csv_unescape(&f[0], buf), 1);
    buf[eng_csv_unescape(&f[1], buf)] = '\0';
    cr_assert_str_eq(buf, "b,1");
    buf[eng_csv_unescape(&f[2], buf)] = '\0';
    cr_assert_str_eq(buf, "say \"hi\"");
    cr_assert_eq(eng_csv_next(&c, "t.csv", f, 8, &nf, &err), 1);
    cr_assert_eq(nf, 3);
    buf[eng_csv_unescape(&f[0], buf)] = '\0';
    cr_assert_str_eq(buf, "two\nlines");
    cr_assert_eq(f[0].line, 2);
    cr_assert_eq(f[1].len, 0);
    cr_assert_eq(eng_csv_next(&c, "t.csv", f, 8, &nf, &err), 1);
    cr_assert_eq(nf, 3, "a trailing comma is one more empty field");
    cr_assert_eq(f[0].line, 4, "the line count includes the quoted line break");
    cr_assert_eq(eng_csv_next(&c, "t.csv", f, 8, &nf, &err), 0);
}

Test(csv, malformed_records_are_located_errors)
{
    static const struct {
        const char *text;
        int line, col;
        const char *msg;
    } cases[] = {
        {"a,b\n\"open\nstill open", 2, 1, "never closed"},
        {"a,\"b\"c\n", 1, 6, "after a closing quote"},
        {"a,b\"c\n", 1, 4, "quote inside an unquoted field"},
        {"a,b,c,d,e\n", 1, 9, "more than 4 fields"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eng_csv_t c;
        eng_csv_init(&c, cases[i].text, strlen(cases[i].text));
        eng_csv_field_t f[4];
        size_t nf;
        eng_error_t err = {0};
        int rc;
        while ((rc = eng_csv_next(&c, "bad.csv", f, 4, &nf, &err)) > 0) {
        }
        cr_assert_eq(rc, -1, "case %zu", i);
        cr_assert_eq(err.line, cases[i].line, "case %zu: line %d", i, err.line);
        cr_assert_eq(err.col, cases[i].col, "case %zu: col %d", i, err.col);
        cr_assert_not_null(strstr(err.msg, cases[i].msg), "case %zu: %s", i, err.msg);
    }
}

/* Labelled data ---------------------------------------------------------------- */

Test(labels, routellm_csv_and_jsonl_give_the_same_examples)
{
    const char *csv = "prompt,weak,strong,weak_response,strong_response\n"
                      "\"What is 2+2?\nAnswer:\",False,True,\"five\",\"four, it is four\"\n"
                      "hi,True,True,a,b\n";
    const char *jsonl = "{\"prompt\":\"What is 2+2?\\nAnswer:\",\"weak\":false,\"strong\":true,"
                        "\"weak_response\":\"five\",\"strong_response\":\"four, it is four\"}\n"
                        "\n"
                        "{\"prompt\":\"hi\",\"weak\":true,\"strong\":true,"
                        "\"weak_output_tokens\":1,\"strong_output_tokens\":1}\n";
    eng_labels_t *a = eng_labels_new("strong", "weak"), *b = eng_labels_new("strong", "weak");
    eng_error_t err = {0};
    cr_assert_eq(eng_labels_add(a, "d.csv", csv, strlen(csv), false, &err), 0, "%s", err.msg);
    cr_assert_eq(eng_labels_add(b, "d.jsonl", jsonl, strlen(jsonl), true, &err), 0, "%s", err.msg);
    cr_assert_eq(eng_labels_count(a), 2);
    cr_assert_eq(eng_labels_count(b), 2);
    for (size_t i = 0; i < 2; i++) {
        const eng_example_t *x = eng_labels_at(a, i), *y = eng_labels_at(b, i);
        cr_assert_str_eq(x->prompt, y->prompt);
        cr_assert_eq(x->strong_ok, y->strong_ok);
        cr_assert_eq(x->weak_ok, y->weak_ok);
        cr_assert_eq(x->in_tokens, y->in_tokens);
        cr_assert_gt(x->in_tokens, 0);
        cr_assert_eq(x->strong_out, y->strong_out);
        cr_assert_eq(x->weak_out, y->weak_out);
    }
    cr_assert(!eng_labels_at(a, 0)->weak_ok && eng_labels_at(a, 0)->strong_ok);
    eng_labels_destroy(&a);
    eng_labels_destroy(&b);
}

Test(labels, bad_data_is_refused_with_its_place)
{
    static const struct {
        const char *text;
        bool jsonl;
        int line;
        const char *msg;
    } cases[] = {
        {"prompt,weak\nx,True\n", false, 1, "no column 'strong'"},
        {"prompt,weak,strong\nx,True,Maybe\n", false, 2, "not True or False"},
        {"prompt,weak,strong\nx,True\n", false, 2, "2 fields, the header 3"},
        {"{\"prompt\":\"x\",\"weak\":true}\n", true, 1, "\"strong\" must be true or false"},
        {"{\"prompt\":\"x\",\"weak\":true,\"strong\":1}\n", true, 1, "true or false"},
        {"\n[1]\n", true, 2, "JSON object"},
        {"{\"prompt\":\"x\",\"weak\":true,\"strong\":true,\"weak_output_tokens\":-1}\n", true, 1,
         "whole number"},
        {"{\"prompt\":", true, 1, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eng_labels_t *s = eng_labels_new("strong", "weak");
        eng_error_t err = {0};
        cr_assert_eq(
            eng_labels_add(s, "d", cases[i].text, strlen(cases[i].text), cases[i].jsonl, &err), -1,
            "case %zu", i);
        cr_assert_eq(err.line, cases[i].line, "case %zu: line %d (%s)", i, err.line, err.msg);
        cr_assert_not_null(strstr(err.msg, cases[i].msg), "case %zu: %s", i, err.msg);
        cr_assert_eq(eng_labels_count(s), 0, "a file with an error adds nothing");
        eng_labels_destroy(&s);
    }
}

Test(labels, the_split_is_a_function_of_the_prompt)
{
    int test = 0, valid = 0;
    char p[32];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(p, sizeof p, "prompt %d", i);
        bool t = eng_labels_in_split(p, (size_t)n, ENG_SPLIT_TEST);
        bool tr = eng_labels_in_split(p, (size_t)n, ENG_SPLIT_TRAIN);
        bool f = eng_labels_in_split(p, (size_t)n, ENG_SPLIT_FIT);
        bool v = eng_labels_in_split(p, (size_t)n, ENG_SPLIT_VALID);
        cr_assert(t != tr, "test and train partition the prompts");
        cr_assert(tr == (f || v) && !(f && v), "fit and valid partition train");
        test += t;
        valid += v;
    }
    cr_assert(test > 300 && test < 500, "about 20%% test: %d", test);
    cr_assert(valid > 130 && valid < 270, "about 10%% valid: %d", valid);
}

/* Training ----------------------------------------------------------------- */

static eng_labels_t *s_toy_set(void)
{
    /* The weak model fails exactly the prompts about "integrals". */
    eng_labels_t *s = eng_labels_new("strong", "weak");
    char line[256];
    char *csv = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&csv, &len);
    fputs("prompt,strong,weak\n", f);
    for (int i = 0; i < 400; i++) {
        bool hard = i % 3 == 0;
        snprintf(line, sizeof line, "\"%s number %d, please\",True,%s\n",
                 hard ? "compute the integrals of" : "say hello to", i, hard ? "False" : "True");
        fputs(line, f);
    }
    fclose(f);
    eng_error_t err = {0};
    cr_assert_eq(eng_labels_add(s, "toy.csv", csv, len, false, &err), 0, "%s", err.msg);
    free(csv);
    return s;
}

Test(train, a_seed_gives_one_model_and_it_learns)
{
    eng_labels_t *set = s_toy_set();
    eng_train_opts_t o = eng_train_default_opts();
    o.features.bits = 10;
    o.seed = 7;
    eng_error_t err = {0};
    size_t used = 0;
    eng_scorer_t *a = eng_scorer_train(set, &o, &used, &err);
    eng_scorer_t *b = eng_scorer_train(set, &o, NULL, &err);
    o.seed = 8;
    eng_scorer_t *c = eng_scorer_train(set, &o, NULL, &err);
    cr_assert(a && b && c, "%s", err.msg);
    cr_assert(used > 250 && used < 400, "the train split: %zu", used);
    size_t nb = 1u << 10;
    cr_assert_eq(memcmp(eng_scorer_weights(a), eng_scorer_weights(b), nb * sizeof(float)), 0,
                 "same seed, same weights");
    cr_assert_neq(memcmp(eng_scorer_weights(a), eng_scorer_weights(c), nb * sizeof(float)), 0,
                  "another seed, another order");
    const char *hard = "compute the integrals of number 9999, please";
    const char *easy = "say hello to number 9999, please";
    cr_assert_gt(eng_scorer_score(a, hard, strlen(hard)), 0.6);
    cr_assert_lt(eng_scorer_score(a, easy, strlen(easy)), 0.4);
    o.split = ENG_SPLIT_TEST;
    eng_labels_t *empty = eng_labels_new("strong", "weak");
    cr_assert_null(eng_scorer_train(empty, &o, NULL, &err));
    cr_assert_not_null(strstr(err.msg, "no example"), "%s", err.msg);
    eng_labels_destroy(&empty);
    eng_scorer_destroy(&a);
    eng_scorer_destroy(&b);
    eng_scorer_destroy(&c);
    eng_labels_destroy(&set);
}

/* In a policy -------------------------------------------------------------- */

static eng_catalog_t *s_catalog(void)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err = {0};
    cr_assert_eq(eng_catalog_load(cat, "data/routellm/catalog.json", &err), 0, "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0, "%s", err.msg);
    return cat;
}

static eng_policy_t *s_policy(const eng_catalog_t *cat, const char *src, eng_diags_t *d)
{
    return eng_policy_load_buffer("q.policy", src, strlen(src), cat, d);
}

Test(score_rules, a_score_condition_routes_and_a_request_can_move_its_threshold)
{
    eng_catalog_t *cat = s_catalog();
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *pol = s_policy(cat,
                                 "scorer difficulty file \"policies/examples/difficulty.model\"\n"
                                 "tier cheap max $1\ntier strong max $100\n"
                                 "route hard when score.difficulty > 0.5 { tier strong }\n"
                                 "route rest { tier cheap }\n",
                                 d);
    if (!pol) {
        eng_diags_print(d, stderr);
    }
    cr_assert_not_null(pol);
    const char *text = "What is 17 * 23?";
    double sc = eng_scorer_score(eng_policy_scorer(pol, "difficulty", NULL), text, strlen(text));
    hpp_features_t f;
    hpp_features_init(&f);
    f.text = (hpp_str_t){text, (uint32_t)strlen(text)};
    eng_decision_t dec;
    eng_trace_entry_t ent[8];
    eng_trace_t tr = {ent, 8, 0, 0, 0, {NULL}, {NULL}, 0, {NULL}, {0}, 0};
    cr_assert_eq(eng_resolve(pol, &f, &dec, &tr), HPP_OK, "%s", dec.message);
    cr_assert_str_eq(dec.rule, sc > 0.5 ? "hard" : "rest");
    cr_assert_eq(tr.nscores, 1);
    cr_assert_str_eq(tr.score_names[0], "difficulty");
    cr_assert_float_eq(tr.scores[0], sc, 1e-12);
    /* threshold.difficulty: 0 sends it to the strong tier, 1 to the cheap one. */
    hpp_str_t k = {"threshold.difficulty", 20};
    for (int i = 0; i < 2; i++) {
        hpp_str_t v = {i ? "1" : "0", 1};
        f.meta_keys[0] = k;
        f.meta_vals[0] = v;
        f.nmeta = 1;
        cr_assert_eq(eng_resolve(pol, &f, &dec, NULL), HPP_OK);
        cr_assert_str_eq(dec.rule, i ? "rest" : "hard");
    }
    eng_policy_destroy(&pol);
    eng_diags_destroy(&d);
    eng_catalog_destroy(&cat);
}

Test(score_rules, scorer_mistakes_are_compile_errors)
{
    static const struct {
        const char *src, *msg;
    } cases[] = {
        {"route r when score.nope > 0.5 { tier cheap }", "no scorer 'nope'"},
        {"route r when score > 0.5 { tier cheap }", "score needs a key"},
        {"scorer d file \"policies/examples/difficulty.model\"\n"
         "route r when score.d > 2 { tier cheap }",
         "from 0 to 1"},
        {"scorer d file \"policies/examples/difficulty.model\"\n"
         "route r when score.d ~ /x/ { tier cheap }",
         "compare score.d with a number"},
        {"scorer d file \"no/such.model\"\nroute r { tier cheap }", "cannot load scorer 'd'"},
        {"scorer d\nroute r { tier cheap }", "needs its model"},
        {"scorer d file \"policies/examples/difficulty.model\"\n"
         "scorer d file \"policies/examples/difficulty.model\"\nroute r { tier cheap }",
         "already defined"},
    };
    eng_catalog_t *cat = s_catalog();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[512];
        snprintf(src, sizeof src, "tier cheap max $1\n%s\n", cases[i].src);
        eng_diags_t *d = eng_diags_new();
        eng_policy_t *pol = s_policy(cat, src, d);
        cr_assert_null(pol, "case %zu compiled", i);
        bool found = false;
        for (size_t j = 0; j < eng_diags_size(d); j++) {
            const eng_diag_t *g = eng_diags_get(d, j);
            found = found || (strstr(g->msg, cases[i].msg) && g->line > 0);
        }
        if (!found) {
            eng_diags_print(d, stderr);
        }
        cr_assert(found, "case %zu: no located '%s'", i, cases[i].msg);
        eng_diags_destroy(&d);
    }
    eng_catalog_destroy(&cat);
}
