/* fuzz_regex.c - libFuzzer target for the hint-rule regex engine (engine/eng_regex.c).
 *
 * Input layout: byte 0 selects the flags (bit 0: ENG_REGEX_ICASE); the bytes up to the first NUL
 * are the pattern; the bytes after it are the text to search. Pattern and text are copied into
 * exact-size heap buffers so that AddressSanitizer catches any read past their lengths.
 * Checked: no crash, no leak, no over-read, the DFA agreeing with the NFA matchers,
 * eng_regex_check() agreeing with eng_regex_compile(), and the error contract (a message and an
 * offset inside the pattern on failure; offset -1 and an empty message on success). And the
 * one-pass scan's pieces (eng_scan.h) against the matcher they stand in for: the anchored matcher
 * finds a match at some position exactly when the search does, every position where one begins
 * holds one of the pattern's prefix literals, and eng_scan_run() gives the search's answer for the
 * regex and a plain case-insensitive search's for a literal taken from the text.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_regex.h"
#include "eng_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Does literal [lit, lit+n) occur at t (ASCII case-insensitively when caseless)? */
static bool s_lit_at(const char *t, size_t len, size_t pos, const char *lit, size_t n,
                     bool caseless)
{
    if (pos + n > len) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned a = (unsigned char)t[pos + i], b = (unsigned char)lit[i];
        if (caseless) {
            a = a >= 'A' && a <= 'Z' ? a + 32 : a;
            b = b >= 'A' && b <= 'Z' ? b + 32 : b;
        }
        if (a != b) {
            return false;
        }
    }
    return true;
}

/* The anchored matcher and the prefix literals against the search's answer `whole`. */
static void s_check_anchored(const eng_regex_t *re, const char *pat, size_t plen, int flags,
                             const char *text, size_t tlen, bool whole)
{
    eng_regex_prefixes_t px;
    int rc = eng_regex_prefixes(pat, plen, flags, &px);
    if (rc < 0 || !eng_regex_can_match_at(re) || tlen > 512) {
        if (rc < 0) {
            __builtin_trap(); /* it compiled: its prefixes parse too */
        }
        return;
    }
    bool any = false;
    for (size_t pos = 0; pos <= tlen; pos++) {
        size_t budget = tlen + 1; /* an anchored run steps at most the rest of the text */
        int m = eng_regex_match_at(re, text, tlen, pos, &budget);
        if (m < 0) {
            __builtin_trap();
        }
        any = any || m == 1;
        bool lit = rc == 0;
        for (int i = 0; m == 1 && i < px.n && !lit; i++) {
            lit = s_lit_at(text, tlen, pos, px.lit[i], px.len[i], px.caseless);
        }
        if (m == 1 && !lit) {
            __builtin_trap(); /* a match begins where none of the prefix literals does */
        }
    }
    if (any != whole) {
        __builtin_trap();
    }
}

/* The scan of this one regex and of a literal cut from the text, against the plain answers. */
static void s_check_scan(const eng_regex_t *re, const char *pat, size_t plen, int flags,
                         const char *text, size_t tlen, bool whole)
{
    eng_scan_t *s = eng_scan_new();
    if (s == NULL || eng_scan_add_regex(s, 0, re, pat, plen, flags) != 0) {
        eng_scan_destroy(&s);
        return;
    }
    char lit[4];
    size_t nlit = tlen < 4 ? tlen : 4;
    for (size_t i = 0; i < nlit; i++) {
        unsigned c = (unsigned char)text[tlen - nlit + i];
        lit[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (nlit > 0 && eng_scan_add_literal(s, 0, lit, nlit) != 0) {
        eng_scan_destroy(&s);
        return;
    }
    if (eng_scan_build(s, 1) == 0) {
        eng_scan_hits_t h;
        if (!eng_scan_run(s, text, tlen, &h)) {
            __builtin_trap();
        }
        if (eng_scan_covers_regex(s, 0) && (bool)(h.rx[0] & 1) != whole) {
            __builtin_trap();
        }
        if (nlit > 0 && !(h.lit[0] & 1)) {
            __builtin_trap(); /* the text ends with it */
        }
    }
    eng_scan_destroy(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int flags = data[0] & ENG_REGEX_ICASE;
    data++;
    size--;
    const uint8_t *sep = memchr(data, 0, size);
    size_t plen = sep != NULL ? (size_t)(sep - data) : size;
    size_t tlen = sep != NULL ? size - plen - 1 : 0;

    char *pat = malloc(plen ? plen : 1);
    char *text = malloc(tlen ? tlen : 1);
    if (pat == NULL || text == NULL) {
        free(pat);
        free(text);
        return 0;
    }
    memcpy(pat, data, plen);
    if (tlen) {
        memcpy(text, sep + 1, tlen);
    }

    char err[128];
    int off = -2;
    eng_regex_t *re = eng_regex_compile(pat, plen, flags, err, sizeof(err), &off);
    /* Checking without compiling finds the same error at the same place, or none. */
    char cerr[128];
    int coff = -2;
    int checked = eng_regex_check(pat, plen, flags, cerr, sizeof(cerr), &coff);
    if ((checked == 0) != (re != NULL) || coff != off || strcmp(cerr, err) != 0) {
        __builtin_trap();
    }
    if (re == NULL) {
        if (off < 0 || (size_t)off > plen || err[0] == '\0' ||
            memchr(err, 0, sizeof(err)) == NULL) {
            __builtin_trap();
        }
    } else {
        if (off != -1 || err[0] != '\0' || eng_regex_states(re) < 1 ||
            eng_regex_states(re) > ENG_REGEX_MAX_STATES) {
            __builtin_trap();
        }
        bool whole = eng_regex_match(re, text, tlen);
        /* Searching is deterministic and needs no state between calls. */
        if (eng_regex_match(re, text, tlen) != whole) {
            __builtin_trap();
        }
        (void)eng_regex_match(re, text, tlen / 2);
        /* The DFA (when one was built) and the NFA matchers give the same answers. */
        eng_regex_t *nfa = eng_regex_compile(pat, plen, flags | ENG_REGEX_NO_DFA, NULL, 0, NULL);
        if (nfa == NULL || eng_regex_match(nfa, text, tlen) != whole ||
            eng_regex_match(nfa, text, tlen / 2) != eng_regex_match(re, text, tlen / 2)) {
            __builtin_trap();
        }
        eng_regex_destroy(&nfa);
        s_check_anchored(re, pat, plen, flags, text, tlen, whole);
        s_check_scan(re, pat, plen, flags, text, tlen, whole);
        eng_regex_destroy(&re);
        if (re != NULL) {
            __builtin_trap();
        }
    }
    free(pat);
    free(text);
    return 0;
}
