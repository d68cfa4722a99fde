/*
 * tree.h - the editable tree's data structures, shared by the files of
 * tree/ and by commit/ (writing):
 *   tree.c      entries, ids and slots, the hash of live names, the order,
 *               lookup counts, retired files
 *   query.c     list, lookup, stat, read
 *   edit.c      write, truncate, create, unlink, rename
 *   meta.c      dtype and shape: shown, written, edited
 *   tree_open.c opening and closing a tree, what it tells about itself
 *   stage.c     staging files
 *   scratch.c   scratch names and tombs
 *   pieces.c    where an entry's bytes are
 *   rebase.c    moving the tree onto the file a commit wrote
 *   metadata.c  the format's metadata (safetensors __metadata__)
 *   select.c    hidden parameters (include/exclude), renaming them all
 */
#ifndef CKPT_TREE_INTERNAL_H
#define CKPT_TREE_INTERNAL_H

#include <pthread.h>

#include "ckpt_tree.h"
#include "format/format.h"

/* One parameter (or scratch file) of the tree.  Kept small: a tree of a
 * million parameters holds a million of these (96 bytes on LP64; see the
 * assertion below). */
struct entry {
	struct entry *hnext; /* hash chain of live root entries */
	char *name;	     /* borrowed from orig until renamed (own_name) */
	char *fname;
	const struct ckpt_param *orig; /* in src; NULL for new entries */
	struct ckpt_file *src;	       /* t->base, or a retired one */
	int64_t *dims; /* explicit shape (ndims entries); borrowed from
			      * orig until changed (own_dims) */
	uint64_t size;
	uint64_t mtime_ns;
	uint64_t nlookup; /* the kernel's lookups (atomic under the read
			      * lock; see ckpt_entry_count_lookup) */
	uint32_t slot;	  /* the id is (slot + 1) * CKPT_TREE_ID_STEP */
	uint32_t name_len;
	int stage_fd;	    /* -1: the bytes are orig's */
	uint32_t stage_off; /* where its bytes start in the staging file:
			     * the source's offset modulo the block size,
			     * so that a reflinking file system shares the
			     * copied blocks (stage.c) */
	uint8_t dtype;	    /* ckpt_dtype */
	uint8_t ndims;	    /* <= CKPT_MAX_DIMS */
	/* 0: its staged bytes are contiguous; else each stored slice
	 * keeps its offset modulo 1 << stage_shift (ckpt_stage_pos) */
	uint8_t stage_shift;
	uint8_t kind : 1; /* enum ckpt_entry_kind */
	bool live : 1;
	bool data_changed : 1, meta_changed : 1, renamed : 1;
	bool shape_explicit : 1; /* else 1-D: size / element size */
	bool dtype_set : 1; /* dtype/shape are its own (file or setxattr) */
	bool inherited : 1; /* dtype/shape taken from the parameter it
			      * replaced: shown only while the size fits */
	bool scratch : 1;   /* a scratch file (ckpt_tree_is_scratch) */
	bool own_name : 1, own_dims : 1;
	bool in_block : 1; /* part of t->entry_block, not malloc'd */
	bool hidden : 1;   /* not selected: see ckpt_select_apply */
};

_Static_assert(sizeof(struct entry) <= 96,
	       "struct entry grew: the memory per parameter is measured "
	       "(tests/integration/test_memory.py)");

#define ENTRY_ID(e) ((uint64_t)((e)->slot + 1) * CKPT_TREE_ID_STEP)

/* A parameter deleted (or renamed to a scratch name) since the last
 * commit: a new file of that name takes its place, dtype and shape. */
struct tomb {
	char *fname;
	size_t pos;
	ckpt_dtype dtype;
	uint32_t ndims;
	int64_t *dims;
	bool shape_explicit;
};

struct ckpt_tree {
	pthread_rwlock_t lock;
	struct ckpt_place src_pl, tgt_pl; /* the checkpoint's, commits' */
	int stage_dirfd;		  /* staging files go here */
	int tmp_dirfd;	 /* $TMPDIR: staging and recovery fallback; or -1 */
	int pin_fd;	 /* the file at the target, locked when writable;
			   * -1 while there is none */
	int replaced_fd; /* the file the last commit replaced, closed by
			  * ckpt_tree_drop_replaced (replace.c); or -1 */
	struct ckpt_ident pin; /* ... its identity when opened or written */
	mode_t pin_mode;       /* ... and its mode and owner */
	uid_t pin_uid;
	gid_t pin_gid;
	mode_t src_mode; /* the checkpoint's, as opened (what is shown) */
	uid_t src_uid;
	gid_t src_gid;
	bool force;	    /* the next commit replaces whatever is there */
	char *staging_dir;  /* for messages */
	char *tmp_path;	    /* $TMPDIR or /tmp, for messages */
	bool staging_fixed; /* given by the user: no fallback */
	const char *ro_reason;
	char ro_buf[600]; /* ro_reason, when it names a path */
	char warning[512];
	enum ckpt_crc_policy crc;
	bool one_shot;	 /* no rebind after a commit */
	bool no_reflink; /* commits never start as a clone of the old file */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	bool memory_staging;		/* encrypted: no plaintext on disk */
	const struct ckpt_key *out_key; /* commits are encrypted with it */
	struct ckpt_file *base;	    /* NULL while the tree has no file yet */
	struct ckpt_file **retired; /* earlier bases that deleted but open */
	size_t nretired;	    /* entries still read from */
	struct ckpt_open_opts open_opts;
	uint64_t base_mtime_ns;
	char **scratch_globs; /* NULL-terminated, pointing into scratch_buf */
	char *scratch_buf;
	struct tomb *tombs;
	size_t ntombs;

	struct entry *entry_block; /* the entries of the parameters opened
				    * with the tree, in one mapping */
	size_t entry_block_len;
	struct entry **slots; /* by id / CKPT_TREE_ID_STEP - 1; NULL: free */
	size_t nslots, slots_cap;
	size_t *free_slots; /* indexes of NULL slots, reused first */
	size_t nfree, free_cap;
	struct entry **order; /* live root entries in checkpoint order */
	size_t norder, order_cap;
	struct entry **buckets;
	size_t nbuckets;
	bool dirty;
	bool dir_unsynced; /* the last commit's directory fsync failed */

	const struct ckpt_format *format; /* what commits write */
	struct ckpt_meta_item *meta;	  /* the metadata, strings owned */
	size_t nmeta, meta_cap;
	bool has_meta, own_meta; /* as struct ckpt_snapshot says */
	bool skip_unrepresentable;
	void (*warn)(void *ctx, const char *msg);
	void *warn_ctx;
	size_t nhidden; /* entries with hidden set (select.c) */
};

/* tree.c: a new entry with a fresh (or freed) id, not yet linked; with
 * mem (zeroed, in t->entry_block), that memory instead of a new one. */
struct entry *ckpt_entry_new(struct ckpt_tree *t, struct entry *mem,
			     struct ckpt_error *err);

/* tree.c: makes room for n more entries at once (slots, order, hash), so
 * that opening a big checkpoint grows nothing; best effort. */
void ckpt_tree_reserve(struct ckpt_tree *t, size_t n);

/* tree.c: gives e its own copy of name (len bytes). */
ckpt_err ckpt_entry_set_name(struct entry *e, const char *name, size_t len);

/* tree.c: appends e to the order and the hash of live entries. */
ckpt_err ckpt_entry_link(struct ckpt_tree *t, struct entry *e,
			 struct ckpt_error *err);

/* tree.c: frees e and what it owns (NULL is a no-op). */
void ckpt_entry_free(struct entry *e);

/* tree.c: the live root entry shown as fname, or NULL. */
struct entry *ckpt_tree_find(struct ckpt_tree *t, const char *fname);

/* tree.c: the root entry of id, or the map entry of a map tensor id with
 * the tensor's index in *sub (-1 for a root entry); NULL if id names
 * nothing (a free slot, a tensor of a file entry). */
struct entry *ckpt_tree_resolve(struct ckpt_tree *t, uint64_t id, int *sub);

/* tree.c: gives e its own copy of dims (n of them, may be 0). */
ckpt_err ckpt_entry_set_dims(struct entry *e, const int64_t *dims, uint32_t n);

/* tree.c: renames live entry e to name (len bytes) shown as fname, both
 * malloc'd and taken over, and rehashes it.  Cannot fail. */
void ckpt_entry_rename(struct ckpt_tree *t, struct entry *e, char *name,
		       size_t len, char *fname);

/* tree.c: inserts e into the order at pos (clipped to the end) and into
 * the hash, and marks it live; the tombs at or after pos move along.
 * Fails (NOMEM) only if the hash must grow, which it need not for an entry
 * that was in the tree just before. */
ckpt_err ckpt_entry_link_at(struct ckpt_tree *t, struct entry *e, size_t pos,
			    struct ckpt_error *err);

/* tree.c: the position of live entry e in the order (linear). */
size_t ckpt_entry_position(const struct ckpt_tree *t, const struct entry *e);

/* tree.c: takes e out of the order and the hash (not live any more); it
 * stays allocated (see ckpt_entry_drop). */
void ckpt_entry_unlink(struct ckpt_tree *t, struct entry *e);

/* tree.c: for an entry that is not live: frees it and gives its id back if
 * no lookup of it is counted; else ckpt_tree_forget does, later. */
void ckpt_entry_drop(struct ckpt_tree *t, struct entry *e);

/* tree.c: counts one lookup of e; atomic, so callers need only the read
 * lock.  The count is 64 bits wide and never saturates. */
void ckpt_entry_count_lookup(struct entry *e);

/* edit.c: CKPT_OK if the tree accepts changes, else CKPT_ERR_READONLY
 * with the message that says why (the only place that says it). */
ckpt_err ckpt_tree_writable(const struct ckpt_tree *t, struct ckpt_error *err);

/* edit.c: takes the write lock and resolves id to a file entry (*out) of
 * a writable tree: CKPT_ERR_READONLY, _NOTFOUND, or _PERM for a map.  The
 * caller unlocks, also on failure. */
ckpt_err ckpt_edit_begin(struct ckpt_tree *t, uint64_t id, struct entry **out,
			 struct ckpt_error *err);

/* edit.c: e changed: its mtime, and the tree's dirty flag unless e is a
 * scratch file.  Under the write lock. */
void ckpt_edit_touch(struct ckpt_tree *t, struct entry *e);

/* scratch.c: parses the ':'-separated globs (NULL: the defaults). */
ckpt_err ckpt_scratch_init(struct ckpt_tree *t, const char *globs,
			   struct ckpt_error *err);
void ckpt_scratch_free(struct ckpt_tree *t);

/* scratch.c: whether e, under its current name, is a scratch file. */
bool ckpt_scratch_match(const struct ckpt_tree *t, const struct entry *e);

/* scratch.c: remembers live entry e (at position pos) as deleted; best
 * effort (nothing is remembered when memory is short). */
void ckpt_tomb_add(struct ckpt_tree *t, const struct entry *e, size_t pos);

/* scratch.c: the tomb named fname, or NULL. */
struct tomb *ckpt_tomb_find(struct ckpt_tree *t, const char *fname);

/* scratch.c: an entry came into the order at pos (by +1) or left it from
 * pos (by -1): the tombs' places move with their neighbours. */
void ckpt_tombs_shift(struct ckpt_tree *t, size_t pos, int by);

/* scratch.c: forgets one tomb / all of them (after a commit). */
void ckpt_tomb_drop(struct ckpt_tree *t, struct tomb *tb);
void ckpt_tombs_clear(struct ckpt_tree *t);

/* stage.c: makes e's bytes live in a staging file.  With copy, the current
 * bytes are copied in first; the file is then sized to e->size. */
ckpt_err ckpt_stage(struct ckpt_tree *t, struct entry *e, bool copy,
		    struct ckpt_error *err);

/* stage.c: where byte off of staged entry e is in its staging file, and
 * in *run how many bytes from there are contiguous in it (UINT64_MAX: all
 * the rest).  Each stored slice of a parameter over 512 MiB starts at its
 * own source offset modulo the block size (see the top of stage.c); bytes
 * past the stored size continue the last slice. */
uint64_t ckpt_stage_pos(const struct entry *e, uint64_t off, uint64_t *run);

/* stage.c: the size of staged entry e whose staging file is end bytes
 * long (the inverse of ckpt_stage_pos at the end). */
uint64_t ckpt_stage_size_at(const struct entry *e, uint64_t end);

/* stage.c: the staging file's size for an entry of size bytes. */
uint64_t ckpt_stage_end(const struct entry *e, uint64_t size);

/* stage.c: e's bytes are no longer staged (its staging file is closed). */
void ckpt_unstage(struct entry *e);

/* stage.c: stages e (copying its bytes) and sizes its staging file to
 * size: truncated or zero-extended; 0 takes a new, empty file (see the top
 * of stage.c).  e->size is the caller's to set.  On failure e is as
 * before. */
ckpt_err ckpt_stage_resize(struct ckpt_tree *t, struct entry *e, uint64_t size,
			   struct ckpt_error *err);

/* pieces.c: the pieces holding [off, off+size) of a file entry e, or of
 * the map tensor mt of src when e is NULL: *pieces (malloc'd) and *count
 * of them, none past the end.  *mem receives a buffer the caller frees
 * (converted bfloat16). */
ckpt_err ckpt_entry_pieces(const struct entry *e, const struct ckpt_file *src,
			   const struct ckpt_tensor *mt, uint64_t off,
			   size_t size, struct ckpt_piece **pieces,
			   uint32_t *count, void **mem, struct ckpt_error *err);

/* pieces.c: copies the bytes of n pieces into buf and their total into
 * *done (EIO for a source shorter than its piece). */
ckpt_err ckpt_pieces_copy(const struct ckpt_piece *p, uint32_t n, void *buf,
			  size_t *done, struct ckpt_error *err);

/* What ckpt_entry_walk calls for each piece; at is the entry offset of its
 * first byte. */
typedef ckpt_err (*ckpt_piece_fn)(void *ctx, const struct ckpt_piece *p,
				  uint64_t at, struct ckpt_error *err);

/* pieces.c: calls fn, in order, for every piece of bytes [off, off+len)
 * of file entry e (len must not pass its size: that is CKPT_ERR_IO), and
 * stops at the first failure, returning it.  Converted buffers are wiped
 * after use. */
ckpt_err ckpt_entry_walk(const struct entry *e, uint64_t off, uint64_t len,
			 ckpt_piece_fn fn, void *ctx, struct ckpt_error *err);

/* meta.c: shown dtype/shape of e as dims; false if they do not fit its
 * size (err explains).  With coerce, a misfit is made to fit instead. */
bool ckpt_entry_dims(const struct entry *e, int64_t *dims, uint32_t *ndims,
		     ckpt_dtype *dt, bool coerce, struct ckpt_error *err);

/* tree.c: closes the retired files no entry refers to any more. */
void ckpt_tree_release_retired(struct ckpt_tree *t);

/* tree.c: (re)initializes e from parameter p of file src: its dims (and,
 * its name) are p's, borrowed.  Cannot fail. */
void ckpt_entry_bind(struct entry *e, const struct ckpt_param *p,
		     struct ckpt_file *src);
/* meta.c: after a commit that does not rebind (encrypted trees), an
 * inferred shape becomes the explicit one the commit wrote, as a rebind
 * would have read it back. */
void ckpt_entry_pin_shape(struct entry *e);

/* meta.c: the dtype and shape e shows: an inherited dtype/shape whose
 * bytes do not fit the size is shown as UInt8 with an inferred shape. */
void ckpt_entry_view(const struct entry *e, struct entry *view);

/* ---- metadata.c -------------------------------------------------------- */

/* The tree's metadata becomes a copy of f's (none for a file without);
 * on failure (NOMEM) it is as before. */
ckpt_err ckpt_tree_meta_load(struct ckpt_tree *t, const struct ckpt_file *f,
			     struct ckpt_error *err);

/* Frees the tree's metadata. */
void ckpt_tree_meta_free(struct ckpt_tree *t);
/* ---- select.c: hidden parameters -------------------------------------- */

/* Hides the entries of the parameters just loaded that the globs do not
 * keep (ckpt_select_keep); called by ckpt_tree_open.  Cannot fail. */
void ckpt_select_apply(struct ckpt_tree *t, const char *const *include,
		       const char *const *exclude);

/* The CKPT_ERR_EXISTS of a create or rename onto hidden entry e. */
ckpt_err ckpt_select_taken(const struct entry *e, struct ckpt_error *err);

/* ---- rebase.c: after a commit ------------------------------------------ */

/* The tree now matches what fd (the committed file; still the caller's)
 * holds: it continues on it (see the top of rebase.c), its tombs are
 * forgotten.  built (taken; may be NULL) is fd's index as the commit's
 * encode built it (struct ckpt_snapshot), used instead of a scan of fd
 * when it is complete.  Cannot fail: when the new file cannot be read
 * back, the tree stays on the old one and stays dirty.  Call with the
 * tree locked for writing. */
void ckpt_tree_rebase(struct ckpt_tree *t, int fd, struct ckpt_file *built);

/* True if a commit of t continues on the file it writes (a plain tree):
 * then the commit's encode may build that file's index for it. */
bool ckpt_tree_rebinds(const struct ckpt_tree *t);

#endif /* CKPT_TREE_INTERNAL_H */
