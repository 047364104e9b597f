/* eng_fmt.h - canonical formatting of policy text (`hpp-policy fmt`).
 *
 * The formatter rewrites only the blanks between tokens: every token is
 * copied byte for byte and in order, so the formatted text parses to the same
 * syntax tree (and compiles to the same policy) as the original. Comments are
 * kept, each on the line it was on; the author's line breaks are kept too,
 * with at most one blank line in a row. What it decides (policies/README.md,
 * "Formatting"):
 *
 *   - indentation: 4 spaces per open brace; a line that continues a
 *     statement or a property (a condition over several lines, a value list
 *     after a trailing comma) 4 more; a comment line as the code after it,
 *     never left of its block;
 *   - spacing: one space between tokens, none inside ( ) [ ], none before
 *     , ; ) ] and around the '.' of meta.KEY;
 *   - alignment: in a run of consecutive one-kind statements (tier, group,
 *     hint) whose names are followed by more on the line, what follows the
 *     names starts at one column; in a run of consecutive lines with a
 *     trailing comment, the comments start at one column;
 *   - the file ends with exactly one newline, lines with none of their
 *     trailing blanks, LF line ends, no byte order mark.
 *
 * Formatting is idempotent: fmt(fmt(x)) == fmt(x).
 */
#ifndef ENG_FMT_H
#define ENG_FMT_H

#include <stddef.h>

#include "eng_policy.h"

/* Formats src[0..len) named `name`. Text with a syntax error is not
 * formatted: the errors go to `diags` (may be NULL) and the call returns -1.
 * On success returns 0 with *out a malloc'd NUL-terminated text (the caller
 * frees it) of *out_len bytes. Returns -1 with nothing in diags when out of
 * memory. Includes are not followed: each file is formatted on its own. */
int eng_fmt(const char *name, const char *src, size_t len, char **out, size_t *out_len,
            eng_diags_t *diags);

#endif
