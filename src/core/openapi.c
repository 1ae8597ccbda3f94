/*
 * openapi.c - turns a route table into the two documents that describe
 * it: /api/openapi.json (OpenAPI 3.1) and the self-contained /docs HTML
 * page. The server calls these once at start and serves the cached text,
 * so nothing here is on a request's path; clarity beats speed.
 *
 * Each "{name}" segment of a pattern becomes a required path parameter;
 * routes above PUBLIC get the bearer security requirement and an
 * x-autobot-access extension naming the level; AB_ROUTE_JSON_BODY routes
 * take an application/json request body; AB_ROUTE_STREAM routes answer
 * text/event-stream. Routes flagged AB_ROUTE_HIDDEN are left out.
 */
#include "http.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* "GET" + "/api/things/{id}" -> "get_api_things_id" (caller frees). */
static char *operation_id(const struct ab_route *r)
{
	struct ab_buf b = {0};
	for (const char *p = r->method; *p; p++)
		ab_buf_putc(&b, (char)tolower((unsigned char)*p));
	bool sep = true;
	for (const char *p = r->pattern; *p; p++) {
		if (isalnum((unsigned char)*p)) {
			if (sep)
				ab_buf_putc(&b, '_');
			ab_buf_putc(&b, *p);
			sep = false;
		} else {
			sep = true;
		}
	}
	return ab_buf_steal(&b);
}

static json_t *error_response(const char *desc)
{
	return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", desc, "content",
			 "application/json", "schema", "$ref",
			 "#/components/schemas/Error");
}

static json_t *operation(const struct ab_route *r)
{
	json_t *op = json_object();
	char *id = operation_id(r);
	json_object_set_new(op, "summary", json_string(r->summary ? r->summary : ""));
	json_object_set_new(op, "operationId", json_string(id));
	free(id);

	json_t *params = json_array();
	const char *p = r->pattern;
	while ((p = strchr(p, '{')) != NULL) {
		const char *e = strchr(p, '}');
		if (!e)
			break;
		json_t *prm = json_pack("{s:s%, s:s, s:b, s:{s:s}}", "name", p + 1,
					(size_t)(e - p - 1), "in", "path", "required", 1,
					"schema", "type", "string");
		json_array_append_new(params, prm);
		p = e + 1;
	}
	if (json_array_size(params))
		json_object_set_new(op, "parameters", params);
	else
		json_decref(params);

	if (r->need > AB_ACCESS_PUBLIC) {
		json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearer"));
		json_object_set_new(op, "x-autobot-access",
				    json_string(ab_access_name(r->need)));
	}
	if (r->flags & AB_ROUTE_JSON_BODY)
		json_object_set_new(op, "requestBody",
				    json_pack("{s:b, s:{s:{s:{s:s}}}}", "required", 1,
					      "content", "application/json", "schema",
					      "type", "object"));

	json_t *resp = json_object();
	if (r->flags & AB_ROUTE_STREAM)
		json_object_set_new(resp, "200",
				    json_pack("{s:s, s:{s:{s:{s:s}}}}", "description",
					      "event stream", "content", "text/event-stream",
					      "schema", "type", "string"));
	else
		json_object_set_new(resp, "200",
				    json_pack("{s:s, s:{s:{s:{}}}}", "description", "success",
					      "content", "application/json", "schema"));
	if (r->flags & AB_ROUTE_JSON_BODY)
		json_object_set_new(resp, "400", error_response("malformed JSON body"));
	if (r->need > AB_ACCESS_PUBLIC) {
		json_object_set_new(resp, "401", error_response("missing or unknown token"));
		json_object_set_new(resp, "403", error_response("access level too low"));
	}
	json_object_set_new(resp, "default", error_response("error"));
	json_object_set_new(op, "responses", resp);
	return op;
}

char *ab_openapi_json(const struct ab_http_opts *opts, const struct ab_route *routes,
		      size_t n)
{
	json_t *doc = json_object();
	json_object_set_new(doc, "openapi", json_string("3.1.0"));
	json_object_set_new(doc, "info",
			    json_pack("{s:s, s:s}", "title",
				      opts->title ? opts->title : "AutoBot", "version",
				      opts->version ? opts->version : AB_VERSION));
	json_t *paths = json_object();
	for (size_t i = 0; i < n; i++) {
		const struct ab_route *r = &routes[i];
		if (r->flags & AB_ROUTE_HIDDEN)
			continue;
		json_t *item = json_object_get(paths, r->pattern);
		if (!item) {
			item = json_object();
			json_object_set_new(paths, r->pattern, item);
		}
		char lower[16];
		size_t k = 0;
		for (; r->method[k] && k + 1 < sizeof(lower); k++)
			lower[k] = (char)tolower((unsigned char)r->method[k]);
		lower[k] = '\0';
		json_object_set_new(item, lower, operation(r));
	}
	json_object_set_new(doc, "paths", paths);
	json_t *err = json_pack(
		"{s:s, s:[s], s:{s:{s:s, s:[s,s], s:{s:{s:s}, s:{s:s}}}}}", "type", "object",
		"required", "error", "properties", "error", "type", "object", "required",
		"code", "message", "properties", "code", "type", "string", "message", "type",
		"string");
	json_object_set_new(
		doc, "components",
		json_pack("{s:{s:{s:s, s:s}}, s:{s:o}}", "securitySchemes", "bearer", "type",
			  "http", "scheme", "bearer", "schemas", "Error", err));
	char *out = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (!out)
		abort(); /* jansson only fails on allocation */
	/* hand back memory from our own allocator family */
	char *copy = ab_xstrdup(out);
	free(out);
	return copy;
}

static void html_escape(struct ab_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<':
			ab_buf_puts(b, "&lt;");
			break;
		case '>':
			ab_buf_puts(b, "&gt;");
			break;
		case '&':
			ab_buf_puts(b, "&amp;");
			break;
		case '"':
			ab_buf_puts(b, "&quot;");
			break;
		default:
			ab_buf_putc(b, *s);
		}
	}
}

char *ab_openapi_docs_html(const struct ab_http_opts *opts, const struct ab_route *routes,
			   size_t n)
{
	struct ab_buf b = {0};
	const char *title = opts->title ? opts->title : "AutoBot";
	ab_buf_puts(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			"<title>");
	html_escape(&b, title);
	ab_buf_puts(&b, " API</title><style>body{font-family:sans-serif;margin:2em}"
			"table{border-collapse:collapse}td,th{border:1px solid #ccc;"
			"padding:4px 8px;text-align:left}code{font-size:1.05em}</style>"
			"</head><body><h1>");
	html_escape(&b, title);
	ab_buf_puts(&b, " API ");
	html_escape(&b, opts->version ? opts->version : AB_VERSION);
	ab_buf_puts(&b, "</h1><p>Machine-readable description: "
			"<a href=\"/api/openapi.json\">/api/openapi.json</a>. Routes above "
			"<em>public</em> need <code>Authorization: Bearer &lt;token&gt;</code>."
			"</p><table><tr><th>Method</th><th>Path</th><th>Access</th>"
			"<th>Summary</th></tr>\n");
	for (size_t i = 0; i < n; i++) {
		const struct ab_route *r = &routes[i];
		if (r->flags & AB_ROUTE_HIDDEN)
			continue;
		ab_buf_puts(&b, "<tr><td>");
		html_escape(&b, r->method);
		ab_buf_puts(&b, "</td><td><code>");
		html_escape(&b, r->pattern);
		ab_buf_puts(&b, "</code></td><td>");
		html_escape(&b, ab_access_name(r->need));
		ab_buf_puts(&b, "</td><td>");
		html_escape(&b, r->summary);
		if (r->flags & AB_ROUTE_STREAM)
			ab_buf_puts(&b, " (event stream)");
		ab_buf_puts(&b, "</td></tr>\n");
	}
	ab_buf_puts(&b, "</table></body></html>\n");
	return ab_buf_steal(&b);
}
