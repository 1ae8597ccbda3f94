/*
 * filter.h - the FILTER expression language of Redis 8 vector sets
 * (VSIM ... FILTER '.year >= 1980 and .genre in ["a", "b"]'), compiled
 * once per query and matched against the JSON attribute string of each
 * candidate element.
 *
 * Language summary (filter.c has the full account, with the places where
 * we knowingly differ from Redis):
 *
 *   selectors    .field        a top-level key of the element's JSON object
 *   literals     12  1.5e3  "str"  'str'  null  true  false  [1, "a", null]
 *   unary        !  not  -  +                              (binds tightest)
 *   power        **                                      (right-associative)
 *   product      *  /  %
 *   sum          +  -
 *   compare      ==  !=  <  <=  >  >=  in
 *   logical      and &&, then or ||                         (loosest)
 *
 * An element whose attributes are absent, not a valid JSON object, or
 * lack (or hold an unusable value for) any field the expression names
 * never matches; that is not an error.
 *
 * Thread safety: a compiled filter is immutable. Any number of threads
 * may call ab_filter_match() on the same filter at once.
 */
#ifndef AB_FILTER_H
#define AB_FILTER_H

#include <stdbool.h>
#include <stddef.h>

/* Limits. Inputs beyond them are compile errors (expressions) or
 * non-matches (JSON), never crashes. */
#define AB_FILTER_MAX_EXPR 4096       /* bytes of expression text */
#define AB_FILTER_MAX_NEST 64         /* parentheses and unary operators */
#define AB_FILTER_MAX_STACK 128       /* evaluation stack slots */
#define AB_FILTER_MAX_FIELDS 64       /* distinct selectors */
#define AB_FILTER_MAX_NAME 255        /* bytes of a selector name */
#define AB_FILTER_MAX_JSON (1u << 20) /* bytes of an attribute string */
#define AB_FILTER_MAX_JSON_DEPTH 64   /* nesting of JSON containers */
#define AB_FILTER_MAX_ARRAY 65536     /* elements of an array used by a selector */

/* A compiled expression. Opaque; immutable after compile. */
struct ab_filter;

/* Compiles expr (len bytes, need not be NUL-terminated; NUL bytes are a
 * syntax error). On success returns 0 and stores a new filter in *out,
 * which the caller releases with ab_filter_free(). On failure returns
 * AB_EINVAL, sets *out to NULL and writes a short NUL-terminated message
 * such as "syntax error near 'foo' at offset 7" into err (when err is not
 * NULL and errlen > 0; truncated to fit). */
int ab_filter_compile(const char *expr, size_t len, struct ab_filter **out, char *err,
		      size_t errlen);

/* Releases a filter from ab_filter_compile(); NULL is ignored. */
void ab_filter_free(struct ab_filter *f);

/* True when the attributes json (json_len bytes, need not be
 * NUL-terminated; the caller keeps ownership) satisfy the filter. False
 * for a NULL filter, NULL or empty json, invalid JSON, JSON that is not
 * an object, and objects missing a field the expression uses. Allocates
 * nothing for small attributes; safe to call concurrently. */
bool ab_filter_match(const struct ab_filter *f, const char *json, size_t json_len);

#endif
