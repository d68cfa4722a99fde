/*
 * index.c - the parameters of an open checkpoint, in file order, with a
 * hash table from shown file name to position.
 *
 * A checkpoint may hold a million tiny parameters, so the index is kept
 * small: one 104-byte struct ckpt_param per parameter in one array, a
 * hash of 32-bit positions, and everything else a parameter points to
 * (name, file name unless it is the same as the name, dims, extents, odd
 * type spellings, the three tensors of a map) packed into large blocks
 * that are freed together at ckpt_close.  Nothing of the index is freed
 * earlier: a name that repeats (dict semantics) leaves its old data unused
 * in a block.
 */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct ckpt_block {
	struct ckpt_block *next;
	size_t size, used;
	alignas(16) unsigned char data[];
};

#define BLOCK_MIN 4096
#define BLOCK_MAX (1 << 20)
#define ALIGN 8
#define MAX_PARAMS (1u << 31) /* the hash holds 32-bit positions */

void *ckpt_index_alloc(struct ckpt_file *f, size_t n)
{
	struct ckpt_block *b = f->blocks;
	size_t size;

	n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	if (n == 0)
		n = ALIGN;
	if (b && b->size - b->used >= n) {
		void *p = b->data + b->used;
		b->used += n;
		return p;
	}
	size = b ? b->size * 2 : BLOCK_MIN;
	if (size > BLOCK_MAX)
		size = BLOCK_MAX;
	if (n > size / 8) { /* big: a block of its own behind the current */
		struct ckpt_block *nb;
		if (n > SIZE_MAX - sizeof(*nb))
			return NULL;
		nb = malloc(sizeof(*nb) + n);
		if (!nb)
			return NULL;
		nb->size = nb->used = n;
		if (b) {
			nb->next = b->next;
			b->next = nb;
		} else {
			nb->next = NULL;
			f->blocks = nb;
		}
		return nb->data;
	}
	b = malloc(sizeof(*b) + size);
	if (!b)
		return NULL;
	b->size = size;
	b->used = n;
	b->next = f->blocks;
	f->blocks = b;
	return b->data;
}

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	h ^= h >> 33; /* the low bits pick the slot: mix the high ones in */
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static uint32_t *slot_for(const struct ckpt_file *f, const char *fname)
{
	size_t mask = f->hash_size - 1, i = hash_name(fname) & mask;

	for (;; i = (i + 1) & mask) {
		uint32_t v = f->hash[i];
		if (!v || strcmp(f->params[v - 1].fname, fname) == 0)
			return &f->hash[i];
	}
}

static ckpt_err nomem(struct ckpt_error *err)
{
	return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
}

/* Room for one more parameter in the array and the hash. */
static ckpt_err grow(struct ckpt_file *f, struct ckpt_error *err)
{
	if (f->nparams == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 64;
		struct ckpt_param *np;
		if (f->cap >= MAX_PARAMS)
			return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
					 "%s: more than %u parameters", f->path,
					 MAX_PARAMS);
		np = realloc(f->params, ncap * sizeof(*np));
		if (!np)
			return nomem(err);
		f->params = np;
		f->cap = ncap;
	}
	if ((f->nparams + 1) * 2 > f->hash_size) {
		size_t nhash = f->hash_size ? f->hash_size * 2 : 128;
		uint32_t *nh = calloc(nhash, sizeof(*nh));
		if (!nh)
			return nomem(err);
		free(f->hash);
		f->hash = nh;
		f->hash_size = nhash;
		for (size_t i = 0; i < f->nparams; i++)
			*slot_for(f, f->params[i].fname) = (uint32_t)(i + 1);
	}
	return CKPT_OK;
}

static uint64_t param_bytes(const struct ckpt_param *p)
{
	if (p->kind == CKPT_PARAM_TENSOR)
		return p->tensor.size;
	return p->map[0].size + p->map[1].size + p->map[2].size;
}

ckpt_err ckpt_index_put(struct ckpt_file *f, const struct ckpt_param *p,
			struct ckpt_error *err)
{
	uint32_t *slot;
	ckpt_err e;

	e = grow(f, err);
	if (e)
		return e;
	slot = slot_for(f, p->fname);
	f->stats.data_bytes += param_bytes(p);
	if (*slot) { /* dict semantics: later data, earlier position */
		struct ckpt_param *old = &f->params[*slot - 1];
		f->stats.data_bytes -= param_bytes(old);
		f->stats.duplicates++;
		*old = *p;
		return CKPT_OK;
	}
	f->params[f->nparams] = *p;
	*slot = (uint32_t)++f->nparams;
	return CKPT_OK;
}

void ckpt_index_trim(struct ckpt_file *f)
{
	struct ckpt_param *np;

	if (f->nparams == f->cap)
		return;
	if (f->nparams == 0) {
		free(f->params);
		f->params = NULL;
		f->cap = 0;
		return;
	}
	np = realloc(f->params, f->nparams * sizeof(*np));
	if (np) { /* else the array keeps its room */
		f->params = np;
		f->cap = f->nparams;
	}
}

void ckpt_index_free(struct ckpt_file *f)
{
	while (f->blocks) {
		struct ckpt_block *b = f->blocks;
		f->blocks = b->next;
		free(b);
	}
	free(f->params);
	free(f->hash);
	f->params = NULL;
	f->hash = NULL;
	f->nparams = f->cap = f->hash_size = 0;
}

ssize_t ckpt_find(const struct ckpt_file *f, const char *fname)
{
	uint32_t v;

	if (!f->hash_size)
		return -1;
	v = *slot_for(f, fname);
	return v ? (ssize_t)(v - 1) : -1;
}

size_t ckpt_count(const struct ckpt_file *f)
{
	return f->nparams;
}

const struct ckpt_param *ckpt_param_at(const struct ckpt_file *f, size_t i)
{
	return i < f->nparams ? &f->params[i] : NULL;
}
