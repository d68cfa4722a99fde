/*
 * index.c - the parameters of an open checkpoint, in file order, with a
 * hash table from shown file name to position.
 *
 * A checkpoint may hold a million tiny parameters, so the index is kept
 * small and is built with few page faults: one 104-byte struct ckpt_param
 * per parameter in one array (a mapping of its own, grown with mremap), a
 * hash of 32-bit positions built once when the scan is done, and
 * everything else a parameter points to (name, file name unless it is the
 * same as the name, dims, extents, odd type spellings, the three tensors
 * of a map) packed into large blocks that are freed together at
 * ckpt_close.
 */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/index.h"

struct ckpt_block {
	struct ckpt_block *next;
	size_t size, used;
	alignas(16) unsigned char data[];
};

#define BLOCK_MIN 4096
#define BLOCK_MAX (8 << 20)
#define HUGE (2 << 20)
/* Mapping sizes are multiples of this (the kernel rounds them up further
 * where pages are larger). */
#define PAGE 4096
#define ALIGN 8
#define MAX_PARAMS (1u << 31) /* the hash holds 32-bit positions */

/* Asks for transparent huge pages in the whole 2 MiB pages of [p, p+n):
 * the index of a million parameters is a few large arrays filled front to
 * back, and a fault per 2 MiB instead of per 4 KiB makes a big difference
 * where the first touch of a page is slow (virtual machines). */
static void want_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
	uintptr_t a = ((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1);
	uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE - 1);

	if (b > a)
		madvise((void *)a, b - a, MADV_HUGEPAGE); /* a hint only */
#else
	(void)p;
	(void)n;
#endif
}

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
	want_huge(b, sizeof(*b) + size);
	b->size = size;
	b->used = n;
	b->next = f->blocks;
	f->blocks = b;
	return b->data;
}

static uint64_t hash_name(const char *s)
{
	uint64_t h = ckpt_hash_str(s);

	h ^= h >> 33; /* the low bits pick the slot: mix the high ones in */
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

/* The slot of fname (whose hash_name is h): holding it, or empty. */
static uint32_t *slot_at(const struct ckpt_file *f, uint64_t h,
			 const char *fname)
{
	size_t mask = f->hash_size - 1, i = h & mask;

	for (;; i = (i + 1) & mask) {
		uint32_t v = f->hash[i];
		if (!v || strcmp(f->params[v - 1].fname, fname) == 0)
			return &f->hash[i];
	}
}

static uint32_t *slot_for(const struct ckpt_file *f, const char *fname)
{
	return slot_at(f, hash_name(fname), fname);
}

static ckpt_err nomem(struct ckpt_error *err)
{
	return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
}

static uint64_t param_bytes(const struct ckpt_param *p)
{
	if (p->kind == CKPT_PARAM_TENSOR)
		return p->tensor.size;
	return p->map[0].size + p->map[1].size + p->map[2].size;
}

/* The parameter array is a mapping of its own, grown with mremap: no
 * copy however large it gets (realloc copies while glibc keeps the array
 * in the heap, which it does up to 32 MiB). */
static size_t array_bytes(size_t cap)
{
	size_t n = cap * sizeof(struct ckpt_param);

	return (n + PAGE - 1) & ~(size_t)(PAGE - 1);
}

struct ckpt_file *ckpt_index_new(void)
{
	struct ckpt_file *f = calloc(1, sizeof(*f));

	if (f)
		f->fd = -1;
	return f;
}

ckpt_err ckpt_index_put(struct ckpt_file *f, const struct ckpt_param *p,
			struct ckpt_error *err)
{
	if (f->nparams == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 1, n;
		void *np;
		if (f->cap >= MAX_PARAMS)
			return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
					 "%s: more than %u parameters", f->path,
					 MAX_PARAMS);
		n = array_bytes(ncap);
		np = f->params ? mremap(f->params, array_bytes(f->cap), n,
					MREMAP_MAYMOVE)
			       : mmap(NULL, n, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (np == MAP_FAILED)
			return nomem(err);
		want_huge(np, n);
		f->params = np;
		f->cap = n / sizeof(struct ckpt_param);
	}
	f->params[f->nparams++] = *p;
	return CKPT_OK;
}

/* Puts every parameter into the (empty) hash.  With dedup, a parameter
 * whose name was seen before gives its data to the earlier position (dict
 * semantics) and is left with fname NULL; returns how many were. */
static size_t fill_hash(struct ckpt_file *f, bool dedup)
{
	enum {
		AHEAD = 16
	}; /* hashes computed, slots prefetched ahead */
	size_t dups = 0, mask = f->hash_size - 1;
	uint64_t ahead[AHEAD];

	for (size_t i = 0; i < AHEAD && i < f->nparams; i++) {
		ahead[i] = hash_name(f->params[i].fname);
		__builtin_prefetch(&f->hash[ahead[i] & mask]);
	}
	for (size_t i = 0; i < f->nparams; i++) {
		uint64_t h = ahead[i % AHEAD];
		uint32_t *slot;
		if (i + AHEAD < f->nparams) {
			uint64_t n = hash_name(f->params[i + AHEAD].fname);
			ahead[i % AHEAD] = n;
			__builtin_prefetch(&f->hash[n & mask]);
		}
		slot = slot_at(f, h, f->params[i].fname);
		if (*slot && dedup) {
			f->params[*slot - 1] = f->params[i];
			f->params[i].fname = NULL;
			if (!dups++) /* the first name seen twice */
				f->stats.dup_name = f->params[*slot - 1].fname;
		} else {
			*slot = (uint32_t)(i + 1);
		}
	}
	return dups;
}

ckpt_err ckpt_index_build(struct ckpt_file *f, struct ckpt_error *err)
{
	size_t size = 64, dups;
	struct ckpt_param *np;

	while (size < 2 * f->nparams)
		size *= 2;
	f->hash = calloc(size, sizeof(*f->hash));
	if (!f->hash)
		return nomem(err);
	want_huge(f->hash, size * sizeof(*f->hash));
	f->hash_size = size;
	dups = fill_hash(f, true);
	if (dups) { /* drop the later copies and hash the rest again */
		size_t w = 0;
		for (size_t i = 0; i < f->nparams; i++)
			if (f->params[i].fname)
				f->params[w++] = f->params[i];
		f->nparams = w;
		memset(f->hash, 0, size * sizeof(*f->hash));
		fill_hash(f, false);
	}
	f->stats.duplicates = dups;
	f->stats.data_bytes = 0;
	for (size_t i = 0; i < f->nparams; i++)
		f->stats.data_bytes += param_bytes(&f->params[i]);
	if (array_bytes(f->nparams) < array_bytes(f->cap)) {
		size_t n = array_bytes(f->nparams);
		if (n == 0) {
			munmap(f->params, array_bytes(f->cap));
			f->params = NULL;
			f->cap = 0;
		} else if ((np = mremap(f->params, array_bytes(f->cap), n,
					0)) !=
			   MAP_FAILED) { /* else the array keeps its room */
			f->params = np;
			f->cap = n / sizeof(*np);
		}
	}
	return CKPT_OK;
}

void ckpt_index_free(struct ckpt_file *f)
{
	while (f->blocks) {
		struct ckpt_block *b = f->blocks;
		f->blocks = b->next;
		free(b);
	}
	if (f->params)
		munmap(f->params, array_bytes(f->cap));
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

/* ---- what an open file tells ------------------------------------------- */

bool ckpt_file_changed(const struct ckpt_file *f)
{
	struct stat st;

	return fstat(f->fd, &st) != 0 || !ckpt_ident_same(&f->ident, &st);
}

void ckpt_close(struct ckpt_file *f)
{
	if (!f)
		return;
	ckpt_index_free(f);
	free(f->path);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

const char *ckpt_path(const struct ckpt_file *f)
{
	return f->path;
}

int ckpt_fd(const struct ckpt_file *f)
{
	return f->fd;
}

bool ckpt_extents_in_file(const struct ckpt_file *f)
{
	return f->stats.enc_mode == CKPT_ENC_NONE;
}

const struct ckpt_stats *ckpt_stats(const struct ckpt_file *f)
{
	return &f->stats;
}

bool ckpt_has_metadata(const struct ckpt_file *f)
{
	return f->has_meta;
}

size_t ckpt_meta_count(const struct ckpt_file *f)
{
	return f->nmeta;
}

const struct ckpt_meta_item *ckpt_meta_at(const struct ckpt_file *f, size_t i)
{
	return i < f->nmeta ? &f->meta[i] : NULL;
}
