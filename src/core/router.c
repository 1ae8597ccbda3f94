/*
 * router.c - matches a method and a path against the route table of
 * http.h, and names the access levels.
 *
 * A pattern is a sequence of "/"-separated segments; a segment "{name}"
 * matches exactly one non-empty path segment, anything else must match
 * byte for byte. Literal segments are compared undecoded; parameter
 * values are percent-decoded into owned strings, and a malformed escape
 * or one that decodes to NUL makes the whole match fail with AB_EINVAL
 * (the server answers 400). Trailing slashes are significant:
 * "/api/health/" has an empty last segment and so does not match
 * "/api/health" (404).
 *
 * Matching is a linear scan that allocates nothing until a route has
 * matched; the path is bounded (AB_ROUTER_MAX_PATH bytes) and so is the
 * number of parameters, so hostile input ends in an error code, never in
 * an overflow. HEAD is routed as GET.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>

#define AB_ROUTER_MAX_PATH 4096

const char *ab_access_name(enum ab_access a)
{
	switch (a) {
	case AB_ACCESS_PUBLIC:
		return "public";
	case AB_ACCESS_VIEWER:
		return "viewer";
	case AB_ACCESS_USER:
		return "user";
	case AB_ACCESS_ADMIN:
		return "admin";
	}
	return "unknown";
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes n bytes of s into a new string (caller frees), or NULL when an
 * escape is malformed or decodes to NUL. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = ab_xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 >= n) {
			free(out);
			return NULL;
		}
		int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
}

struct seg {
	const char *p;
	size_t n;
};

/* Splits the segment starting after *pos (which points at '/'); returns
 * false at the end of the string. */
static bool next_seg(const char **pos, struct seg *sg)
{
	const char *s = *pos;
	if (*s != '/')
		return false;
	s++;
	const char *e = strchr(s, '/');
	size_t n = e ? (size_t)(e - s) : strlen(s);
	sg->p = s;
	sg->n = n;
	*pos = s + n;
	return true;
}

static bool method_matches(const char *route_method, const char *method)
{
	if (strcmp(route_method, method) == 0)
		return true;
	return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Does path fit pattern? Records parameter spans into m (not decoded).
 * Returns 1 for a fit, 0 for none, AB_ETOOBIG for too many parameters. */
static int fit(const char *pattern, const char *path, struct ab_route_match *m,
	       struct seg *vals)
{
	const char *pp = pattern, *sp = path;
	struct seg ps = {0}, ss = {0};
	size_t np = 0;
	for (;;) {
		bool hp = next_seg(&pp, &ps);
		bool hs = next_seg(&sp, &ss);
		if (!hp || !hs) {
			if (hp != hs || *pp != '\0' || *sp != '\0')
				return 0;
			m->n_params = np;
			return 1;
		}
		if (ps.n >= 2 && ps.p[0] == '{' && ps.p[ps.n - 1] == '}') {
			if (ss.n == 0)
				return 0;
			if (np >= AB_HTTP_MAX_PARAMS)
				return AB_ETOOBIG;
			m->names[np] = ps.p + 1;
			m->name_lens[np] = ps.n - 2;
			vals[np] = ss;
			np++;
			continue;
		}
		if (ps.n != ss.n || memcmp(ps.p, ss.p, ps.n) != 0)
			return 0;
	}
}

static void allow_add(char *allow, size_t size, const char *method)
{
	size_t ml = strlen(method), al = strlen(allow);
	/* skip duplicates: look for the method as a whole list item */
	const char *p = allow;
	while ((p = strstr(p, method)) != NULL) {
		bool start = p == allow || p[-1] == ' ';
		bool end = p[ml] == '\0' || p[ml] == ',';
		if (start && end)
			return;
		p += ml;
	}
	size_t need = al + (al ? 2 : 0) + ml + 1;
	if (need > size)
		return;
	if (al) {
		allow[al++] = ',';
		allow[al++] = ' ';
	}
	memcpy(allow + al, method, ml + 1);
}

int ab_router_match(const struct ab_route *routes, size_t n, const char *method,
		    const char *path, struct ab_route_match *m)
{
	memset(m, 0, sizeof(*m));
	m->index = -1;
	if (!path || !method || path[0] != '/')
		return AB_ENOTFOUND;
	if (strnlen(path, AB_ROUTER_MAX_PATH + 1) > AB_ROUTER_MAX_PATH)
		return AB_ETOOBIG;
	bool path_known = false;
	struct seg vals[AB_HTTP_MAX_PARAMS];
	for (size_t i = 0; i < n; i++) {
		struct ab_route_match tmp;
		memset(&tmp, 0, sizeof(tmp));
		int r = fit(routes[i].pattern, path, &tmp, vals);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		if (!method_matches(routes[i].method, method)) {
			path_known = true;
			allow_add(m->allow, sizeof(m->allow), routes[i].method);
			continue;
		}
		size_t np = tmp.n_params;
		tmp.n_params = 0;
		for (size_t k = 0; k < np; k++) {
			tmp.values[k] = pct_decode(vals[k].p, vals[k].n);
			tmp.n_params = k + 1;
			if (!tmp.values[k]) {
				ab_router_match_free(&tmp);
				return AB_EINVAL;
			}
		}
		tmp.index = (int)i;
		memcpy(tmp.allow, m->allow, sizeof(tmp.allow));
		*m = tmp;
		return (int)i;
	}
	return path_known ? AB_EMETHOD : AB_ENOTFOUND;
}

void ab_router_match_free(struct ab_route_match *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_params && i < AB_HTTP_MAX_PARAMS; i++) {
		free(m->values[i]);
		m->values[i] = NULL;
	}
	m->n_params = 0;
}
