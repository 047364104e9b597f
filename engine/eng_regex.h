/* eng_regex.h - small regular-expression search for policy hint rules.
 *
 * A hint rule such as `hint solidity when text ~ /pragma\s+solidity|\bcontract\s+\w+\s*\{/i`
 * searches the request's text sample on the per-request hot path. eng_regex_match() allocates
 * nothing, takes no lock, writes nothing but its own stack, and runs in O(len * states) time
 * whatever the pattern and the text: the pattern is a Thompson NFA simulated one byte at a time,
 * never backtracking, so hostile text cannot trigger catastrophic cases. Most hint patterns (at
 * most 63 byte-consuming states) get a bit-parallel NFA, and when its reachable thread sets stay
 * few (at most 1024) also a DFA built at compile time: then a search is one table lookup per byte,
 * skipping at memchr speed to the bytes a match can begin with. Matching is byte-wise: UTF-8 in
 * patterns and texts passes through as bytes.
 *
 * Supported syntax (a subset of Perl/ECMAScript syntax, with the same meanings):
 *   x              a literal byte: anything but the metacharacters . [ ( ) | * + ? { \ ^ $
 *                  (] and } alone are literal; escape the others with a backslash)
 *   .              any byte except newline (\n)
 *   [abc] [a-z]    a byte class; [^...] its complement. ']' right after '[' or '[^' is literal,
 *                  '-' first or last is literal. Inside a class: ranges, the escapes below (not
 *                  \b \B) and POSIX classes [:alpha:] [:digit:] [:alnum:] [:upper:] [:lower:]
 *                  [:space:] [:blank:] [:punct:] [:print:] [:graph:] [:cntrl:] [:xdigit:] [:word:]
 *   \d \w \s       digit [0-9]; word byte [A-Za-z0-9_]; space [ \t\n\v\f\r] (ASCII only)
 *   \D \W \S       their complements (so they match every byte >= 0x80)
 *   \t \n \r \f \v tab, newline, carriage return, form feed, vertical tab
 *   \xHH           the byte with hex code HH (exactly two hex digits)
 *   \. \\ \/ \{ .. a backslash before ASCII punctuation or a space makes it literal
 *   \b \B          word boundary / not a word boundary (word bytes as for \w)
 *   ^ $            start / end of the whole text (no multi-line mode: $ does not match before a
 *                  final newline, and neither matches around inner newlines)
 *   ( ) (?: )      grouping; both forms group without capturing (a search answers yes or no)
 *   a|b            alternation, lowest precedence; empty alternatives are allowed: (a|)
 *   * + ?          0 or more, 1 or more, 0 or 1 of the preceding atom
 *   {m} {m,} {m,n} bounded repetition, 0 <= m <= n <= ENG_REGEX_MAX_REPEAT (expanded at compile
 *                  time into copies of the atom)
 *   *? +? ?? {m,n}?  lazy forms are accepted; they give the same yes/no answer as the greedy ones
 * Flag ENG_REGEX_ICASE: ASCII letters match either case (literals, ranges, classes; [^a] then
 * excludes both 'a' and 'A').
 *
 * Rejected, each with a message and the byte offset of the problem:
 *   - the empty pattern: it would match every text (write the rule without a regex instead);
 *   - an unbalanced '(' (offset of the '(') or ')'; group kinds other than (?: ) such as (?= or
 *     (?<name>; groups nested deeper than ENG_REGEX_MAX_DEPTH;
 *   - an unterminated class, a reversed range [z-a], a range with a class end [\d-z], an unknown
 *     POSIX class, collating elements [.x.] [=x=];
 *   - a quantifier with nothing to repeat (*a, a|+b, a{2}{3}, a**), after an anchor or word
 *     boundary (^*, \b+), a '{' that is not a valid bound (a{x}, a{,2}, a{3,2}), counts above
 *     ENG_REGEX_MAX_REPEAT;
 *   - unknown escapes (\q, \é), backreferences (\1), a trailing backslash;
 *   - patterns longer than ENG_REGEX_MAX_LEN bytes, and patterns whose NFA would need more than
 *     ENG_REGEX_MAX_STATES states. Costs: a literal, class, anchor or \b is 1 state, ? and + add
 *     1, * adds 2, each | adds 2, x{m,n} costs m copies of x plus n-m copies of (x and 1), and
 *     x{m,} m copies plus 1, the final match state 1. So \w{1,300} (600 states) fits,
 *     [a-z]{2,600} (1199) and (\w+\s+){400} (2001) do not.
 */
#ifndef ENG_REGEX_H
#define ENG_REGEX_H

#include <stdbool.h>
#include <stddef.h>

/* Case-insensitive for ASCII letters. */
#define ENG_REGEX_ICASE 1
/* For tests: do not build the DFA (see eng_regex.c), so that the bit-parallel matcher answers.
 * Same results, slower on long texts. */
#define ENG_REGEX_NO_DFA 2

/* NFA states (instructions, the final "match" included) a compiled pattern may use. Bounds the
 * matcher's stack use: about 6 KB at 1024. */
#define ENG_REGEX_MAX_STATES 1024
/* Largest count in {m}, {m,}, {m,n}. */
#define ENG_REGEX_MAX_REPEAT 1000
/* Deepest nesting of groups. */
#define ENG_REGEX_MAX_DEPTH 64
/* Longest pattern, in bytes. */
#define ENG_REGEX_MAX_LEN 16384

typedef struct eng_regex eng_regex_t;

/* Compiles pattern [pat, pat+len) (not NUL-terminated; NUL bytes are literal) with `flags`
 * (0 or ENG_REGEX_ICASE). Returns the compiled regex, owned by the caller (eng_regex_destroy),
 * or NULL on error with a message in errbuf (NUL-terminated, truncated to errlen) and the byte
 * offset of the problem, 0 <= *erroff <= len, in *erroff (so the policy compiler can point a
 * caret at it). On success *erroff is -1 and errbuf is "". errbuf and erroff may be NULL.
 * Allocates; not for the hot path. */
eng_regex_t *eng_regex_compile(const char *pat, size_t len, int flags, char *errbuf, size_t errlen,
                               int *erroff);

/* Checks the pattern as eng_regex_compile would, with the same message and offset for every
 * error but running out of memory, and builds nothing to match with: 0 when it would compile,
 * -1 otherwise. For a policy that is already rejected, whose regexes are only checked. */
int eng_regex_check(const char *pat, size_t len, int flags, char *errbuf, size_t errlen,
                    int *erroff);

/* Unanchored search: true if the pattern matches anywhere in [s, s+len) (s may be NULL when len
 * is 0). No allocation, no lock, thread-safe (the compiled regex is read-only), O(len * states)
 * time, about 6 KB of stack. A NULL regex matches nothing. */
bool eng_regex_match(const eng_regex_t *re, const char *s, size_t len);

/* Writes into out (cap bytes, NUL-terminated) the pattern [pat, pat+len) under `flags` in PCRE
 * syntax, for multi-pattern scanners of the Hyperscan family, with exactly the same matches: every
 * byte class spelled out as \xHH ranges (case folding, \d \w \s, '.' and negation already
 * applied), groups non-capturing, counted repetition kept, $ written \z (the end of the text
 * only). Returns the length written, or -1 when the pattern does not compile or out is too
 * small. Allocates (the parse); not for the hot path. */
int eng_regex_to_pcre(const char *pat, size_t len, int flags, char *out, size_t cap);

/* Literal prefixes: a set of literals one of which begins every match of a pattern, so that a
 * multi-literal prefilter finds every place a match can start (eng_scan.h). */
#define ENG_REGEX_MAX_PREFIXES 32 /* literals in a set */
#define ENG_REGEX_PREFIX_LEN 16   /* longest literal kept (longer ones are cut: still prefixes) */
#define ENG_REGEX_PREFIX_MIN 2    /* shortest literal worth a prefilter */
typedef struct {
    int n;         /* literals */
    bool caseless; /* an ICASE pattern: ASCII letters (kept in lower case) match either case */
    unsigned char len[ENG_REGEX_MAX_PREFIXES];
    char lit[ENG_REGEX_MAX_PREFIXES][ENG_REGEX_PREFIX_LEN];
} eng_regex_prefixes_t;

/* Fills *out with literals (each ENG_REGEX_PREFIX_MIN to ENG_REGEX_PREFIX_LEN bytes) such that
 * every match of the pattern begins with one of them, the zero-width assertions before it
 * aside: /\bdef\s+\w+/ gives "def", /\b(prove|proof)\b/i gives "prove" and "proof" caseless.
 * Returns 1, 0 when the pattern has no such set within the bounds (a leading class, an optional
 * first atom, too many alternatives), -1 when it does not compile. Allocates; not for the hot
 * path. */
int eng_regex_prefixes(const char *pat, size_t len, int flags, eng_regex_prefixes_t *out);

/* Can eng_regex_match_at answer for this regex? True when it has the bit-parallel matcher (at
 * most 63 byte-consuming states: nearly every hint pattern). */
bool eng_regex_can_match_at(const eng_regex_t *re);

/* Anchored: does a match begin exactly at position pos of [s, s+len)? Assertions see the whole
 * text (^ only at 0, \b looks at s[pos-1], $ only at len). Steps at most *budget bytes,
 * subtracting those it steps. Returns 1 or 0, or -1 when the budget ran out or the regex cannot
 * answer (eng_regex_can_match_at): then ask eng_regex_match. No allocation, no lock. */
int eng_regex_match_at(const eng_regex_t *re, const char *s, size_t len, size_t pos,
                       size_t *budget);

/* Number of NFA states the pattern compiled to (for diagnostics and tests). */
int eng_regex_states(const eng_regex_t *re);

/* Frees the regex and sets *re_p to NULL. Idempotent; re_p and *re_p may be NULL. */
void eng_regex_destroy(eng_regex_t **re_p);

#endif
