/*
 * catalog.c - the model catalog of catalog.h.
 *
 * Ollama keeps each model as a manifest, a small JSON file at
 * manifests/<registry>/<namespace>/<model>/<tag>, whose "layers" list
 * blobs by media type and digest; the weights are the layer of type
 * application/vnd.ollama.image.model, stored as blobs/sha256-<hex> (a
 * GGUF file). Names are shown as Ollama shows them: "model:tag" for the
 * default registry and namespace ("library"), "namespace/model:tag" for
 * others on it, and the full path otherwise.
 */
#include "catalog.h"

#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OLLAMA_REGISTRY "registry.ollama.ai"
#define MEDIA_MODEL "application/vnd.ollama.image.model"
#define MEDIA_TEMPLATE "application/vnd.ollama.image.template"

struct list {
	struct ab_model_entry *v;
	size_t n, cap;
};

static void push(struct list *l, const char *name, const char *path, const char *source,
		 const char *digest, const char *tmpl)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = ab_xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	struct ab_model_entry *e = &l->v[l->n++];
	e->name = ab_xstrdup(name);
	e->path = ab_xstrdup(path);
	e->source = ab_xstrdup(source);
	e->digest = ab_xstrdup(digest ? digest : "");
	e->template_path = ab_xstrdup(tmpl);
	e->size = (uint64_t)st.st_size;
	e->mtime_s = (int64_t)st.st_mtime;
}

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

static void scan_models_dir(struct list *l, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *f = de->d_name;
		if (f[0] == '.')
			continue;
		bool gguf = ends_with(f, ".gguf"), bin = ends_with(f, ".bin");
		if (!gguf && !bin)
			continue;
		/* a llama2.c checkpoint needs a tokenizer; tokenizers are no models */
		if (bin && (strncmp(f, "tok", 3) == 0))
			continue;
		char *path = ab_xasprintf("%s/%s", dir, f);
		char *name = ab_xstrndup(f, strlen(f) - (gguf ? 5 : 4));
		push(l, name, path, "models_dir", "", NULL);
		free(name);
		free(path);
	}
	closedir(d);
}

/* Blob path of a digest "sha256:<hex>" (caller frees), NULL if malformed. */
static char *blob_path(const char *root, const char *digest)
{
	if (!digest || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 7 + 64)
		return NULL;
	for (const char *p = digest + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return NULL;
	return ab_xasprintf("%s/blobs/sha256-%s", root, digest + 7);
}

static void add_manifest(struct list *l, const char *root, const char *file, const char *name)
{
	json_t *j = json_load_file(file, 0, NULL);
	json_t *layers = json_object_get(j, "layers");
	const char *model_digest = NULL, *tmpl_digest = NULL;
	size_t i;
	json_t *layer;
	json_array_foreach(layers, i, layer)
	{
		const char *mt = json_string_value(json_object_get(layer, "mediaType"));
		const char *dg = json_string_value(json_object_get(layer, "digest"));
		if (mt && dg && strcmp(mt, MEDIA_MODEL) == 0)
			model_digest = dg;
		else if (mt && dg && strcmp(mt, MEDIA_TEMPLATE) == 0)
			tmpl_digest = dg;
	}
	char *path = blob_path(root, model_digest);
	char *tpath = blob_path(root, tmpl_digest);
	if (path)
		push(l, name, path, "ollama", model_digest, tpath);
	free(path);
	free(tpath);
	json_decref(j);
}

/* Walks manifests/<registry>/<namespace>/<model>/<tag>. */
static void scan_ollama(struct list *l, const char *root)
{
	char *mdir = ab_xasprintf("%s/manifests", root);
	DIR *d0 = opendir(mdir);
	struct dirent *r, *ns, *mo, *tg;
	while (d0 && (r = readdir(d0)) != NULL) {
		if (r->d_name[0] == '.')
			continue;
		char *p1 = ab_xasprintf("%s/%s", mdir, r->d_name);
		DIR *d1 = opendir(p1);
		while (d1 && (ns = readdir(d1)) != NULL) {
			if (ns->d_name[0] == '.')
				continue;
			char *p2 = ab_xasprintf("%s/%s", p1, ns->d_name);
			DIR *d2 = opendir(p2);
			while (d2 && (mo = readdir(d2)) != NULL) {
				if (mo->d_name[0] == '.')
					continue;
				char *p3 = ab_xasprintf("%s/%s", p2, mo->d_name);
				DIR *d3 = opendir(p3);
				while (d3 && (tg = readdir(d3)) != NULL) {
					if (tg->d_name[0] == '.')
						continue;
					char *file = ab_xasprintf("%s/%s", p3, tg->d_name);
					char *name;
					if (!strcmp(r->d_name, OLLAMA_REGISTRY) &&
					    !strcmp(ns->d_name, "library"))
						name = ab_xasprintf("%s:%s", mo->d_name, tg->d_name);
					else if (!strcmp(r->d_name, OLLAMA_REGISTRY))
						name = ab_xasprintf("%s/%s:%s", ns->d_name, mo->d_name,
								    tg->d_name);
					else
						name = ab_xasprintf("%s/%s/%s:%s", r->d_name, ns->d_name,
								    mo->d_name, tg->d_name);
					add_manifest(l, root, file, name);
					free(name);
					free(file);
				}
				if (d3)
					closedir(d3);
				free(p3);
			}
			if (d2)
				closedir(d2);
			free(p2);
		}
		if (d1)
			closedir(d1);
		free(p1);
	}
	if (d0)
		closedir(d0);
	free(mdir);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct ab_model_entry *)a)->name,
		      ((const struct ab_model_entry *)b)->name);
}

int ab_catalog_scan(const char *models_dir, const char *ollama_dir, struct ab_model_entry **out,
		    size_t *n)
{
	struct list l = {0};
	if (models_dir && *models_dir)
		scan_models_dir(&l, models_dir);
	if (ollama_dir && *ollama_dir)
		scan_ollama(&l, ollama_dir);
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), by_name);
	*out = l.v;
	*n = l.n;
	return 0;
}

void ab_catalog_free(struct ab_model_entry *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++) {
		free(e[i].name);
		free(e[i].path);
		free(e[i].source);
		free(e[i].digest);
		free(e[i].template_path);
	}
	free(e);
}

char *ab_catalog_default_ollama_dir(void)
{
	const char *env = getenv("OLLAMA_MODELS");
	struct stat st;
	if (env && *env)
		return ab_xstrdup(env);
	const char *home = getenv("HOME");
	if (home) {
		char *p = ab_xasprintf("%s/.ollama/models", home);
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
			return p;
		free(p);
	}
	if (stat("/usr/share/ollama/.ollama/models", &st) == 0 && S_ISDIR(st.st_mode))
		return ab_xstrdup("/usr/share/ollama/.ollama/models");
	return NULL;
}

char *ab_catalog_resolve(const char *name_or_path, const char *models_dir,
			 const char *ollama_dir)
{
	struct stat st;
	if (!name_or_path || !*name_or_path)
		return NULL;
	if (stat(name_or_path, &st) == 0 && S_ISREG(st.st_mode))
		return ab_xstrdup(name_or_path);
	struct ab_model_entry *e = NULL;
	size_t n = 0;
	ab_catalog_scan(models_dir, ollama_dir, &e, &n);
	char *found = NULL;
	char *with_tag = strchr(name_or_path, ':') ? NULL : ab_xasprintf("%s:latest", name_or_path);
	for (size_t i = 0; i < n && !found; i++) {
		if (strcmp(e[i].name, name_or_path) == 0 ||
		    (with_tag && strcmp(e[i].name, with_tag) == 0))
			found = ab_xstrdup(e[i].path);
	}
	free(with_tag);
	ab_catalog_free(e, n);
	return found;
}
