/*
 * index.h - the index of an open checkpoint, whatever its format: the
 * parameters in file order, a hash by shown name, and the blocks their
 * names, dims and extents live in, and what an open file tells (index.c);
 * parameters copied from another index, and indexes compared (copy.c);
 * reading a tensor's bytes (read.c).  Filled by a format's scan
 * (format/); knows no format itself.
 */
#ifndef CKPT_INDEX_H
#define CKPT_INDEX_H

#include "base/base.h"

/* A block of the memory the index of an open file lives in (index.c). */
struct ckpt_block;
struct ckpt_format; /* format/format.h */

struct ckpt_file {
	int fd;
	char *path;
	struct ckpt_ident ident; /* of fd when it was scanned */
	struct ckpt_stats stats;
	struct ckpt_param *params;
	size_t nparams, cap;
	uint32_t *hash;	  /* open addressing: index+1, 0 = empty */
	size_t hash_size; /* power of two, at least 2 x nparams; 0 until
			      * ckpt_index_build */
	struct ckpt_block *blocks; /* names, dims, extents, map tensors */
	const struct ckpt_format *format; /* what the scan read it as */
	struct ckpt_meta_item *meta;	  /* nmeta, in the index's blocks */
	size_t nmeta;
	bool has_meta;
};

/* A new, empty index (fd -1) for ckpt_index_put and friends, or NULL if
 * memory is short; ckpt_close frees it. */
struct ckpt_file *ckpt_index_new(void);

/* Appends a parameter in file order.  Its pointers must be into memory
 * from ckpt_index_alloc(f, ...).  Used by the scanner. */
ckpt_err ckpt_index_put(struct ckpt_file *f, const struct ckpt_param *p,
			struct ckpt_error *err);

/* n bytes aligned for any of the index's types, owned by f (freed by
 * ckpt_index_free); NULL when out of memory. */
void *ckpt_index_alloc(struct ckpt_file *f, size_t n);

/* After the last ckpt_index_put: builds the hash, keeps one parameter per
 * name (a name seen again gives its data to the first position, as in a
 * dict), sets stats.duplicates and data_bytes, and gives back unused
 * room.  ckpt_find works from here on. */
ckpt_err ckpt_index_build(struct ckpt_file *f, struct ckpt_error *err);

/* copy.c: appends parameter p of another index with its records moved
 * by delta bytes (its extents and rec_off; delta may wrap below zero):
 * everything it points to is copied into f's blocks. */
ckpt_err ckpt_index_put_moved(struct ckpt_file *f, const struct ckpt_param *p,
			      uint64_t delta, struct ckpt_error *err);

/* copy.c: true if built indexes a and b hold the same parameters in the
 * same order (names, kinds, records, dtypes, dims, sizes, extents) and
 * the same figures of their files (sizes, records, the trailer, the
 * format); else false and why (n bytes) says the first difference. */
bool ckpt_index_same(const struct ckpt_file *a, const struct ckpt_file *b,
		     char *why, size_t n);

/* Frees the parameters, the hash and every ckpt_index_alloc block. */
void ckpt_index_free(struct ckpt_file *f);

/* True if the file f was scanned from has changed since (or cannot be
 * examined): its bytes can no longer be trusted. */
bool ckpt_file_changed(const struct ckpt_file *f);

#endif /* CKPT_INDEX_H */
