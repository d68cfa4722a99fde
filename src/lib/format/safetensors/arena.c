/*
 * arena.c - the memory jansson parses a header into.  A header of 100,000
 * tensors is a JSON tree of about 700,000 values; allocated one by one
 * with malloc and freed one by one, they took most of the time of an
 * open.  While st_arena_begin .. st_arena_end runs on a thread, jansson
 * allocates from a bump arena of large chunks there and its frees do
 * nothing; st_arena_end drops the whole tree at once.  Elsewhere, and on
 * every other thread, jansson gets malloc and free as before
 * (json_set_alloc_funcs is process-wide; the arena is per thread).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "format/safetensors/st_format.h"

/* Chunks are mappings of whole huge pages where the system has them: the
 * first touch of fresh memory (a fault per 4 KiB page) is the other half
 * of the cost, and far more so in virtual machines. */
#define CHUNK (4u << 20)

struct chunk {
	struct chunk *next;
	size_t size, used;
	alignas(16) unsigned char data[];
};

struct st_arena {
	struct chunk *chunks;
	bool nomem;
};

/* The arena jansson allocates from on this thread, or NULL. */
static __thread struct st_arena *current;

static void *arena_alloc(struct st_arena *a, size_t n)
{
	struct chunk *c = a->chunks;
	size_t size;

	n = (n + 15) & ~(size_t)15;
	if (c && c->size - c->used >= n) {
		void *p = c->data + c->used;
		c->used += n;
		return p;
	}
	size = n > CHUNK / 4 ? n : CHUNK - sizeof(*c);
	c = mmap(NULL, sizeof(*c) + size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED) {
		a->nomem = true;
		return NULL;
	}
#ifdef MADV_HUGEPAGE
	madvise(c, sizeof(*c) + size, MADV_HUGEPAGE); /* a hint only */
#endif
	c->size = size;
	c->used = n;
	if (n > CHUNK / 4 && a->chunks) { /* big: behind the current one */
		c->next = a->chunks->next;
		a->chunks->next = c;
	} else {
		c->next = a->chunks;
		a->chunks = c;
	}
	return c->data;
}

static void *hook_malloc(size_t n)
{
	return current ? arena_alloc(current, n) : malloc(n);
}

static void hook_free(void *p)
{
	if (!current)
		free(p);
}

static void install(void)
{
	json_set_alloc_funcs(hook_malloc, hook_free);
}

struct st_arena *st_arena_begin(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct st_arena *a = calloc(1, sizeof(*a));

	pthread_once(&once, install);
	current = a;
	return a;
}

void st_arena_end(struct st_arena *a)
{
	current = NULL;
	while (a && a->chunks) {
		struct chunk *c = a->chunks;
		a->chunks = c->next;
		munmap(c, sizeof(*c) + c->size);
	}
	free(a);
}
