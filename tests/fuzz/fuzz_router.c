/*
 * fuzz_router.c - libFuzzer target for ab_router_match(). The input is
 * "METHOD PATH": everything before the first space is the method, the
 * rest (up to a NUL) the path, matched against a fixed table that has
 * literal segments, parameters and several methods on one path.
 */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	char *sp = strchr(s, ' ');
	const char *method = "GET", *path = s;
	if (sp) {
		*sp = '\0';
		method = s;
		path = sp + 1;
	}
	struct ab_route_match m;
	int r = ab_router_match(routes, AB_ARRAY_LEN(routes), method, path, &m);
	if (r >= 0) {
		if ((size_t)r >= AB_ARRAY_LEN(routes) || m.n_params > AB_HTTP_MAX_PARAMS)
			abort();
		for (size_t i = 0; i < m.n_params; i++)
			if (!m.values[i] || strlen(m.values[i]) > strlen(path))
				abort();
		ab_router_match_free(&m);
	} else if (r == AB_EMETHOD) {
		if (strlen(m.allow) >= sizeof(m.allow) || m.allow[0] == '\0')
			abort();
	}
	free(s);
	return 0;
}
