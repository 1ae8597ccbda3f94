/*
 * test_llm_jsonfmt.c - the JSON validator of jsonfmt.h (format json):
 * valid documents accepted byte by byte, invalid ones refused at the
 * first byte that cannot be part of any document, the same answers
 * whatever the split of the input, the white-space, number and depth
 * caps, random walks that only ever take accepted bytes (they must never
 * get stuck, and what they finish must parse with jansson), and the
 * token mask over llama2.c's 512-token vocabulary from ../shared
 * (AB_SOURCE_ROOT "/../shared" or AB_SHARED_DIR; skipped when missing).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ab_build.h"
#include "common.h"
#include "jsonfmt.h"
#include "tokenizer.h"

/* Feeds s (n bytes) one byte at a time; returns the offset of the first
 * refused byte, or -1 when all were accepted. */
static long first_bad(const char *s, size_t n, unsigned flags, bool *complete)
{
	struct ab_jsonfmt j;
	ab_jsonfmt_init(&j, flags);
	for (size_t i = 0; i < n; i++) {
		if (ab_jsonfmt_feed(&j, s + i, 1) < 0) {
			cr_assert_eq(ab_jsonfmt_offset(&j), i);
			return (long)i;
		}
	}
	if (complete)
		*complete = ab_jsonfmt_complete(&j);
	return -1;
}

static const char *const good_objects[] = {
	"{}",
	" {\"a\":1}",
	"{\"a\": [1, -2, 3.5, -0.25e+10, 0, 0E-0, 1e9], \"b\": {\"c\": null}}",
	"{\"t\":true,\"f\":false,\"n\":null,\"s\":\"\"}",
	"{\"esc\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00 \\u0000\"}",
	"{\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xf4\x8f\xbf\xbf\"}",
	"{\n  \"a\": [\n   {}, []\n  ]\n}",
	"{\"\":{\"\":[[[[]]]]}}",
	"{\"del\":\"\x7f\"}",
	"{}    ",
};

Test(jsonfmt, valid_objects_byte_by_byte)
{
	for (size_t k = 0; k < AB_ARRAY_LEN(good_objects); k++) {
		const char *s = good_objects[k];
		size_t n = strlen(s);
		struct ab_jsonfmt j;
		ab_jsonfmt_init(&j, 0);
		/* "{}    " ends with white space: complete from its "}" on */
		size_t end = n;
		while (end > 0 && s[end - 1] == ' ')
			end--;
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(ab_jsonfmt_feed(&j, s + i, 1), 0, "doc %zu byte %zu: %s", k, i, s);
			cr_assert_eq(ab_jsonfmt_complete(&j), i + 1 >= end, "doc %zu byte %zu", k, i);
		}
		cr_assert_eq(ab_jsonfmt_offset(&j), n);
		/* and jansson agrees */
		json_error_t e;
		json_t *v = json_loadb(s, n, JSON_ALLOW_NUL, &e);
		cr_assert(v && json_is_object(v), "jansson: %s: %s", s, e.text);
		json_decref(v);
	}
}

Test(jsonfmt, any_value_at_the_top)
{
	const char *vals[] = {"1", "-0", "0.5", "-12.5e-3", "\"x\"", "true", "false", "null",
			      "[]", "[1,[2,{}]]", " 7 "};
	for (size_t k = 0; k < AB_ARRAY_LEN(vals); k++) {
		bool done = false;
		cr_assert_eq(first_bad(vals[k], strlen(vals[k]), AB_JSONFMT_ANY_VALUE, &done), -1,
			     "%s", vals[k]);
		cr_assert(done, "%s", vals[k]);
		/* without the flag only an object may start the document */
		long bad = first_bad(vals[k], strlen(vals[k]), 0, NULL);
		cr_assert_eq(bad, vals[k][0] == ' ' ? 1 : 0, "%s", vals[k]);
	}
	/* a top-level number is complete but may go on */
	struct ab_jsonfmt j;
	ab_jsonfmt_init(&j, AB_JSONFMT_ANY_VALUE);
	cr_assert_eq(ab_jsonfmt_feed(&j, "12", 2), 0);
	cr_assert(ab_jsonfmt_complete(&j));
	cr_assert_eq(ab_jsonfmt_feed(&j, "3.", 2), 0);
	cr_assert(!ab_jsonfmt_complete(&j));
	cr_assert_eq(ab_jsonfmt_feed(&j, "5 ", 2), 0);
	cr_assert(ab_jsonfmt_complete(&j));
	cr_assert_eq(ab_jsonfmt_feed(&j, "6", 1), AB_EJSON);
}

/* first_bad of a C string in object mode. */
static long bad0(const char *s, unsigned flags, bool *complete)
{
	return first_bad(s, strlen(s), flags, complete);
}

struct bad_case {
	const char *s;
	long at; /* offset of the refused byte; -1: accepted but incomplete */
};

static const struct bad_case bad_objects[] = {
	{"{\"a\":1,}", 7},                 /* trailing comma in an object */
	{"{\"a\":[1,]}", 8},               /* ... in an array */
	{"{,}", 1},
	{"{\"a\":\"\\x\"}", 7},            /* bad escape */
	{"{\"a\":\"\\U0041\"}", 7},
	{"{\"a\":01}", 6},                 /* leading zero */
	{"{\"a\":-01}", 7},
	{"{\"a\":00}", 6},
	{"{\"a\":.5}", 5},
	{"{\"a\":+1}", 5},
	{"{\"a\":1.}", 7},
	{"{\"a\":1e}", 7},
	{"{\"a\":1e+}", 8},
	{"{\"a\":1.5.2}", 8},
	{"{\"a\":-}", 6},
	{"{\"a\":1ee}", 7},
	{"{\"a\":1e999}", 9},              /* at most two exponent digits */
	{"{\"a\":1.5E-100}", 12},
	{"{\"a\":\"abc", -1},              /* unterminated string */
	{"{\"a\":[1,2", -1},
	{"{\"a\"", -1},
	{"{\"a\":\"x\ny\"}", 7},           /* control characters in strings */
	{"{\"a\":\"x\ty\"}", 7},
	{"{\"a\":\"\x01\"}", 6},
	{"{\"a\":tru}", 8},                /* bad literals */
	{"{\"a\":True}", 5},
	{"{\"a\":nul1}", 8},
	{"{\"a\":falsey}", 10},
	{"{\"a\":nan}", 6},
	{"[1]", 0},                        /* not an object at the top */
	{"\"x\"", 0},
	{"{\"a\" 1}", 5},                  /* missing colon */
	{"{\"a\":1}}", 7},                 /* after the end */
	{"{\"a\":1} x", 8},
	{"{\"a\":1}{}", 7},
	{"{\"a\":[1}", 7},                 /* mismatched brackets */
	{"{\"a\":{]", 6},
	{"{a:1}", 1},                      /* unquoted key */
	{"{\"a\":'x'}", 5},
	{"{\"a\":\"\\uD800x\"}", 12},      /* high surrogate alone */
	{"{\"a\":\"\\uD800\\n\"}", 13},
	{"{\"a\":\"\\uD800\\u0041\"}", 14},
	{"{\"a\":\"\\uD800\\uDB00\"}", 15},
	{"{\"a\":\"\\uDC00\"}", 9},        /* low surrogate alone */
	{"{\"a\":\"\\u12G4\"}", 10},
	{"{\"a\":\"\xc0\x80\"}", 6},       /* overlong */
	{"{\"a\":\"\xe0\x80\x80\"}", 7},
	{"{\"a\":\"\xed\xa0\x80\"}", 7},   /* an encoded surrogate */
	{"{\"a\":\"\xf4\x90\x80\x80\"}", 7}, /* past U+10FFFF */
	{"{\"a\":\"\xf5\"}", 6},
	{"{\"a\":\"\x80\"}", 6},           /* a stray continuation byte */
	{"{\"a\":\"\xc3\"}", 7},           /* a character cut short */
	{"{\"a\":\"\xe2\x82\"}", 8},
};

Test(jsonfmt, invalid_prefixes_refused_at_the_right_byte)
{
	for (size_t k = 0; k < AB_ARRAY_LEN(bad_objects); k++) {
		const struct bad_case *c = &bad_objects[k];
		bool done = true;
		long at = first_bad(c->s, strlen(c->s), 0, &done);
		cr_assert_eq(at, c->at, "case %zu (%s): refused at %ld, want %ld", k, c->s, at, c->at);
		if (at < 0)
			cr_assert(!done, "case %zu: complete", k);
		/* whole at once: the same offset, and the state stays dead */
		struct ab_jsonfmt j;
		ab_jsonfmt_init(&j, 0);
		int rc = ab_jsonfmt_feed(&j, c->s, strlen(c->s));
		if (c->at >= 0) {
			cr_assert_eq(rc, AB_EJSON);
			cr_assert_eq(ab_jsonfmt_offset(&j), (uint64_t)c->at, "case %zu", k);
			cr_assert_eq(ab_jsonfmt_feed(&j, " ", 1), AB_EJSON);
			cr_assert(!ab_jsonfmt_complete(&j));
			cr_assert(!ab_jsonfmt_accepts(&j, "}", 1));
		} else {
			cr_assert_eq(rc, 0);
		}
	}
}

/* Feeding in two parts, split at every byte, says what one feed says. */
Test(jsonfmt, split_at_every_byte)
{
	const char *docs[AB_ARRAY_LEN(good_objects) + AB_ARRAY_LEN(bad_objects)];
	size_t nd = 0;
	for (size_t k = 0; k < AB_ARRAY_LEN(good_objects); k++)
		docs[nd++] = good_objects[k];
	for (size_t k = 0; k < AB_ARRAY_LEN(bad_objects); k++)
		docs[nd++] = bad_objects[k].s;
	for (size_t k = 0; k < nd; k++) {
		const char *s = docs[k];
		size_t n = strlen(s);
		struct ab_jsonfmt whole;
		ab_jsonfmt_init(&whole, 0);
		int rw = ab_jsonfmt_feed(&whole, s, n);
		for (size_t cut = 0; cut <= n; cut++) {
			struct ab_jsonfmt j;
			ab_jsonfmt_init(&j, 0);
			int r1 = ab_jsonfmt_feed(&j, s, cut);
			int r2 = ab_jsonfmt_feed(&j, s + cut, n - cut);
			int r = r1 < 0 ? r1 : r2;
			cr_assert_eq(r, rw, "doc %zu cut %zu", k, cut);
			cr_assert_eq(ab_jsonfmt_offset(&j), ab_jsonfmt_offset(&whole), "doc %zu cut %zu",
				     k, cut);
			cr_assert_eq(ab_jsonfmt_complete(&j), ab_jsonfmt_complete(&whole));
		}
	}
}

Test(jsonfmt, white_space_is_capped_outside_strings)
{
	char buf[256];
	cr_assert_eq(AB_JSONFMT_MAX_WS, 4);
	/* four in a row anywhere between tokens, not five */
	cr_assert_eq(bad0("    {    \"a\"    :    1    }    ", 0, NULL), -1);
	cr_assert_eq(bad0("{     }", 0, NULL), 5);
	cr_assert_eq(bad0("{\"a\":\n \t\r 1}", 0, NULL), 9);
	cr_assert_eq(bad0("     {}", 0, NULL), 4);
	cr_assert_eq(bad0("{}     ", 0, NULL), 6);
	cr_assert_eq(bad0("{\"a\":[1,     2]}", 0, NULL), 12);
	cr_assert_eq(bad0("{\"a\":1     }", 0, NULL), 10); /* after a number */
	/* runs are counted afresh after every token */
	cr_assert_eq(bad0("{\n  \"a\": [\n   1,\n   2\n  ]\n}", 0, NULL), -1);
	/* inside strings spaces are text: no cap */
	int n = snprintf(buf, sizeof(buf), "{\"a\":\"%100s\"}", "");
	bool done = false;
	cr_assert_eq(first_bad(buf, (size_t)n, 0, &done), -1);
	cr_assert(done);
}

Test(jsonfmt, number_length_and_depth_caps)
{
	char buf[512];
	/* 32 bytes of number are fine, the 33rd is not */
	int n = snprintf(buf, sizeof(buf), "{\"a\":%s}", "12345678901234567890123456789012");
	cr_assert_eq(first_bad(buf, (size_t)n, 0, NULL), -1);
	n = snprintf(buf, sizeof(buf), "{\"a\":%s}", "123456789012345678901234567890123");
	cr_assert_eq(first_bad(buf, (size_t)n, 0, NULL), 5 + 32);
	/* a number that could not be finished within the cap is refused a
	 * byte early: "-" and 30 digits are 31 bytes; "." would need a 33rd */
	n = snprintf(buf, sizeof(buf), "{\"a\":-%s.5}", "123456789012345678901234567890");
	cr_assert_eq(first_bad(buf, (size_t)n, 0, NULL), 5 + 31);

	/* 64 open containers, not 65 */
	memset(buf, '[', 65);
	cr_assert_eq(first_bad(buf, 64, AB_JSONFMT_ANY_VALUE, NULL), -1);
	cr_assert_eq(first_bad(buf, 65, AB_JSONFMT_ANY_VALUE, NULL), 64);
	struct ab_buf b = {0};
	for (int i = 0; i < 64; i++)
		ab_buf_puts(&b, i == 0 ? "{\"k\":" : (i % 2 ? "[" : "{\"k\":"));
	ab_buf_puts(&b, "0");
	for (int i = 63; i >= 0; i--)
		ab_buf_puts(&b, i == 0 || i % 2 == 0 ? "}" : "]");
	bool done = false;
	cr_assert_eq(first_bad(b.data, b.len, 0, &done), -1);
	cr_assert(done);
	/* mixed nesting is tracked at every depth */
	b.data[b.len - 2] = b.data[b.len - 2] == '}' ? ']' : '}';
	cr_assert_eq(first_bad(b.data, b.len, 0, NULL), (long)b.len - 2);
	ab_buf_free(&b);
}

Test(jsonfmt, copies_are_independent)
{
	struct ab_jsonfmt a, b;
	ab_jsonfmt_init(&a, 0);
	cr_assert_eq(ab_jsonfmt_feed(&a, "{\"x\":[", 6), 0);
	b = a;
	cr_assert_eq(ab_jsonfmt_feed(&a, "1]}", 3), 0);
	cr_assert(ab_jsonfmt_complete(&a));
	cr_assert(!ab_jsonfmt_complete(&b));
	cr_assert(ab_jsonfmt_accepts(&b, "\"s\",{}]}", 8));
	cr_assert(!ab_jsonfmt_accepts(&b, "}", 1));
	cr_assert_eq(ab_jsonfmt_offset(&b), 6); /* accepts leaves it alone */
}

/* remaining of the state after s (object mode unless flags say). */
static int rem(const char *s, unsigned flags)
{
	struct ab_jsonfmt j;
	ab_jsonfmt_init(&j, flags);
	cr_assert_eq(ab_jsonfmt_feed(&j, s, strlen(s)), 0, "%s", s);
	return ab_jsonfmt_remaining(&j);
}

Test(jsonfmt, remaining_bytes_to_finish)
{
	cr_assert_eq(rem("", 0), 2);                          /* {} */
	cr_assert_eq(rem("", AB_JSONFMT_ANY_VALUE), 1);       /* 0 */
	cr_assert_eq(rem("{", 0), 1);
	cr_assert_eq(rem("{\"a", 0), 4);                      /* ":0} */
	cr_assert_eq(rem("{\"a\"", 0), 3);                    /* :0} */
	cr_assert_eq(rem("{\"a\":", 0), 2);
	cr_assert_eq(rem("{\"a\":\"x", 0), 2);
	cr_assert_eq(rem("{\"a\":[", 0), 2);
	cr_assert_eq(rem("{\"a\":[1,", 0), 3);
	cr_assert_eq(rem("{\"a\":1", 0), 1);
	cr_assert_eq(rem("{\"a\":1.", 0), 2);
	cr_assert_eq(rem("{\"a\":1e-", 0), 2);
	cr_assert_eq(rem("{\"a\":1,", 0), 5);                /* "":0} */
	cr_assert_eq(rem("{\"a\":tr", 0), 3);
	cr_assert_eq(rem("{\"a\":\"\\", 0), 3);
	cr_assert_eq(rem("{\"a\":\"\\u", 0), 6);
	cr_assert_eq(rem("{\"a\":\"\\uD", 0), 5);              /* D000 is no surrogate */
	cr_assert_eq(rem("{\"a\":\"\\uD8", 0), 10);            /* 00 \uDC00 "} */
	cr_assert_eq(rem("{\"a\":\"\\uD83", 0), 9);
	cr_assert_eq(rem("{\"a\":\"\\uD83D", 0), 8);
	cr_assert_eq(rem("{\"a\":\"\\uD83D\\", 0), 7);
	cr_assert_eq(rem("{\"a\":\"\\uD83D\\uD", 0), 5);
	cr_assert_eq(rem("{\"a\":\"\xe2", 0), 4);
	cr_assert_eq(rem("{\"a\":[[{\"b\":[", 0), 5);
	cr_assert_eq(rem("{}", 0), 0);
	cr_assert_eq(rem("12", AB_JSONFMT_ANY_VALUE), 0);
	struct ab_jsonfmt j;
	ab_jsonfmt_init(&j, 0);
	ab_jsonfmt_feed(&j, "]", 1);
	cr_assert_eq(ab_jsonfmt_remaining(&j), -1);
}

/* The bytes a walk prefers when it wants to finish: they close strings,
 * containers, literals, escapes, surrogate pairs, numbers and UTF-8. */
static const unsigned char closers[] = "\"}]0:\\uDCrulsae\x80\x90\xa0";
/* The bytes a walk mostly draws from while it wanders. */
static const char alphabet[] = "{}[]\",:0123456789.eE+-tfnrulsa \\ubD\n";

/*
 * Random walks over bytes that only ever take accepted ones: since the
 * validator refuses a byte as soon as no document could follow, a walk
 * can always go on until the document is complete, and what it finishes
 * is JSON that jansson reads.
 */
Test(jsonfmt, random_walks_never_get_stuck)
{
	srand(1234);
	int finished = 0;
	for (int walk = 0; walk < 400; walk++) {
		unsigned flags = walk % 4 == 0 ? AB_JSONFMT_ANY_VALUE : 0;
		struct ab_jsonfmt j;
		ab_jsonfmt_init(&j, flags);
		struct ab_buf out = {0};
		int wander = 20 + rand() % 200;
		for (int step = 0; step < 4000; step++) {
			if (ab_jsonfmt_complete(&j) && (step > wander || rand() % 8 == 0))
				break;
			unsigned char c = 0;
			bool found = false;
			if (step > wander) {
				for (size_t k = 0; k + 1 < sizeof(closers) && !found; k++)
					if (ab_jsonfmt_accepts(&j, &closers[k], 1)) {
						c = closers[k];
						found = true;
					}
			}
			/* random bytes, then all of them in order */
			for (int tries = 0; tries < 64 && !found; tries++) {
				c = (unsigned char)(rand() % 4
							    ? alphabet[(size_t)rand() % (sizeof(alphabet) - 1)]
							    : rand() % 256);
				found = ab_jsonfmt_accepts(&j, &c, 1);
			}
			for (int x = 0; x < 256 && !found; x++) {
				c = (unsigned char)x;
				found = ab_jsonfmt_accepts(&j, &c, 1);
			}
			if (!found) {
				cr_assert(ab_jsonfmt_complete(&j), "walk %d stuck after %zu bytes: %.*s",
					  walk, out.len, (int)out.len, out.data);
				break;
			}
			/* remaining is exact: no byte lowers it by more than one,
			 * and some byte lowers it by one */
			int r = ab_jsonfmt_remaining(&j), best = INT32_MAX;
			for (int x = 0; x < 256; x++) {
				struct ab_jsonfmt k = j;
				unsigned char b = (unsigned char)x;
				if (ab_jsonfmt_feed(&k, &b, 1) == 0) {
					int rk = ab_jsonfmt_remaining(&k);
					cr_assert_geq(rk, r - 1, "walk %d byte %02x: %d -> %d", walk, x, r,
						      rk);
					best = rk < best ? rk : best;
				}
			}
			cr_assert(r == 0 || best == r - 1, "walk %d: %d, at best %d: %.*s", walk, r,
				  best, (int)out.len, out.data);
			cr_assert_eq(ab_jsonfmt_feed(&j, &c, 1), 0);
			ab_buf_append(&out, (const char *)&c, 1);
		}
		cr_assert(ab_jsonfmt_complete(&j), "walk %d did not finish: %.*s", walk, (int)out.len,
			  out.data);
		/* jansson reads it (it refuses \u0000 in keys, JSON does not) */
		json_error_t e;
		json_t *v = json_loadb(out.data, out.len,
				       JSON_ALLOW_NUL | JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &e);
		bool nul = out.len && memmem(out.data, out.len, "u0000", 5);
		cr_assert(v || nul, "walk %d: jansson refuses %.*s: %s", walk, (int)out.len, out.data,
			  e.text);
		if (v && !flags)
			cr_assert(json_is_object(v));
		json_decref(v);
		ab_buf_free(&out);
		finished++;
	}
	cr_assert_eq(finished, 400);
}

/* ---- the token mask over a real vocabulary ---- */

static struct ab_tok *load_tok512(void)
{
	const char *e = getenv("AB_SHARED_DIR");
	char *path = ab_xasprintf("%s/models/tok512.bin", e && *e ? e : AB_SOURCE_ROOT "/../shared");
	struct stat st;
	if (stat(path, &st) != 0)
		cr_skip_test("%s is missing (set AB_SHARED_DIR to the shared folder)", path);
	struct ab_tok *t = NULL;
	char err[256] = "";
	cr_assert_eq(ab_tok_from_llama2c(path, 512, &t, err, sizeof(err)), 0, "%s", err);
	free(path);
	return t;
}

Test(jsonfmt, mask_keeps_only_valid_tokens)
{
	struct ab_tok *t = load_tok512();
	struct ab_jsonfmt_vocab *v = ab_jsonfmt_vocab_new(t);
	cr_assert_not_null(v);
	int n = ab_jsonfmt_vocab_size(v);
	cr_assert_eq(n, 512);
	float *logits = ab_xcalloc((size_t)n, sizeof(float));
	struct ab_jsonfmt j;
	ab_jsonfmt_init(&j, 0);
	int32_t brace = -1, eos = ab_tok_eos(t), bos = ab_tok_bos(t);
	for (int id = 0; id < n; id++) {
		char p[64];
		int pl = ab_tok_piece(t, id, false, p, sizeof(p));
		if (pl == 1 && p[0] == '{')
			brace = id;
	}
	cr_assert(brace >= 0, "no '{' token in tok512");
	/* control tokens and EOS are never offered before the end */
	cr_assert(!ab_jsonfmt_token_ok(v, &j, bos));
	cr_assert(!ab_jsonfmt_token_ok(v, &j, eos));
	cr_assert(!ab_jsonfmt_token_ok(v, &j, 0)); /* <unk> */
	cr_assert(ab_jsonfmt_token_ok(v, &j, brace));
	cr_assert(!ab_jsonfmt_token_ok(v, &j, -1) && !ab_jsonfmt_token_ok(v, &j, n));

	for (int window = 1; window <= 1024; window *= 4) {
		for (int i = 0; i < n; i++)
			logits[i] = (float)((i * 7919) % 1000) / 100.0f; /* words on top */
		logits[bos] = logits[eos] = 50; /* never */
		int kept = ab_jsonfmt_mask(v, &j, logits, window, 0);
		cr_assert_gt(kept, 0);
		int finite = 0;
		for (int i = 0; i < n; i++) {
			if (isfinite(logits[i])) {
				finite++;
				cr_assert(ab_jsonfmt_token_ok(v, &j, i), "token %d kept", i);
			}
		}
		cr_assert_eq(finite, kept);
		cr_assert(isfinite(logits[brace]) || window < n, "window %d", window);
	}
	/* a full scan keeps every valid token, with its logit */
	for (int i = 0; i < n; i++)
		logits[i] = (float)i;
	int want = 0;
	for (int i = 0; i < n; i++)
		want += ab_jsonfmt_token_ok(v, &j, i);
	cr_assert_eq(ab_jsonfmt_mask(v, &j, logits, n, 0), want);
	cr_assert_eq(logits[brace], (float)brace);

	/* complete: EOS becomes the way out, and nothing but white space and it */
	cr_assert_eq(ab_jsonfmt_feed(&j, "{}", 2), 0);
	cr_assert(ab_jsonfmt_token_ok(v, &j, eos));
	cr_assert(!ab_jsonfmt_token_ok(v, &j, brace));

	/* a dead state: nothing is valid, the logits stay as they were */
	struct ab_jsonfmt dead;
	ab_jsonfmt_init(&dead, 0);
	cr_assert_eq(ab_jsonfmt_feed(&dead, "x", 1), AB_EJSON);
	for (int i = 0; i < n; i++)
		logits[i] = 1.0f;
	cr_assert_eq(ab_jsonfmt_mask(v, &dead, logits, 8, 0), 0);
	for (int i = 0; i < n; i++)
		cr_assert_eq(logits[i], 1.0f);

	/* greedy decoding through the mask from random logits always ends in
	 * a document (the validator never strands the vocabulary) */
	srand(7);
	for (int run = 0; run < 50; run++) {
		ab_jsonfmt_init(&j, 0);
		struct ab_buf out = {0};
		int steps = 0;
		while (!ab_jsonfmt_complete(&j) && steps < 4000) {
			for (int i = 0; i < n; i++)
				logits[i] = (float)(rand() % 1000) / 100.0f;
			/* after a while, favour tokens that close things */
			if (steps > 60)
				for (int i = 0; i < n; i++) {
					char p[64];
					int pl = ab_tok_piece(t, i, false, p, sizeof(p));
					if (pl == 1 && strchr("\"}]0:", p[0]))
						logits[i] += 20;
				}
			cr_assert_gt(ab_jsonfmt_mask(v, &j, logits, 16, 0), 0, "run %d step %d", run, steps);
			int best = -1;
			for (int i = 0; i < n; i++)
				if (isfinite(logits[i]) && (best < 0 || logits[i] > logits[best]))
					best = i;
			cr_assert(best != eos);
			char p[64];
			int pl = ab_tok_piece(t, best, false, p, sizeof(p));
			cr_assert_eq(ab_jsonfmt_feed(&j, p, (size_t)pl), 0);
			ab_buf_append(&out, p, (size_t)pl);
			steps++;
		}
		cr_assert(ab_jsonfmt_complete(&j), "run %d: %.*s", run, (int)out.len, out.data);
		json_error_t e;
		json_t *doc =
			json_loadb(out.data, out.len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &e);
		cr_assert(doc && json_is_object(doc), "run %d: %.*s: %s", run, (int)out.len, out.data,
			  e.text);
		json_decref(doc);
		ab_buf_free(&out);
	}
	/* a budget of tokens: the document is closed by the last one, however
	 * little room it leaves (two tokens: "{" and "}") */
	for (int budget = 2; budget <= 64; budget++) {
		ab_jsonfmt_init(&j, 0);
		struct ab_buf out = {0};
		int used = 0;
		while (!ab_jsonfmt_complete(&j)) {
			cr_assert_lt(used, budget, "budget %d: %.*s", budget, (int)out.len, out.data);
			for (int i = 0; i < n; i++)
				logits[i] = (float)(rand() % 1000) / 100.0f;
			cr_assert_gt(ab_jsonfmt_mask(v, &j, logits, 40, budget - used), 0);
			int best = -1;
			for (int i = 0; i < n; i++)
				if (isfinite(logits[i]) && (best < 0 || logits[i] > logits[best]))
					best = i;
			char p[64];
			int pl = ab_tok_piece(t, best, false, p, sizeof(p));
			cr_assert_eq(ab_jsonfmt_feed(&j, p, (size_t)pl), 0);
			ab_buf_append(&out, p, (size_t)pl);
			used++;
		}
		json_error_t e;
		json_t *doc =
			json_loadb(out.data, out.len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &e);
		cr_assert(doc && json_is_object(doc), "budget %d: %.*s: %s", budget, (int)out.len,
			  out.data, e.text);
		json_decref(doc);
		ab_buf_free(&out);
	}
	free(logits);
	ab_jsonfmt_vocab_free(v);
	ab_jsonfmt_vocab_free(NULL);
	ab_tok_free(t);
}
