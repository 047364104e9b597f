/* eng_scan.h - one pass over a request's text for every text pattern of a policy.
 *
 * A policy's `text ~ /re/` and `text contains "..."` tests each read the whole text sample when
 * asked one at a time, so a decision's cost grew with the prompt (about 3 ns per byte for the
 * default policy). This module answers all of them from one pass:
 *
 *  - a literal prefilter: every `contains` text, and for each regex the literals one of which
 *    begins every match (eng_regex_prefixes: "def" for /\bdef\s+\w+/), go into one literal
 *    database of the Vectorscan library (Debian's libvectorscan, the portable fork of Hyperscan),
 *    compiled when the policy loads; a request's text is scanned once with its SIMD literal
 *    matcher;
 *  - at each place a regex's literal occurs, the regex's own matcher checks anchored there
 *    (eng_regex_match_at), so the regex semantics stay the project's own, whatever the library's
 *    dialect; a text where none of a regex's literals occurs is answered "no" without a step.
 *
 * Linear time: the anchored checks of one regex step at most twice the text's length in all;
 * past that budget the regex is answered by its own unanchored matcher (one more linear pass).
 * A regex without usable literals (a leading class, an optional first atom) or too large for the
 * anchored matcher is not covered: eng_scan_covers_regex() says so, and the caller asks its own
 * matcher.
 *
 * Per request: no allocation, no lock. The library's scratch space is allocated up front, one per
 * slot of a small pool sized for the machine's threads; a request takes a free slot with one atomic
 * exchange and gives it back after the scan. When every slot is taken (more threads than slots),
 * eng_scan_run() answers false at once and the caller uses its own matchers: never a wait.
 *
 * Compiling the database is most of a policy's load time (the library builds its matcher in C++),
 * so scans built from the same literals, in the same order, with the same pool size share one
 * database and one pool: the module keeps the last four built, and a reload that leaves the text
 * patterns alone reuses its predecessor's instead of compiling again.
 *
 * Owns: a reference to the database and pool (freed with the last scan that uses them and the
 * module's own reference), the literal tables. Borrows the compiled regexes (the policy owns them
 * and outlives its scan).
 */
#ifndef ENG_SCAN_H
#define ENG_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_regex.h"

/* Regexes and literals one scan answers: ids at or above these stay on the caller's matchers. */
#define ENG_SCAN_MAX_REGEXES 256
#define ENG_SCAN_MAX_LITERALS 256
#define ENG_SCAN_WORDS 4 /* uint64 words of a 256-bit set */

/* One request's answers: bit i of rx is regex id i's, of lit literal id i's. */
typedef struct {
    uint64_t rx[ENG_SCAN_WORDS];
    uint64_t lit[ENG_SCAN_WORDS];
} eng_scan_hits_t;

typedef struct eng_scan eng_scan_t;

/* An empty scan; NULL when out of memory. */
eng_scan_t *eng_scan_new(void);

/* Queues regex `id`: `re` compiled from [pat, pat+len) with eng_regex flags `flags` (borrowed:
 * it must outlive the scan). Returns 0, or -1 out of memory. A regex without usable literal
 * prefixes, one eng_regex_match_at cannot answer, or an id out of range is not queued (not
 * covered). Not after eng_scan_build. */
int eng_scan_add_regex(eng_scan_t *s, uint32_t id, const eng_regex_t *re, const char *pat,
                       size_t len, int flags);

/* Queues literal `id`: found when the text holds [lower, lower+len) with ASCII letters in either
 * case (lower holds no upper-case ASCII letter). Returns 0, or -1 out of memory. */
int eng_scan_add_literal(eng_scan_t *s, uint32_t id, const char *lower, size_t len);

/* Compiles the database and allocates `slots` scratch spaces (0: twice the online CPUs, at least
 * 4, at most 64), or takes a kept one built from the same literals and slot count. Returns 0, or
 * -1 when there is nothing to scan or the library failed: the scan is then unusable and
 * eng_scan_run() answers false. Allocates; call it once, at policy load. */
int eng_scan_build(eng_scan_t *s, unsigned slots);

/* Do a and b use one database and pool (built from the same literals)? For tests. */
bool eng_scan_shares(const eng_scan_t *a, const eng_scan_t *b);

/* Is regex `id` answered by eng_scan_run()? */
bool eng_scan_covers_regex(const eng_scan_t *s, uint32_t id);

/* Is every literal queued answered by eng_scan_run()? */
bool eng_scan_covers_literals(const eng_scan_t *s);

/* Scans [text, text+len) once and fills *hits for every covered pattern (the bits of the others
 * are 0). Returns false, with *hits zeroed, when the scan is unusable or every scratch slot is in
 * use: the caller answers with its own matchers then. No allocation, no lock, thread-safe. */
bool eng_scan_run(const eng_scan_t *s, const char *text, size_t len, eng_scan_hits_t *hits);

/* Bytes of the database and of the scratch spaces (for diagnostics and the bench). */
size_t eng_scan_bytes(const eng_scan_t *s);

/* Frees the scan and sets *s_p to NULL. Idempotent; s_p and *s_p may be NULL. */
void eng_scan_destroy(eng_scan_t **s_p);

#endif
