/*
 * tree_internal.h - the editable tree's data structures, shared by tree.c
 * (model and edits), stage.c (staging files) and commit.c (writing).
 */
#ifndef CKPT_TREE_INTERNAL_H
#define CKPT_TREE_INTERNAL_H

#include <pthread.h>

#include "ckpt_tree.h"
#include "internal.h"

#define ID_STEP 4 /* a map entry's tensors are id+1 .. id+3 */

struct entry {
	uint64_t id;
	struct entry *hnext; /* hash chain of live root entries */
	char *name;
	size_t name_len;
	char *fname;
	bool live;
	enum ckpt_entry_kind kind;
	const struct ckpt_param *orig; /* in src; NULL for new entries */
	struct ckpt_file *src;         /* t->base, or a retired one */
	int stage_fd;                  /* -1: the bytes are orig's */
	bool data_changed, meta_changed, renamed;
	uint64_t size;
	ckpt_dtype dtype;
	uint32_t ndims;
	int64_t *dims;       /* explicit shape (ndims entries) */
	bool shape_explicit; /* else 1-D: size / element size */
	uint64_t mtime_ns;
	uint64_t nlookup;    /* the kernel's lookups (atomic under the read
			      * lock) */
};

struct ckpt_tree {
	pthread_rwlock_t lock;
	char *path, *target, *staging_dir;
	bool staging_fixed; /* given by the user: no fallback */
	const char *ro_reason;
	bool add_crc, drop_crc;
	bool one_shot;                    /* no rebind after a commit */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	bool memory_staging;              /* encrypted: no plaintext on disk */
	const struct ckpt_key *out_key;   /* commits are encrypted with it */
	struct ckpt_file *base; /* NULL while the tree has no file yet */
	struct ckpt_file **retired; /* earlier bases that deleted but open */
	size_t nretired;            /* entries still read from */
	struct ckpt_open_opts open_opts;
	uint64_t base_mtime_ns;

	struct entry **slots; /* by id / ID_STEP - 1; never reused */
	size_t nslots, slots_cap;
	struct entry **order; /* live root entries in checkpoint order */
	size_t norder, order_cap;
	struct entry **buckets;
	size_t nbuckets;
	bool dirty;
	bool dir_unsynced; /* the last commit's directory fsync failed */
};

/* stage.c: makes e's bytes live in a staging file.  With copy, the current
 * bytes are copied in first; the file is then sized to e->size. */
ckpt_err ckpt_stage(struct ckpt_tree *t, struct entry *e, bool copy,
		    struct ckpt_error *err);

/* stage.c: stages e (copying its bytes) and sizes its staging file to
 * size: truncated or zero-extended; 0 takes a new, empty file (see the top
 * of stage.c).  e->size is the caller's to set.  On failure e is as
 * before. */
ckpt_err ckpt_stage_resize(struct ckpt_tree *t, struct entry *e,
			   uint64_t size, struct ckpt_error *err);

/* stage.c: the pieces holding [off, off+size) of a file entry e, or of
 * the map tensor mt of src when e is NULL.  *mem receives a buffer the
 * caller frees (converted bfloat16).  Returns the count or -errno. */
int ckpt_entry_pieces(const struct entry *e, const struct ckpt_file *src,
		      const struct ckpt_tensor *mt, uint64_t off, size_t size,
		      struct ckpt_piece **pieces, void **mem);

/* stage.c: copies the bytes of n pieces into buf.  Returns their total,
 * or -1 with errno set (EIO for a source shorter than its piece). */
ssize_t ckpt_pieces_copy(const struct ckpt_piece *p, uint32_t n, void *buf);

/* commit.c helpers used by tree.c */
uint64_t ckpt_now_ns(void);

/* tree.c: shown dtype/shape of e as dims; false if they do not fit its
 * size (err explains).  With coerce, a misfit is made to fit instead. */
bool ckpt_entry_dims(const struct entry *e, int64_t *dims, uint32_t *ndims,
		     ckpt_dtype *dt, bool coerce, struct ckpt_error *err);

/* tree.c: closes the retired files no entry refers to any more. */
void ckpt_tree_release_retired(struct ckpt_tree *t);

/* tree.c: (re)initializes e from parameter p of file src.  bind fails
 * (leaving e as it was) only if it cannot allocate the dims; rebind cannot
 * fail: the caller has made e->dims large enough for p's. */
ckpt_err ckpt_entry_bind(struct entry *e, const struct ckpt_param *p,
			 struct ckpt_file *src);
/* tree.c: after a commit that does not rebind (encrypted trees), an
 * inferred shape becomes the explicit one the commit wrote, as a rebind
 * would have read it back. */
void ckpt_entry_pin_shape(struct entry *e);

void ckpt_entry_rebind(struct entry *e, const struct ckpt_param *p,
		       struct ckpt_file *src);

#endif /* CKPT_TREE_INTERNAL_H */
