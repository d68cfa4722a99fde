/*
 * index.c - the parameters of an open checkpoint, in file order, with a
 * hash table from shown file name to position.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static size_t *slot_for(const struct ckpt_file *f, const char *fname)
{
	size_t mask = f->hash_size - 1, i = hash_name(fname) & mask;

	for (;; i = (i + 1) & mask) {
		size_t v = f->hash[i];
		if (!v || strcmp(f->params[v - 1].fname, fname) == 0)
			return &f->hash[i];
	}
}

static ckpt_err grow(struct ckpt_file *f, struct ckpt_error *err)
{
	size_t ncap = f->cap ? f->cap * 2 : 64, nhash = ncap * 2;
	struct ckpt_param *np = realloc(f->params, ncap * sizeof(*np));
	size_t *nh;

	if (!np)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	f->params = np;
	nh = calloc(nhash, sizeof(*nh));
	if (!nh)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	free(f->hash);
	f->hash = nh;
	f->hash_size = nhash;
	f->cap = ncap;
	for (size_t i = 0; i < f->nparams; i++)
		*slot_for(f, f->params[i].fname) = i + 1;
	return CKPT_OK;
}

static uint64_t param_bytes(const struct ckpt_param *p)
{
	if (p->kind == CKPT_PARAM_TENSOR)
		return p->tensor.size;
	return p->map[0].size + p->map[1].size + p->map[2].size;
}

ckpt_err ckpt_index_put(struct ckpt_file *f, struct ckpt_param *p,
			struct ckpt_error *err)
{
	size_t *slot;
	ckpt_err e;

	if (f->nparams == f->cap) {
		e = grow(f, err);
		if (e)
			return e;
	}
	slot = slot_for(f, p->fname);
	f->stats.data_bytes += param_bytes(p);
	if (*slot) { /* dict semantics: later data, earlier position */
		struct ckpt_param *old = &f->params[*slot - 1];
		f->stats.data_bytes -= param_bytes(old);
		f->stats.duplicates++;
		ckpt_param_free(old);
		*old = *p;
		if (f->stats.duplicates == 1)
			f->stats.dup_name = old->fname;
		return CKPT_OK;
	}
	f->params[f->nparams] = *p;
	*slot = ++f->nparams;
	return CKPT_OK;
}

ssize_t ckpt_find(const struct ckpt_file *f, const char *fname)
{
	size_t v;

	if (!f->hash_size)
		return -1;
	v = *slot_for(f, fname);
	return v ? (ssize_t)(v - 1) : -1;
}

void ckpt_tensor_free(struct ckpt_tensor *t)
{
	free(t->type_str);
	free(t->dims);
	free(t->extents);
	memset(t, 0, sizeof(*t));
}

void ckpt_param_free(struct ckpt_param *p)
{
	free(p->name);
	free(p->fname);
	ckpt_tensor_free(&p->tensor);
	for (int i = 0; i < CKPT_MAP_NTENSORS; i++)
		ckpt_tensor_free(&p->map[i]);
	memset(p, 0, sizeof(*p));
}

size_t ckpt_count(const struct ckpt_file *f)
{
	return f->nparams;
}

const struct ckpt_param *ckpt_param_at(const struct ckpt_file *f, size_t i)
{
	return i < f->nparams ? &f->params[i] : NULL;
}
