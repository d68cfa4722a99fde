/*
 * index.h - the index of an open checkpoint, whatever its format: the
 * parameters in file order, a hash by shown name, and the blocks their
 * names, dims and extents live in, and what an open file tells (index.c);
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

/* Frees the parameters, the hash and every ckpt_index_alloc block. */
void ckpt_index_free(struct ckpt_file *f);

/* True if the file f was scanned from has changed since (or cannot be
 * examined): its bytes can no longer be trusted. */
bool ckpt_file_changed(const struct ckpt_file *f);

#endif /* CKPT_INDEX_H */
