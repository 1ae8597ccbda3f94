/*
 * test_filter.c - the vector-set FILTER language of filter.h: precedence
 * and associativity, every operator, type rules, `in`, missing fields,
 * invalid and deep JSON, escapes, compile errors with their messages,
 * limits, the heap fallback for large values, and many threads matching
 * with one compiled filter.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "filter.h"

static struct ab_filter *compile_ok(const char *expr)
{
	struct ab_filter *f = NULL;
	char err[160];
	int rc = ab_filter_compile(expr, strlen(expr), &f, err, sizeof(err));
	cr_assert_eq(rc, 0, "compile '%s' failed: %s", expr, err);
	cr_assert_not_null(f);
	return f;
}

/* Does expr match json? (json NULL: no attributes) */
static bool m(const char *expr, const char *json)
{
	struct ab_filter *f = compile_ok(expr);
	bool r = ab_filter_match(f, json, json ? strlen(json) : 0);
	ab_filter_free(f);
	return r;
}

/* Expressions without selectors, against an empty object. */
static bool t(const char *expr)
{
	return m(expr, "{}");
}

/* Compiling expr fails with a message containing want. */
static void bad(const char *expr, const char *want)
{
	struct ab_filter *f = (struct ab_filter *)1;
	char err[160];
	memset(err, 'x', sizeof(err));
	int rc = ab_filter_compile(expr, strlen(expr), &f, err, sizeof(err));
	cr_assert_eq(rc, AB_EINVAL, "'%s' compiled", expr);
	cr_assert_null(f);
	cr_assert(memchr(err, '\0', sizeof(err)) != NULL);
	cr_assert(strstr(err, want) != NULL, "'%s': got \"%s\", want \"%s\"", expr, err, want);
}

static const char *person =
	"{\"age\": 25, \"name\": \"Alice\", \"active\": true, \"off\": false,"
	" \"scores\": [85, 90, 95], \"city\": \"New York\", \"nothing\": null,"
	" \"tags\": [\"a\", \"b\", 3, true, null], \"num_str\": \"12\", \"empty\": \"\","
	" \"obj\": {\"x\": 1}, \"nested\": [[1]], \"none\": []}";

Test(filter, precedence)
{
	cr_assert(t("2 + 3 * 4 == 14"));
	cr_assert(t("(2 + 3) * 4 == 20"));
	cr_assert(t("2 * 3 ** 2 == 18"));
	cr_assert(t("2 * 3 % 4 == 2"));    /* (2*3)%4, not 2*(3%4)=6 */
	cr_assert(t("1 + 2 < 4"));         /* arithmetic before comparison */
	cr_assert(t("1 or 0 and 0"));      /* and binds tighter than or */
	cr_assert_not(t("(1 or 0) and 0"));
	cr_assert(t("1 == 1 and 2 == 2"));
	cr_assert(t("!0 == 1"));           /* (!0) == 1 */
	cr_assert_not(t("!1 == 0 == 0")); /* ((!1) == 0) == 0 -> 1 == 0 */
	cr_assert(t("-2 ** 2 == 4"));      /* unary binds tighter than ** */
	cr_assert(t("2 ** -1 == 0.5"));
	cr_assert(t("not 0 and 1"));
	cr_assert_not(t("not (0 or 1)"));
	cr_assert(t("1 < 2 == 1"));        /* comparisons chain left to right */
	cr_assert(t("3 > 2 > 1 == 0"));    /* (3>2)>1 is 1>1 */
	cr_assert(t("2 in [1, 2] == 1"));
}

Test(filter, associativity)
{
	cr_assert(t("10 - 4 - 3 == 3"));
	cr_assert(t("100 / 10 / 5 == 2"));
	cr_assert(t("2 ** 3 ** 2 == 512"));
	cr_assert(t("(2 ** 3) ** 2 == 64"));
	cr_assert(t("17 % 10 % 4 == 3"));
	cr_assert(t("1 - 2 + 3 == 2"));
}

Test(filter, arithmetic)
{
	cr_assert(m(".age + 10 == 35", person));
	cr_assert(m(".age - 30 == -5", person));
	cr_assert(m(".age * 2 == 50", person));
	cr_assert(m(".age / 5 == 5", person));
	cr_assert(m(".age % 7 == 4", person));
	cr_assert(m(".age ** 2 == 625", person));
	cr_assert(m("-.age == -25", person));
	cr_assert(m("+.num_str == 12", person));
	cr_assert(m(".num_str + 1 == 13", person)); /* numeric strings convert */
	cr_assert(t("-7 % 3 == -1"));                 /* fmod keeps the sign */
	cr_assert(t("5.5 % 2 == 1.5"));
	cr_assert(t("1 / 0 > 1e308"));
	cr_assert(t("-1 / 0 < -1e308"));
	cr_assert_not(t("0 / 0"));                    /* NaN is false */
	cr_assert(t("!(0 / 0)"));
	cr_assert(t("0.1 + 0.2 == 0.30000000000000004"));
	cr_assert(t("1.5e3 == 1500 and 15E-1 == 1.5 and 2e+2 == 200"));
	cr_assert(t("1. == 1"));
	cr_assert(t("- - 3 == 3"));
	cr_assert(t("'abc' + 1 != 'abc' + 1")); /* NaN never equals */
	cr_assert(t("12345678901234567890 == 1.2345678901234567e19"));
	cr_assert(t("0.000000000000000000000000001 == 1e-27"));
}

Test(filter, comparisons)
{
	cr_assert(m(".age == 25", person));
	cr_assert(m(".age != 26", person));
	cr_assert(m(".age > 24 and .age >= 25 and .age < 26 and .age <= 25", person));
	cr_assert_not(m(".age > 25", person));
	cr_assert_not(m(".age < 25", person));
	cr_assert(m(".name == \"Alice\"", person));
	cr_assert(m(".name == 'Alice'", person));
	cr_assert(m(".name != 'alice'", person));
	cr_assert(m(".city == 'New York'", person));
}

Test(filter, logic)
{
	cr_assert(t("1 and 1"));
	cr_assert_not(t("1 and 0"));
	cr_assert(t("1 && 2"));
	cr_assert(t("0 or 1"));
	cr_assert_not(t("0 || 0"));
	cr_assert(t("not 0"));
	cr_assert(t("NOT 0 AND 1 OR 0")); /* keywords are case-insensitive */
	cr_assert(t("!!1"));
	cr_assert_not(t("!!!1"));
	cr_assert(t("(1 and 5) == 1")); /* and/or yield 1 or 0 */
	cr_assert(t("(0 or 5) == 1"));
	cr_assert(t("(0 and 5) == 0"));
	cr_assert(m("!!.active", person));
	cr_assert(m("not not .active", person));
	cr_assert_not(m("!!!.active", person));
	cr_assert(m(".age > 1 and not not .active", person));
	cr_assert(m("!.off or !!.off", person));
	cr_assert(m("(.age > 20 and .age < 40) and (.city == 'Boston' or .city == 'New York')",
		    person));
}

Test(filter, truthiness)
{
	cr_assert(m(".active", person));
	cr_assert_not(m(".off", person));
	cr_assert(m(".scores", person)); /* arrays are true */
	cr_assert(m(".none", person));   /* even empty ones */
	cr_assert_not(m(".nothing", person));
	cr_assert_not(m(".empty", person));
	cr_assert(m(".name", person));
	cr_assert(t("'0'"));             /* a non-empty string */
	cr_assert_not(t("''"));
	cr_assert_not(t("0"));
	cr_assert(t("-0.5"));
	cr_assert_not(t("null"));
	cr_assert(t("true"));
	cr_assert_not(t("false"));
	cr_assert(t("[]"));
}

Test(filter, types)
{
	cr_assert(t("'25' == 25"));      /* mixed: compared as numbers */
	cr_assert(t("25 == ' 25 '"));
	cr_assert(t("'' == 0"));
	cr_assert_not(t("'abc' == 0"));  /* non-numeric strings are NaN */
	cr_assert_not(t("'abc' > -1"));
	cr_assert_not(t("'abc' < 1"));
	cr_assert(t("'b' > 'a'"));       /* two strings: bytewise */
	cr_assert(t("'apple' < 'banana'"));
	cr_assert(t("'ab' < 'abc'"));
	cr_assert(t("'abc' <= 'abc' and 'abc' >= 'abc'"));
	cr_assert(t("'10' > '9'"));      /* unless both are numbers */
	cr_assert(t("'1e3' == 1000"));
	cr_assert_not(t("'10' == '10.0'")); /* == on two strings is bytewise */
	cr_assert(t("null == null"));
	cr_assert_not(t("null == 0"));
	cr_assert(t("null != 0"));
	cr_assert(t("null + 1 == 1"));
	cr_assert(t("true == 1 and false == 0"));
	cr_assert(t("[1, 'a'] == [1, 'a']"));
	cr_assert_not(t("[1, 'a'] == [1, 'b']"));
	cr_assert_not(t("[1] == [1, 2]"));
	cr_assert_not(t("[] == 0"));
	cr_assert(m(".active == true and .active == 1 and .off == false", person));
	cr_assert(m(".nothing == null", person));
	cr_assert_not(m(".age == null", person));
	cr_assert(m(".scores == [85, 90, 95]", person));
	cr_assert(m(".num_str > 9", person));
	cr_assert(m(".num_str == 12", person));
	cr_assert_not(m(".scores > 1", person)); /* arrays are NaN as numbers */
}

Test(filter, in_operator)
{
	cr_assert(m(".age in [25, 35]", person));
	cr_assert_not(m(".age in [26, 35]", person));
	cr_assert(m(".name in ['Alice', 'David']", person));
	cr_assert(m("85 in .scores", person));
	cr_assert_not(m("86 in .scores", person));
	cr_assert(m("'a' in .tags and 3 in .tags and null in .tags", person));
	cr_assert(m("1 in .tags", person)); /* true was stored as 1 */
	cr_assert(m("'3' in .tags", person));
	cr_assert_not(m("'c' in .tags", person));
	cr_assert_not(m("1 in .none", person));
	cr_assert(m("'lic' in .name", person));
	cr_assert(m("'Ali' in .name and 'ice' in .name and 'Alice' in .name", person));
	cr_assert_not(m("'xyz' in .name", person));
	cr_assert_not(m("'Alicee' in .name", person));
	cr_assert(m("'' in .name", person));
	cr_assert_not(m(".name in ''", person));
	cr_assert(t("'' in ''"));
	cr_assert(t("'ork' in 'New York'"));
	cr_assert_not(t("5 in '12345'"));       /* substring needs two strings */
	cr_assert_not(t("'a' in 5"));
	cr_assert(t("-1 in [+1, -1]"));
	cr_assert(t("'25' in [25]"));
	cr_assert(t("null in [1, null]"));
	cr_assert_not(t("1 in []"));
	cr_assert_not(t("not 3 in [1, 2]")); /* (not 3) in [1, 2] is 0 in [1, 2] */
	cr_assert(t("not 3 in [0]"));
	cr_assert_not(t("not (1 in [1, 2])"));
}

Test(filter, missing_and_unusable_fields)
{
	cr_assert_not(m(".missing == 'value'", person));
	cr_assert_not(m("not .missing", person));            /* not an error, no match */
	cr_assert_not(m(".age == 25 or .missing == 1", person)); /* any missing field */
	cr_assert_not(m(".missing or 1", person));
	cr_assert_not(m(".obj", person));                    /* objects are unusable */
	cr_assert_not(m("!.obj", person));
	cr_assert_not(m(".nested", person));                 /* so are nested arrays */
	cr_assert(m(".age == 25", person));                  /* unused ones do no harm */
	cr_assert_not(m("1", NULL));                         /* no attributes at all */
	cr_assert_not(m("1", ""));
	cr_assert(m("1", "{}"));
	cr_assert(m("1", " { } "));
	cr_assert_not(m(".a", "{\"a\": [1, {\"b\": 2}]}"));
	cr_assert(m(".b", "{\"a\": [1, {\"b\": 2}], \"b\": 1}"));
}

Test(filter, invalid_json)
{
	static const char *bad_json[] = {
		"invalid json", "{", "}", "{\"age\": 25", "{\"age\": 25,}", "{\"age\" 25}",
		"{age: 25}", "{'age': 25}", "[{\"age\": 25}]", "\"age\"", "25", "null",
		"{\"age\": 025}", "{\"age\": 25.}", "{\"age\": .5}", "{\"age\": +1}",
		"{\"age\": 1e}", "{\"age\": -}", "{\"age\": tru}", "{\"age\": True}",
		"{\"age\": 25} x", "{\"age\": 25}{}", "{\"age\": 25, \"x\": [1,]}",
		"{\"age\": 25, \"x\": [1 2]}", "{\"age\": 25, \"x\": {\"a\"}}",
		"{\"age\": 25, \"x\": \"tab\there\"}", "{\"age\": 25, \"x\": \"\\q\"}",
		"{\"age\": 25, \"x\": \"\\u12g4\"}", "{\"age\": 25, \"x\": \"unterminated}",
		"{\"age\": 25, \"x\": [}", "{\"age\": 25, \"x\": nul}",
		"{\"age\": 25,, \"x\": 1}", "{,}", "{\"age\": 25 \"x\": 1}",
	};
	for (size_t i = 0; i < AB_ARRAY_LEN(bad_json); i++) {
		cr_assert_not(m(".age == 25", bad_json[i]), "accepted %s", bad_json[i]);
		cr_assert_not(m("1", bad_json[i]), "accepted %s", bad_json[i]);
	}
	/* the same documents made valid do match */
	cr_assert(m(".age == 25", "{\"age\": 25, \"x\": [1, 2], \"y\": {\"a\": [true, null]}}"));
	cr_assert(m(".age == 25", "\t{\r\n\"age\"\t:\n25 }\n"));
	/* a NUL inside the given length is invalid, not an early end */
	struct ab_filter *f = compile_ok("1");
	cr_assert_not(ab_filter_match(f, "{}\0", 3));
	ab_filter_free(f);
	/* the length bounds the text: no reading past it */
	f = compile_ok(".a == 1");
	cr_assert(ab_filter_match(f, "{\"a\": 1}garbage", 8));
	cr_assert_not(ab_filter_match(f, "{\"a\": 1}", 7));
	cr_assert_not(ab_filter_match(f, NULL, 5));
	cr_assert_not(ab_filter_match(NULL, "{\"a\": 1}", 8));
	ab_filter_free(f);
}

Test(filter, json_values)
{
	cr_assert(m(".a == 1500", "{\"a\": 1.5e3}"));
	cr_assert(m(".a == -0.25", "{\"a\": -2.5E-1}"));
	cr_assert(m(".a == 0", "{\"a\": -0}"));
	cr_assert(m(".a > 1e308", "{\"a\": 1e400}"));
	cr_assert(m(".a == 12345678901234567890", "{\"a\": 12345678901234567890}"));
	cr_assert(m(".a == 0.1", "{\"a\": 0.1}"));
	/* duplicate keys: the first one counts */
	cr_assert(m(".a == 1", "{\"a\": 1, \"a\": 2}"));
	cr_assert(m(".a == 'x'", "{\"b\": {\"a\": 5}, \"a\": \"x\"}")); /* top level only */
}

Test(filter, json_escapes)
{
	cr_assert(m(".s == 'a\"b'", "{\"s\": \"a\\\"b\"}"));
	cr_assert(m(".s == 'x\\\\y'", "{\"s\": \"x\\\\y\"}"));
	cr_assert(m(".s == 'l1\\nl2'", "{\"s\": \"l1\\nl2\"}"));
	cr_assert(m(".s == '\\t\\r\\b\\f/'", "{\"s\": \"\\t\\r\\b\\f\\/\"}"));
	cr_assert(m(".s == 'caf\xc3\xa9'", "{\"s\": \"caf\\u00e9\"}"));
	cr_assert(m(".s == 'caf\xc3\xa9'", "{\"s\": \"caf\\u00E9\"}"));
	cr_assert(m(".s == 'A'", "{\"s\": \"\\u0041\"}"));
	cr_assert(m(".s == '\xe2\x82\xac'", "{\"s\": \"\\u20ac\"}"));
	cr_assert(m(".s == '\xf0\x9f\x98\x80'", "{\"s\": \"\\ud83d\\ude00\"}")); /* pair */
	cr_assert(m(".s == '\xef\xbf\xbdx'", "{\"s\": \"\\ud83dx\"}"));   /* lone high */
	cr_assert(m(".s == '\xef\xbf\xbd'", "{\"s\": \"\\ude00\"}"));     /* lone low */
	cr_assert(m(".s == '\xef\xbf\xbd\xef\xbf\xbd'", "{\"s\": \"\\ud83d\\ud83d\"}"));
	cr_assert(m("'\\u00e9' in .s", "{\"s\": \"caf\\u00e9\"}"));
	cr_assert(m(".s == 'a\\u0000b'", "{\"s\": \"a\\u0000b\"}"));
	cr_assert_not(m(".s == 'ab'", "{\"s\": \"a\\u0000b\"}"));
	cr_assert(m(".t == ['z', 'a\"b']", "{\"t\": [\"z\", \"a\\\"b\"]}"));
	cr_assert(m("'a\"b' in .t", "{\"t\": [\"z\", \"a\\\"b\"]}"));
	/* escaped keys match their decoded names */
	cr_assert(m(".age == 25", "{\"\\u0061ge\": 25}"));
	cr_assert(m(".a-b == 2", "{\"a\\u002db\": 2}"));
	/* raw UTF-8 passes through untouched */
	cr_assert(m(".s == '\xe6\x97\xa5\xe6\x9c\xac'", "{\"s\": \"\xe6\x97\xa5\xe6\x9c\xac\"}"));
}

Test(filter, expression_strings)
{
	const char *j = "{\"dq\": \"a\\\"b\", \"sq\": \"O'Brien\", \"bs\": \"x\\\\y\", \"nl\": \"l1\\nl2\"}";
	cr_assert(m(".dq == \"a\\\"b\"", j));
	cr_assert(m(".sq == 'O\\'Brien'", j));
	cr_assert(m(".bs == \"x\\\\y\"", j));
	cr_assert(m(".nl == \"l1\\nl2\"", j));
	cr_assert(m("\"\\\"b\" in .dq", j));
	cr_assert(m(".dq in [\"zzz\", \"a\\\"b\"]", j));
	cr_assert(m("'a\"b' == .dq", j));
	cr_assert(m(".sq == \"O'Brien\"", j));
	cr_assert(m(".sq == \"O\\u0027Brien\"", j));
}

Test(filter, selectors)
{
	const char *j = "{\"a-1\": 5, \"a\": 10, \"_x9\": 1, \"5\": 7, \"Caps\": 2}";
	cr_assert(m(".a-1 == 5", j));     /* '-' belongs to the selector, as in Redis */
	cr_assert(m(".a - 1 == 9", j));
	cr_assert(m(".a -1 == 9", j));
	cr_assert(m("._x9 and .5 == 7 and .Caps == 2", j));
	cr_assert_not(m(".caps == 2", j)); /* keys are case-sensitive */
	cr_assert(m(".a==10&&.a>=10||0", j));
}

Test(filter, redis_examples)
{
	const char *movie = "{\"year\": 1984, \"rating\": 8.5, \"genre\": \"action\","
			    " \"director\": \"Nolan\"}";
	cr_assert(m(".year >= 1980 and .year < 1990", movie));
	cr_assert(m(".genre == \"action\" and .rating > 8.0", movie));
	cr_assert(m(".director in [\"Spielberg\", \"Nolan\"]", movie));
	cr_assert_not(m("(.year - 2000) ** 2 < 100 and .rating / 2 > 4", movie));
	cr_assert(m("(.year - 1990) ** 2 < 100 and .rating / 2 > 4", movie));
	cr_assert(m(".year > (1900 + 80)", movie));
}

Test(filter, compile_errors)
{
	bad("", "empty expression");
	bad("   ", "empty expression");
	bad(".a ==", "unexpected end of expression at offset 5");
	bad(".a == foo", "syntax error near 'foo' at offset 6");
	bad("(1", "unexpected end of expression at offset 2");
	bad("1)", "syntax error near ')' at offset 1");
	bad("()", "syntax error near ')' at offset 1");
	bad("1 2", "syntax error near '2' at offset 2");
	bad(".a = 1", "syntax error near '=' at offset 3");
	bad(".a & 1", "syntax error near '&' at offset 3");
	bad(".a | 1", "syntax error near '|' at offset 3");
	bad("1 ++", "unexpected end");
	bad("'abc", "unterminated string at offset 0");
	bad("\"abc\\\"", "unterminated string at offset 0");
	bad("'a\\qb'", "bad escape in string at offset 2");
	bad("'\\u12'", "bad escape");
	bad("1abc", "syntax error near '1a' at offset 0");
	bad("1.2.3", "syntax error near '1.2.' at offset 0");
	bad("1e", "syntax error near '1e' at offset 0");
	bad(". a", "syntax error near '.' at offset 0");
	bad("[1, .a]", "syntax error near '.a' at offset 4");
	bad("[1, [2]]", "syntax error near '[' at offset 4");
	bad("[1 2]", "syntax error near '2' at offset 3");
	bad("[1,]", "syntax error near ']' at offset 3");
	bad("[-'a']", "syntax error near ''a'' at offset 2");
	bad("[1", "unexpected end");
	bad("in", "syntax error near 'in' at offset 0");
	bad(".a in", "unexpected end");
	bad("and 1", "syntax error near 'and'");
	bad("x", "syntax error near 'x' at offset 0");
	bad("1 # 2", "syntax error near '#' at offset 2");
	bad("'\xc3\xa9' == \xc3\xa9", "syntax error near '?' at offset 8");
	bad("notx", "syntax error near 'notx'");
	bad("a_very_long_identifier_that_goes_on_and_on", "near 'a_very_long_identifier_t' at offset 0");

	struct ab_filter *f = (struct ab_filter *)1;
	char err[64];
	cr_assert_eq(ab_filter_compile("1\0" "2", 3, &f, err, sizeof(err)), AB_EINVAL);
	cr_assert_null(f);
	cr_assert_str_eq(err, "NUL byte at offset 1");
	cr_assert_eq(ab_filter_compile(NULL, 0, &f, err, sizeof(err)), AB_EINVAL);
	cr_assert_eq(ab_filter_compile("1", 1, NULL, err, sizeof(err)), AB_EINVAL);
	/* no room for a message is fine, and so is a tiny one */
	cr_assert_eq(ab_filter_compile("(", 1, &f, NULL, 0), AB_EINVAL);
	char tiny[8];
	cr_assert_eq(ab_filter_compile(".a ==", 5, &f, tiny, sizeof(tiny)), AB_EINVAL);
	cr_assert_str_eq(tiny, "unexpec");
	/* a length shorter than the string is honoured */
	cr_assert_eq(ab_filter_compile("1 == 1 garbage", 6, &f, err, sizeof(err)), 0);
	cr_assert(ab_filter_match(f, "{}", 2));
	ab_filter_free(f);
	ab_filter_free(NULL);
}

Test(filter, limits)
{
	char *e = ab_xmalloc(AB_FILTER_MAX_EXPR + 64);
	/* expression length */
	memset(e, ' ', AB_FILTER_MAX_EXPR);
	e[0] = '1';
	e[AB_FILTER_MAX_EXPR] = '\0';
	cr_assert(t(e));
	e[AB_FILTER_MAX_EXPR] = ' ';
	e[AB_FILTER_MAX_EXPR + 1] = '\0';
	bad(e, "expression longer than 4096 bytes");

	/* parentheses: 64 deep is fine, 65 is not */
	size_t n = 0;
	for (int i = 0; i < AB_FILTER_MAX_NEST; i++)
		e[n++] = '(';
	e[n++] = '1';
	for (int i = 0; i < AB_FILTER_MAX_NEST; i++)
		e[n++] = ')';
	e[n] = '\0';
	cr_assert(t(e));
	memmove(e + 1, e, n + 1);
	e[0] = '(';
	strcat(e, ")");
	bad(e, "nesting deeper than 64 at offset 64");

	/* unary operators in a row */
	n = 0;
	for (int i = 0; i < AB_FILTER_MAX_NEST; i++)
		e[n++] = '!';
	e[n++] = '1';
	e[n] = '\0';
	cr_assert(t(e)); /* an even number of nots */
	memmove(e + 1, e, n + 1);
	e[0] = '!';
	bad(e, "more than 64 unary operators");

	/* evaluation stack: a right-nested chain of ** holds every operand */
	n = 0;
	for (int i = 0; i < AB_FILTER_MAX_STACK; i++)
		n += (size_t)snprintf(e + n, 8, "1**");
	e[n - 2] = '\0';
	cr_assert(t(e));
	snprintf(e + n - 2, 8, "**1");
	bad(e, "expression too complex");
	/* while long left-assoc chains need no stack */
	n = 0;
	for (int i = 0; i < 600; i++)
		n += (size_t)snprintf(e + n, 8, "1+");
	e[n - 1] = '\0';
	cr_assert(t(e));
	free(e);

	/* distinct selectors */
	struct ab_buf b = {0};
	for (int i = 0; i < AB_FILTER_MAX_FIELDS; i++)
		ab_buf_printf(&b, "%s.f%d", i ? " or " : "", i);
	/* only some of them present: no match although .f63 is true */
	cr_assert_not(m(b.data, "{\"f0\": 0, \"f63\": 1, \"f1\": 0}"));
	ab_buf_puts(&b, " or .f0"); /* a repeat is no new field */
	ab_filter_free(compile_ok(b.data));
	ab_buf_puts(&b, " or .f64");
	bad(b.data, "more than 64 distinct selectors");
	ab_buf_free(&b);

	/* selector length */
	char sel[AB_FILTER_MAX_NAME + 8];
	sel[0] = '.';
	memset(sel + 1, 'k', AB_FILTER_MAX_NAME);
	sel[AB_FILTER_MAX_NAME + 1] = '\0';
	ab_filter_free(compile_ok(sel));
	strcat(sel, "k");
	bad(sel, "selector longer than 255 bytes at offset 0");
}

Test(filter, all_fields_present)
{
	/* 64 fields, all present: the one true among them decides */
	struct ab_buf e = {0}, j = {0};
	ab_buf_putc(&j, '{');
	for (int i = 0; i < AB_FILTER_MAX_FIELDS; i++) {
		ab_buf_printf(&e, "%s.f%d == %d", i ? " or " : "", i, i == 40 ? 1 : 2);
		ab_buf_printf(&j, "%s\"f%d\": %d", i ? ", " : "", i, i == 40 ? 1 : 0);
	}
	ab_buf_putc(&j, '}');
	struct ab_filter *f = compile_ok(e.data);
	cr_assert(ab_filter_match(f, j.data, j.len));
	j.data[j.len - 1] = ' '; /* unterminated object */
	cr_assert_not(ab_filter_match(f, j.data, j.len));
	ab_filter_free(f);
	ab_buf_free(&e);
	ab_buf_free(&j);
}

static char *nested_json(int depth)
{
	struct ab_buf b = {0};
	ab_buf_puts(&b, "{\"a\": 1, \"deep\": ");
	for (int i = 0; i < depth; i++)
		ab_buf_putc(&b, '[');
	for (int i = 0; i < depth; i++)
		ab_buf_putc(&b, ']');
	ab_buf_putc(&b, '}');
	return ab_buf_steal(&b);
}

Test(filter, deep_json)
{
	/* the top-level object is level 1, so 63 arrays inside reach 64 */
	char *ok = nested_json(AB_FILTER_MAX_JSON_DEPTH - 1);
	char *deep = nested_json(AB_FILTER_MAX_JSON_DEPTH);
	char *huge = nested_json(100000);
	cr_assert(m(".a == 1", ok));
	cr_assert_not(m(".a == 1", deep));
	cr_assert_not(m(".a == 1", huge));
	cr_assert_not(m(".deep", ok)); /* nested arrays are unusable */
	free(ok);
	free(deep);
	free(huge);

	struct ab_buf b = {0};
	ab_buf_puts(&b, "{\"a\": 1, \"o\": ");
	for (int i = 0; i < 200; i++)
		ab_buf_puts(&b, "{\"k\": ");
	ab_buf_putc(&b, '1');
	for (int i = 0; i < 200; i++)
		ab_buf_putc(&b, '}');
	ab_buf_putc(&b, '}');
	cr_assert_not(m(".a == 1", b.data));
	cr_assert_not(m(".o", b.data));
	ab_buf_free(&b);
}

Test(filter, large_values)
{
	/* big arrays and escaped strings outgrow the inline arena */
	struct ab_buf b = {0};
	ab_buf_puts(&b, "{\"big\": [");
	for (int i = 0; i < 5000; i++)
		ab_buf_printf(&b, "%s\"v\\u00e9%d\"", i ? "," : "", i);
	ab_buf_puts(&b, "], \"s\": \"");
	for (int i = 0; i < 3000; i++)
		ab_buf_puts(&b, "\\n");
	ab_buf_puts(&b, "end\", \"n\": [");
	for (int i = 0; i < 3000; i++)
		ab_buf_printf(&b, "%s%d", i ? "," : "", i);
	ab_buf_puts(&b, "]}");
	cr_assert(m("'v\xc3\xa9" "4999' in .big and 'v\xc3\xa9" "0' in .big", b.data));
	cr_assert_not(m("'v\xc3\xa9" "5000' in .big", b.data));
	cr_assert(m("'\\n\\nend' in .s and 2999 in .n and 'v\xc3\xa9" "77' in .big", b.data));
	ab_buf_free(&b);

	/* more elements than AB_FILTER_MAX_ARRAY: unusable, still valid */
	ab_buf_puts(&b, "{\"x\": 1, \"arr\": [");
	for (int i = 0; i <= AB_FILTER_MAX_ARRAY; i++)
		ab_buf_puts(&b, i ? ",0" : "0");
	ab_buf_puts(&b, "]}");
	cr_assert_not(m("0 in .arr", b.data));
	cr_assert(m(".x", b.data));
	ab_buf_free(&b);

	/* attributes longer than AB_FILTER_MAX_JSON never match */
	size_t n = AB_FILTER_MAX_JSON + 1;
	char *j = ab_xmalloc(n);
	memset(j, ' ', n);
	j[0] = '{';
	j[n - 1] = '}';
	struct ab_filter *f = compile_ok("1");
	cr_assert_not(ab_filter_match(f, j, n));
	cr_assert_not(ab_filter_match(f, j + 1, n - 1)); /* at the limit, but no '{' */
	j[1] = '{';
	j[2] = '}';
	cr_assert_not(ab_filter_match(f, j + 1, n - 1)); /* "{}" then blanks then '}' */
	j[n - 1] = ' ';
	cr_assert(ab_filter_match(f, j + 1, n - 1));   /* exactly the limit, valid */
	ab_filter_free(f);
	free(j);
}

/* ---- concurrency ---- */

struct job {
	const struct ab_filter *f;
	int id;
	int hits, misses;
};

static void *worker(void *arg)
{
	struct job *jb = arg;
	char json[160];
	for (int i = 0; i < 20000; i++) {
		int year = 1900 + (i + jb->id) % 200;
		int n = snprintf(json, sizeof(json),
				 "{\"year\": %d, \"genre\": \"%s\", \"tags\": [\"t%d\", \"x\\u0041\"]}",
				 year, i % 3 ? "drama" : "action", i % 5);
		bool want = year >= 1980 && year < 2000 && i % 3 == 0 && i % 5 != 4;
		bool got = ab_filter_match(jb->f, json, (size_t)n);
		if (got != want)
			return (void *)1;
		if (got)
			jb->hits++;
		else
			jb->misses++;
	}
	return NULL;
}

Test(filter, concurrent_matching)
{
	struct ab_filter *f = compile_ok(
		".year >= 1980 and .year < 2000 and .genre == 'action' and 'xA' in .tags"
		" and not ('t4' in .tags)");
	enum { NT = 8 };
	pthread_t th[NT];
	struct job jobs[NT];
	for (int i = 0; i < NT; i++) {
		jobs[i] = (struct job){.f = f, .id = i * 37};
		cr_assert_eq(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
	}
	int hits = 0;
	for (int i = 0; i < NT; i++) {
		void *rv;
		cr_assert_eq(pthread_join(th[i], &rv), 0);
		cr_assert_null(rv, "thread %d saw a wrong answer", i);
		cr_assert_eq(jobs[i].hits + jobs[i].misses, 20000);
		hits += jobs[i].hits;
	}
	cr_assert_gt(hits, 0);
	ab_filter_free(f);
}
