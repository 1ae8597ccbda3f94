/*
 * catalog.h - finding models on disk by name: the .gguf and llama2.c .bin
 * files of a models folder, and the models of an Ollama store (manifests
 * naming a blob per model), so that `autobot run llama3.2` works for
 * someone who pulled llama3.2 with Ollama. Plain files, no network.
 */
#ifndef AB_CATALOG_H
#define AB_CATALOG_H

#include <stddef.h>
#include <stdint.h>

struct ab_model_entry {
	char *name;       /* "stories260K", or "llama3.2:latest" for Ollama models */
	char *path;       /* the weights file */
	char *source;     /* "models_dir" or "ollama" */
	char *digest;     /* "sha256:..." for Ollama blobs, "" otherwise */
	char *template_path; /* Ollama template layer, or NULL */
	uint64_t size;
	int64_t mtime_s;
};

/*
 * Lists models_dir (non-recursive: *.gguf, and *.bin with a tokenizer
 * next to it) and the Ollama store at ollama_dir (manifests/<host>/<ns>/
 * <model>/<tag> -> blobs/sha256-<hex>). Either may be NULL or missing.
 * *out is an array of *n entries sorted by name; free with
 * ab_catalog_free(). Returns 0 or a negative code.
 */
int ab_catalog_scan(const char *models_dir, const char *ollama_dir, struct ab_model_entry **out,
		    size_t *n);
void ab_catalog_free(struct ab_model_entry *e, size_t n);

/*
 * Resolves what a user typed: an existing file path is taken as is;
 * otherwise a catalog name, where "name" also matches "name:latest" and
 * a models-folder file's name without its extension. Returns a new path
 * (caller frees) or NULL.
 */
char *ab_catalog_resolve(const char *name_or_path, const char *models_dir,
			 const char *ollama_dir);

/* The default Ollama store: $OLLAMA_MODELS, else ~/.ollama/models, else
 * /usr/share/ollama/.ollama/models if it exists (caller frees; NULL if none). */
char *ab_catalog_default_ollama_dir(void);

#endif
