/* test_log.c - line format, levels, request ids and secret redaction. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char out[8192];

static void capture(void (*fn)(void))
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	ab_log_set_fd(p[1]);
	fn();
	ab_log_set_fd(2);
	close(p[1]);
	ssize_t n = read(p[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
}

static void emit_levels(void)
{
	ab_log_init("coordinator", AB_LOG_WARN, false);
	ab_log(AB_LOG_INFO, "hidden line");
	ab_log(AB_LOG_WARN, "shown %d", 7);
}

Test(log, level_filter_and_logfmt)
{
	capture(emit_levels);
	cr_assert_null(strstr(out, "hidden"));
	cr_assert_not_null(strstr(out, "level=warn role=coordinator msg=\"shown 7\""), "%s", out);
	cr_assert_eq(out[strlen(out) - 1], '\n');
}

static void emit_json_req(void)
{
	ab_log_init("llm", AB_LOG_DEBUG, true);
	ab_log_set_request_id("abc123");
	ab_log(AB_LOG_INFO, "quote \" and newline \n here");
	ab_log_set_request_id(NULL);
}

Test(log, json_lines_with_request_id)
{
	capture(emit_json_req);
	cr_assert_not_null(strstr(out, "\"role\":\"llm\",\"req\":\"abc123\""), "%s", out);
	cr_assert_not_null(strstr(out, "quote \\\" and newline \\n here"), "%s", out);
}

static void emit_secret(void)
{
	ab_log_init("up", AB_LOG_DEBUG, false);
	ab_log_add_secret("s3cr3t-token-value");
	ab_log(AB_LOG_INFO, "token is s3cr3t-token-value and again s3cr3t-token-value!");
}

Test(log, secrets_are_redacted)
{
	capture(emit_secret);
	cr_assert_null(strstr(out, "s3cr3t"), "%s", out);
	cr_assert_not_null(strstr(out, "token is [redacted] and again [redacted]!"), "%s", out);
}

Test(log, level_names)
{
	cr_assert_eq(ab_log_level_parse("debug"), AB_LOG_DEBUG);
	cr_assert_eq(ab_log_level_parse("warning"), AB_LOG_WARN);
	cr_assert_eq(ab_log_level_parse("loud"), AB_EINVAL);
}
