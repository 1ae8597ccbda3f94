/*
 * test_router.c - unit tests for ab_router_match(): literal and
 * parameter segments, percent-decoding, 404 and 405 with the Allow list,
 * malformed escapes, trailing slashes and the bounds on hostile paths.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http.h"

static void h(struct ab_http_req *req)
{
	(void)req;
}

static const struct ab_route routes[] = {
	{"GET", "/api/health", h, AB_ACCESS_PUBLIC, 0, "health"},
	{"GET", "/api/things", h, AB_ACCESS_VIEWER, 0, "list"},
	{"POST", "/api/things", h, AB_ACCESS_USER, AB_ROUTE_JSON_BODY, "create"},
	{"GET", "/api/things/{id}", h, AB_ACCESS_VIEWER, 0, "get"},
	{"DELETE", "/api/things/{id}", h, AB_ACCESS_ADMIN, 0, "delete"},
	{"GET", "/api/a/{x}/b/{y}", h, AB_ACCESS_PUBLIC, 0, "two"},
	{"GET", "/", h, AB_ACCESS_PUBLIC, 0, "root"},
	{"GET", "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", h, AB_ACCESS_PUBLIC, 0, "nine"},
};
#define N AB_ARRAY_LEN(routes)

Test(router, literal_match)
{
	struct ab_route_match m;
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/health", &m), 0);
	cr_assert_eq(m.index, 0);
	cr_assert_eq(m.n_params, 0);
	ab_router_match_free(&m);
	cr_assert_eq(ab_router_match(routes, N, "POST", "/api/things", &m), 2);
	ab_router_match_free(&m);
	cr_assert_eq(ab_router_match(routes, N, "GET", "/", &m), 6);
	ab_router_match_free(&m);
}

Test(router, head_is_get)
{
	struct ab_route_match m;
	cr_assert_eq(ab_router_match(routes, N, "HEAD", "/api/health", &m), 0);
	ab_router_match_free(&m);
}

Test(router, params)
{
	struct ab_route_match m;
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/things/42", &m), 3);
	cr_assert_eq(m.n_params, 1);
	cr_assert_eq(m.name_lens[0], 2);
	cr_assert(strncmp(m.names[0], "id", 2) == 0);
	cr_assert_str_eq(m.values[0], "42");
	ab_router_match_free(&m);

	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/a/one/b/two", &m), 5);
	cr_assert_eq(m.n_params, 2);
	cr_assert_str_eq(m.values[0], "one");
	cr_assert_str_eq(m.values[1], "two");
	ab_router_match_free(&m);

	cr_assert_eq(ab_router_match(routes, N, "DELETE", "/api/things/x", &m), 4);
	ab_router_match_free(&m);
}

Test(router, percent_decoding)
{
	struct ab_route_match m;
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/things/a%2Fb%20c", &m), 3);
	cr_assert_str_eq(m.values[0], "a/b c");
	ab_router_match_free(&m);
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/things/%C3%A9", &m), 3);
	cr_assert_str_eq(m.values[0], "\xc3\xa9");
	ab_router_match_free(&m);
}

Test(router, bad_escapes)
{
	struct ab_route_match m;
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/things/%zz", &m), AB_EINVAL);
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/things/abc%", &m), AB_EINVAL);
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/things/abc%4", &m), AB_EINVAL);
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/things/a%00b", &m), AB_EINVAL);
	/* second parameter bad, first already decoded: must not leak or crash */
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/a/ok/b/%g0", &m), AB_EINVAL);
}

Test(router, not_found)
{
	struct ab_route_match m;
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/nothing", &m), AB_ENOTFOUND);
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/things/1/extra", &m),
		     AB_ENOTFOUND);
	/* a parameter matches one non-empty segment */
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/things/", &m), AB_ENOTFOUND);
	/* trailing slash is significant */
	cr_assert_eq(ab_router_match(routes, N, "GET", "/api/health/", &m), AB_ENOTFOUND);
	cr_assert_eq(ab_router_match(routes, N, "GET", "api/health", &m), AB_ENOTFOUND);
	cr_assert_eq(ab_router_match(routes, N, "GET", "", &m), AB_ENOTFOUND);
	cr_assert_eq(ab_router_match(routes, N, "GET", "//api/health", &m), AB_ENOTFOUND);
}

Test(router, method_not_allowed)
{
	struct ab_route_match m;
	cr_assert_eq(ab_router_match(routes, N, "PUT", "/api/things", &m), AB_EMETHOD);
	cr_assert_str_eq(m.allow, "GET, POST");
	cr_assert_eq(ab_router_match(routes, N, "POST", "/api/things/7", &m), AB_EMETHOD);
	cr_assert_str_eq(m.allow, "GET, DELETE");
	cr_assert_eq(ab_router_match(routes, N, "POST", "/api/health", &m), AB_EMETHOD);
	cr_assert_str_eq(m.allow, "GET");
}

Test(router, too_many_params)
{
	struct ab_route_match m;
	int r = ab_router_match(routes, N, "GET", "/p/1/2/3/4/5/6/7/8/9", &m);
	cr_assert_eq(r, AB_ETOOBIG);
}

Test(router, long_paths)
{
	struct ab_route_match m;
	size_t n = 100000;
	char *p = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (i % 2) ? 'a' : '/';
	p[n] = '\0';
	int r = ab_router_match(routes, N, "GET", p, &m);
	cr_assert(r == AB_ETOOBIG || r == AB_ENOTFOUND);
	/* many segments under the limit */
	p[4000] = '\0';
	r = ab_router_match(routes, N, "GET", p, &m);
	cr_assert_eq(r, AB_ENOTFOUND);
	/* one long parameter */
	memcpy(p, "/api/things/", 12);
	memset(p + 12, 'x', 3000);
	p[3012] = '\0';
	r = ab_router_match(routes, N, "GET", p, &m);
	cr_assert_eq(r, 3);
	cr_assert_eq(strlen(m.values[0]), 3000);
	ab_router_match_free(&m);
	free(p);
}

Test(router, allow_list_bounded)
{
	/* many methods on one path: allow[] must stay terminated */
	static const char *methods[] = {"GET",  "POST",  "PUT",     "PATCH",  "DELETE",
					"COPY", "MKCOL", "PROPFIND", "UNLOCK", "OPTIONS",
					"LOCK", "MOVE",  "SEARCH",   "REPORT"};
	struct ab_route many[AB_ARRAY_LEN(methods)];
	for (size_t i = 0; i < AB_ARRAY_LEN(methods); i++)
		many[i] = (struct ab_route){methods[i], "/x", h, AB_ACCESS_PUBLIC, 0, "m"};
	struct ab_route_match m;
	cr_assert_eq(ab_router_match(many, AB_ARRAY_LEN(many), "TRACE", "/x", &m),
		     AB_EMETHOD);
	cr_assert(strlen(m.allow) < sizeof(m.allow));
	cr_assert(strncmp(m.allow, "GET, POST", 9) == 0);
}

Test(router, access_names)
{
	cr_assert_str_eq(ab_access_name(AB_ACCESS_PUBLIC), "public");
	cr_assert_str_eq(ab_access_name(AB_ACCESS_ADMIN), "admin");
}
