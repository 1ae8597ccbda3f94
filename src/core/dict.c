/*
 * dict.c - open-addressing hash table (linear probing, backward-shift
 * deletion, so no tombstones) from borrowed byte-string keys to pointers.
 * Capacity is a power of two kept at most 3/4 full. Each slot holds the key
 * pointer, its length, the value and the key's hash (compared first, so
 * that probing rarely touches key bytes). The hash is seeded once per
 * process from the kernel's random source, so that crafted names cannot
 * force every element into one probe chain.
 */
#include "dict.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct slot {
	const char *key; /* NULL = empty */
	size_t len;
	uint64_t hash;
	void *value;
};

struct ab_dict {
	struct slot *slots;
	size_t cap; /* power of two */
	size_t count;
};

static uint64_t hash_seed;

uint64_t ab_rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t mix(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t ab_dict_hash(const void *p, size_t len)
{
	if (!hash_seed) {
		uint64_t s = 0;
		if (ab_random_bytes(&s, sizeof(s)) != 0 || !s)
			s = 0x243f6a8885a308d3ULL;
		hash_seed = s; /* benign race: every thread writes some seed once */
	}
	return ab_hash64(p, len, hash_seed);
}

uint64_t ab_hash64(const void *p, size_t len, uint64_t seed)
{
	const unsigned char *b = p;
	uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, b, 8);
		h = mix(h ^ w, 0xa0761d6478bd642fULL);
		b += 8;
		len -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, b, len);
	h = mix(h ^ w ^ ((uint64_t)len << 56), 0xe7037ed1a0b428dbULL);
	return mix(h, 0x8ebc6af09c88c6e3ULL);
}

struct ab_dict *ab_dict_new(void)
{
	struct ab_dict *d = ab_xcalloc(1, sizeof(*d));
	d->cap = 8;
	d->slots = ab_xcalloc(d->cap, sizeof(struct slot));
	return d;
}

void ab_dict_free(struct ab_dict *d, void (*free_value)(void *value))
{
	if (!d)
		return;
	if (free_value)
		for (size_t i = 0; i < d->cap; i++)
			if (d->slots[i].key)
				free_value(d->slots[i].value);
	free(d->slots);
	free(d);
}

size_t ab_dict_count(const struct ab_dict *d) { return d->count; }

size_t ab_dict_memory(const struct ab_dict *d) { return sizeof(*d) + d->cap * sizeof(struct slot); }

static size_t find(const struct ab_dict *d, const char *key, size_t len, uint64_t h)
{
	size_t mask = d->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct slot *s = &d->slots[i];
		if (!s->key)
			return i;
		if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
			return i;
	}
}

void *ab_dict_get(const struct ab_dict *d, const char *key, size_t len)
{
	size_t i = find(d, key, len, ab_dict_hash(key, len));
	return d->slots[i].key ? d->slots[i].value : NULL;
}

static void resize(struct ab_dict *d, size_t cap)
{
	struct slot *old = d->slots;
	size_t oldcap = d->cap;
	d->cap = cap;
	d->slots = ab_xcalloc(d->cap, sizeof(struct slot));
	for (size_t i = 0; i < oldcap; i++) {
		if (!old[i].key)
			continue;
		size_t j = find(d, old[i].key, old[i].len, old[i].hash);
		d->slots[j] = old[i];
	}
	free(old);
}

void *ab_dict_set(struct ab_dict *d, const char *key, size_t len, void *value)
{
	if ((d->count + 1) * 4 > d->cap * 3)
		resize(d, d->cap * 2);
	uint64_t h = ab_dict_hash(key, len);
	struct slot *s = &d->slots[find(d, key, len, h)];
	if (s->key) {
		void *old = s->value;
		s->key = key;
		s->value = value;
		return old;
	}
	s->key = key;
	s->len = len;
	s->hash = h;
	s->value = value;
	d->count++;
	return NULL;
}

void *ab_dict_del(struct ab_dict *d, const char *key, size_t len)
{
	size_t mask = d->cap - 1;
	size_t i = find(d, key, len, ab_dict_hash(key, len));
	if (!d->slots[i].key)
		return NULL;
	void *value = d->slots[i].value;
	/* Backward-shift: pull later members of the chain into the hole. */
	size_t hole = i;
	for (size_t j = (i + 1) & mask; d->slots[j].key; j = (j + 1) & mask) {
		size_t home = d->slots[j].hash & mask;
		/* j may move to hole if its home is not in (hole, j] cyclically. */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			d->slots[hole] = d->slots[j];
			hole = j;
		}
	}
	memset(&d->slots[hole], 0, sizeof(struct slot));
	d->count--;
	/* Shrink below 1/8 full, so memory follows the count and random
	 * picks (rejection sampling) stay cheap. */
	if (d->cap > 8 && d->count * 8 < d->cap)
		resize(d, d->cap / 2);
	return value;
}

void *ab_dict_next(const struct ab_dict *d, size_t *pos, const char **key, size_t *len)
{
	for (size_t i = *pos; i < d->cap; i++) {
		if (d->slots[i].key) {
			*pos = i + 1;
			if (key)
				*key = d->slots[i].key;
			if (len)
				*len = d->slots[i].len;
			return d->slots[i].value;
		}
	}
	*pos = d->cap;
	return NULL;
}

void *ab_dict_random(const struct ab_dict *d, uint64_t *rng)
{
	if (!d->count)
		return NULL;
	/* The table is kept at least 1/8 full (or has 8 slots): rejection
	 * sampling over slots is uniform and takes a few tries on average. */
	for (;;) {
		size_t i = ab_rng_next(rng) & (d->cap - 1);
		if (d->slots[i].key)
			return d->slots[i].value;
	}
}
