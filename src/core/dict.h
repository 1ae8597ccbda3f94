/*
 * dict.h - a hash table from byte-string keys to pointers (the module's
 * name -> element maps, the knowledge base's fusion of ranked lists).
 * Keys are borrowed: the caller keeps each key's bytes alive (normally
 * inside the value) until the entry is deleted. Not thread safe.
 */
#ifndef AB_DICT_H
#define AB_DICT_H

#include <stddef.h>
#include <stdint.h>

struct ab_dict;

/* The caller frees the table with ab_dict_free. */
struct ab_dict *ab_dict_new(void);
/* Frees the table; free_value (if not NULL) gets every value. Accepts NULL. */
void ab_dict_free(struct ab_dict *d, void (*free_value)(void *value));
size_t ab_dict_count(const struct ab_dict *d);
size_t ab_dict_memory(const struct ab_dict *d);
void *ab_dict_get(const struct ab_dict *d, const char *key, size_t len);
/* Sets key (borrowed) to value; returns the value it replaced, or NULL. */
void *ab_dict_set(struct ab_dict *d, const char *key, size_t len, void *value);
/* Removes key; returns its value, or NULL if absent. */
void *ab_dict_del(struct ab_dict *d, const char *key, size_t len);
/* Walks the table: start with *pos = 0; returns the next value and its key,
 * or NULL at the end. Stable while the table is unchanged. */
void *ab_dict_next(const struct ab_dict *d, size_t *pos, const char **key, size_t *len);
/* A uniformly random value (NULL when empty); *rng is the caller's state. */
void *ab_dict_random(const struct ab_dict *d, uint64_t *rng);

/* The table's hash (seeded per process) and the same mix with a given seed
 * (stable across processes and machines). */
uint64_t ab_dict_hash(const void *p, size_t len);
uint64_t ab_hash64(const void *p, size_t len, uint64_t seed);
uint64_t ab_rng_next(uint64_t *state); /* splitmix64 */

#endif
