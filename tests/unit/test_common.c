/* test_common.c - error strings, buffers, JSON escaping, parsing helpers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common.h"

Test(common, strerror_names_both_kinds)
{
	cr_assert_str_eq(ab_strerror(0), "success");
	cr_assert_str_eq(ab_strerror(AB_EUNAVAIL), "service unavailable");
	cr_assert_str_eq(ab_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
	cr_assert_str_eq(ab_strerror(-123456), "unknown error");
}

Test(common, buf_grows_and_steals)
{
	struct ab_buf b = {0};
	for (int i = 0; i < 1000; i++)
		ab_buf_printf(&b, "%d,", i);
	cr_assert(b.len > 3000);
	cr_assert_eq(strlen(b.data), b.len);
	cr_assert(strncmp(b.data, "0,1,2,", 6) == 0);
	char *s = ab_buf_steal(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.len, 0);
	free(s);
	ab_buf_free(&b);
}

Test(common, json_escaping)
{
	struct ab_buf b = {0};
	ab_buf_json_str(&b, "a\"b\\c\nd\x01");
	cr_assert_str_eq(b.data, "\"a\\\"b\\\\c\\nd\\u0001\"");
	ab_buf_reset(&b);
	ab_buf_json_str(&b, NULL);
	cr_assert_str_eq(b.data, "null");
	ab_buf_free(&b);
}

Test(common, parse_int_bounds)
{
	long long v;
	cr_assert_eq(ab_parse_int("42", 1, 100, &v), 0);
	cr_assert_eq(v, 42);
	cr_assert_eq(ab_parse_int("0", 1, 100, &v), AB_EINVAL);
	cr_assert_eq(ab_parse_int("101", 1, 100, &v), AB_EINVAL);
	cr_assert_eq(ab_parse_int("12x", 1, 100, &v), AB_EINVAL);
	cr_assert_eq(ab_parse_int("", 1, 100, &v), AB_EINVAL);
	cr_assert_eq(ab_parse_int(NULL, 1, 100, &v), AB_EINVAL);
	cr_assert_eq(ab_parse_int("99999999999999999999", 1, 100, &v), AB_EINVAL);
}

Test(common, random_hex_is_random_and_hex)
{
	char a[65], b[65];
	cr_assert_eq(ab_random_hex(a, 32), 0);
	cr_assert_eq(ab_random_hex(b, 32), 0);
	cr_assert_eq(strlen(a), 64);
	cr_assert_neq(strcmp(a, b), 0);
	for (int i = 0; i < 64; i++)
		cr_assert(strchr("0123456789abcdef", a[i]));
	cr_assert_eq(ab_random_hex(a, 1000), AB_EINVAL);
}

Test(common, secure_streq)
{
	cr_assert(ab_secure_streq("token123", "token123"));
	cr_assert_not(ab_secure_streq("token123", "token124"));
	cr_assert_not(ab_secure_streq("token123", "token1234"));
	cr_assert_not(ab_secure_streq("", ""));
	cr_assert_not(ab_secure_streq("abc", ""));
}

Test(common, strlcpy_truncates)
{
	char d[4];
	cr_assert_eq(ab_strlcpy(d, "abcdef", sizeof(d)), 6);
	cr_assert_str_eq(d, "abc");
}

Test(common, deadline_normalises_nanoseconds)
{
	struct timespec now, d;
	clock_gettime(CLOCK_MONOTONIC, &now);
	d = ab_deadline(CLOCK_MONOTONIC, 1999);
	cr_assert(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
	double diff = (double)(d.tv_sec - now.tv_sec) * 1e3 + (double)(d.tv_nsec - now.tv_nsec) / 1e6;
	cr_assert(diff >= 1999 && diff < 2100, "diff %f", diff);
}
