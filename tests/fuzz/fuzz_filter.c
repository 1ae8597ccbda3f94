/*
 * fuzz_filter.c - libFuzzer target for the FILTER language (filter.c).
 * The input is split at its first newline: the bytes before it are an
 * expression, the bytes after it an attribute string (no newline: an
 * expression and no attributes), so one target drives both the compiler
 * and the matcher.
 *
 * Checks, beyond "no crash, no leak, no sanitizer report":
 *   - a failed compile leaves a NUL-terminated message and no filter; a
 *     compiled one gives the same answer twice (no hidden state);
 *   - the JSON scanner agrees with jansson: whatever jansson accepts as
 *     an object no deeper than AB_FILTER_MAX_JSON_DEPTH, the always-true
 *     filter "1" matches; whatever "1" matches, jansson accepts too,
 *     unless jansson objects to something we knowingly allow (invalid
 *     UTF-8, a lone surrogate escape, \u0000 in a key, a number out of
 *     double range); a text with a raw NUL byte never matches (jansson
 *     reads such a byte as the end of its input, so it is no judge there);
 *   - value extraction agrees with jansson: for the top-level keys that
 *     are valid selector names (when keys are unique), ".k == <value as
 *     a literal>" and ".k == .k" match for strings, numbers, booleans,
 *     null and flat arrays, and ".k" / "not .k" never match objects or
 *     nested arrays.
 */
#include "common.h"
#include "filter.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool match_expr(const char *expr, size_t elen, const char *json, size_t jlen)
{
	struct ab_filter *f = NULL;
	char err[128];
	if (ab_filter_compile(expr, elen, &f, err, sizeof(err)) != 0) {
		/* every expression we build here is valid */
		fprintf(stderr, "generated expression failed: %s: %.*s\n", err, (int)elen, expr);
		abort();
	}
	bool r = ab_filter_match(f, json, jlen);
	ab_filter_free(f);
	return r;
}

static int depth_of(const json_t *v)
{
	int d = 0;
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x) {
			int c = depth_of(x);
			if (c > d)
				d = c;
		}
		return d + 1;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			int c = depth_of(x);
			if (c > d)
				d = c;
		}
		return d + 1;
	}
	return 0;
}

static bool is_selector_name(const char *k, size_t n)
{
	if (n == 0 || n > AB_FILTER_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Appends v as an expression literal; false for values that have none. */
static bool put_literal(struct ab_buf *b, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		ab_buf_putc(b, '"');
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '"' || c == '\\')
				ab_buf_printf(b, "\\%c", c);
			else if (c < 0x20)
				ab_buf_printf(b, "\\u%04x", c);
			else
				ab_buf_putc(b, (char)c);
		}
		ab_buf_putc(b, '"');
		return true;
	}
	case JSON_REAL:
	case JSON_INTEGER:
		ab_buf_printf(b, "%.17g", json_number_value(v));
		return true;
	case JSON_TRUE:
		ab_buf_puts(b, "true");
		return true;
	case JSON_FALSE:
		ab_buf_puts(b, "false");
		return true;
	case JSON_NULL:
		ab_buf_puts(b, "null");
		return true;
	default:
		return false;
	}
}

static void check_values(const json_t *root, const char *json, size_t jlen)
{
	const char *k;
	json_t *v;
	int checked = 0;
	json_object_foreach((json_t *)root, k, v) {
		size_t kn = strlen(k);
		if (!is_selector_name(k, kn) || checked++ == 16)
			continue;
		struct ab_buf e = {0};
		bool usable = true, literal = true;
		if (json_is_object(v)) {
			usable = false;
		} else if (json_is_array(v)) {
			size_t i;
			json_t *x;
			json_array_foreach(v, i, x)
				if (json_is_object(x) || json_is_array(x))
					usable = false;
			if (json_array_size(v) > AB_FILTER_MAX_ARRAY)
				usable = false;
		}
		if (!usable) {
			ab_buf_printf(&e, ".%s", k);
			if (match_expr(e.data, e.len, json, jlen))
				abort();
			ab_buf_reset(&e);
			ab_buf_printf(&e, "not .%s", k);
			if (match_expr(e.data, e.len, json, jlen))
				abort();
			ab_buf_free(&e);
			continue;
		}
		ab_buf_printf(&e, ".%s == .%s", k, k);
		if (!match_expr(e.data, e.len, json, jlen)) {
			fprintf(stderr, "'.%s == .%s' did not match\n", k, k);
			abort();
		}
		ab_buf_reset(&e);
		ab_buf_printf(&e, ".%s == ", k);
		if (json_is_array(v)) {
			size_t i;
			json_t *x;
			ab_buf_putc(&e, '[');
			json_array_foreach(v, i, x) {
				if (i)
					ab_buf_puts(&e, ", ");
				literal = literal && put_literal(&e, x);
			}
			ab_buf_putc(&e, ']');
		} else {
			literal = put_literal(&e, v);
		}
		if (literal && e.len <= AB_FILTER_MAX_EXPR &&
		    !match_expr(e.data, e.len, json, jlen)) {
			fprintf(stderr, "'%s' did not match\n", e.data);
			abort();
		}
		ab_buf_free(&e);
	}
}

static void check_json(const char *json, size_t jlen)
{
	json_error_t je;
	json_t *root = json_loadb(json, jlen, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
	bool ours = match_expr("1", 1, json, jlen);
	if (root) {
		bool fits = json_is_object(root) && depth_of(root) <= AB_FILTER_MAX_JSON_DEPTH &&
			    jlen <= AB_FILTER_MAX_JSON;
		if (fits && !ours) {
			fprintf(stderr, "jansson accepts, we reject\n");
			abort();
		}
		if (!json_is_object(root) && ours)
			abort();
		json_t *uniq = json_loadb(json, jlen,
					  JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL |
						  JSON_REJECT_DUPLICATES,
					  &je);
		if (fits && uniq)
			check_values(uniq, json, jlen);
		json_decref(uniq);
		json_decref(root);
		return;
	}
	if (!ours)
		return;
	enum json_error_code c = json_error_code(&je);
	if (c == json_error_invalid_utf8 || c == json_error_numeric_overflow ||
	    c == json_error_null_byte_in_key || strstr(je.text, "Unicode"))
		return;
	fprintf(stderr, "we accept, jansson rejects: %s (code %d)\n", je.text, (int)c);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	size_t elen = nl ? (size_t)(nl - in) : size;
	const char *json = nl ? nl + 1 : NULL;
	size_t jlen = nl ? size - elen - 1 : 0;

	struct ab_filter *f = (struct ab_filter *)1;
	char err[96];
	memset(err, 0x55, sizeof(err));
	if (ab_filter_compile(in, elen, &f, err, sizeof(err)) != 0) {
		if (f != NULL || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
	} else {
		bool a = ab_filter_match(f, json, jlen);
		bool b = ab_filter_match(f, json, jlen);
		if (a != b)
			abort();
		if (jlen)
			(void)ab_filter_match(f, json, jlen - 1);
		ab_filter_free(f);
	}
	/* jansson's buffered reader takes a raw NUL byte for the end of the
	 * input, so it is no oracle for texts holding one (we reject them) */
	if (json && jlen && !memchr(json, '\0', jlen))
		check_json(json, jlen);
	else if (json && jlen && match_expr("1", 1, json, jlen))
		abort();
	return 0;
}
