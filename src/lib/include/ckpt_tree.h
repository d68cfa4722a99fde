/*
 * ckpt_tree.h - the editable model of a checkpoint (libckpt).
 *
 * A tree is an ordered list of entries, one per parameter, on top of an
 * open checkpoint.  Untouched entries refer to the checkpoint's extents;
 * the first change to an entry's bytes copies it into a staging file
 * (never into memory), so a 4 GiB tensor can be edited with little RAM.
 * Deletions, renames, new entries and dtype/shape changes are recorded in
 * the list.  ckpt_tree_commit writes the list as a new checkpoint beside the
 * target, fsyncs it, renames it over the target and fsyncs the directory, so
 * the path always holds the complete old or the complete new checkpoint;
 * then the tree continues on the new file (an encrypted tree on the data it
 * holds, which is the new file's plaintext).  A failed commit changes
 * nothing.
 *
 * Entries are named by ids that stay valid across renames and commits; an
 * id is given to a new entry only after its entry was deleted and all its
 * lookups forgotten (see ckpt_tree_forget), as FUSE allows.  A map parameter (MapTensorProto)
 * is an entry of kind DIR whose three tensors have ids id+1..id+3; maps are
 * read-only but always carried over.
 *
 * All functions are thread-safe: reads share a lock, changes and commits
 * take it exclusively, so a commit writes a consistent snapshot.
 */
#ifndef CKPT_TREE_H
#define CKPT_TREE_H

#include <sys/statvfs.h>

#include "ckpt.h"

struct ckpt_tree;

/* ---- ids ---------------------------------------------------------------
 * Every root entry's id is a positive multiple of CKPT_TREE_ID_STEP; the
 * three tensors of a map entry id are id+1 .. id+3.  Ids are never 0 and
 * never 1 (FUSE_ROOT_ID), so a front end can use them as inode numbers. */
#define CKPT_TREE_ID_STEP 4

/* True if id is that of a root entry (not a tensor inside a map). */
static inline bool ckpt_tree_id_is_entry(uint64_t id)
{
	return id % CKPT_TREE_ID_STEP == 0;
}

/* The map entry that map tensor id belongs to. */
static inline uint64_t ckpt_tree_id_map_of(uint64_t id)
{
	return id - id % CKPT_TREE_ID_STEP;
}

/* What a commit does with the crc_num trailer. */
enum ckpt_crc_policy {
	CKPT_CRC_KEEP, /* write one if the source had one */
	CKPT_CRC_ADD,  /* always write one */
	CKPT_CRC_DROP, /* never write one */
};

/* With which key commits are encrypted. */
enum ckpt_out_key_policy {
	CKPT_OUT_KEY_SAME, /* the source's (open.key; none for a plain one) */
	CKPT_OUT_KEY_NEW,  /* out_key */
	CKPT_OUT_KEY_NONE, /* none: written in plain */
};

struct ckpt_tree_opts {
	const char *output;	 /* commit to this path instead of the source */
	const char *staging_dir; /* staging files; NULL: beside the output,
				  * falling back to $TMPDIR or /tmp */
	bool create;		 /* the source may not exist: start empty */
	bool read_only;		 /* refuse every change */
	enum ckpt_crc_policy crc; /* the trailer of commits */
	bool one_shot;		  /* closed right after one commit (ckpt
				  * convert): the output is not reopened */
	/* Commits never start as a clone of the old file (by default one
	 * does where the file system shares blocks: XFS, Btrfs, ...; then
	 * only what changed is written), for debugging and measuring. */
	bool no_reflink;
	const char *scratch; /* scratch-name globs separated by ':'; NULL:
				  * the defaults (see ckpt_tree_is_scratch),
				  * "": none */
	struct ckpt_open_opts open; /* open.key: decrypt with this key */
	/* The key of commits (out_key for CKPT_OUT_KEY_NEW).  Keys must
	 * outlive the tree.  With any key, staging stays in memory. */
	enum ckpt_out_key_policy out_key_policy;
	const struct ckpt_key *out_key;
	/* Called now and then while a commit writes: bytes done of total
	 * (plaintext; first 0 of total, last, if it worked, total of
	 * total), from one thread at a time but not always the same one. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	/* The format commits write: "ckpt" or "safetensors"; NULL: the
	 * source's, or for a new file (create) the target's extension
	 * (ckpt_format_for_path), else ckpt. */
	const char *out_format;
	/* What the output format cannot represent (maps and str in
	 * safetensors) is left out with a warning instead of failing. */
	bool skip_unrepresentable;
	/* Called with a sentence (no newline) a commit wants the user to
	 * know (a name MindSpore cannot load, a parameter left out); NULL:
	 * nobody is told. */
	void (*warn)(void *ctx, const char *msg);
	void *warn_ctx;
	/* Which parameters are shown (see ckpt_select_keep): NULL-terminated
	 * lists of fnmatch(3) globs, or NULL for none.  The others are
	 * hidden (see "selection" below).  Only read by ckpt_tree_open. */
	const char *const *include;
	const char *const *exclude;
};

enum ckpt_entry_kind {
	CKPT_ENTRY_FILE,
	CKPT_ENTRY_DIR
};

/* What stat and the xattrs of an entry show. */
struct ckpt_entry_info {
	enum ckpt_entry_kind kind;
	uint64_t size;
	char dtype[32];	 /* MindSpore spelling (maps: as stored) */
	char shape[256]; /* "[6,1,5,5]" */
	bool shape_explicit;
	bool scratch; /* a scratch file (ckpt_tree_is_scratch) */
	uint64_t mtime_ns;
};

/* One run of bytes to send for a read: len bytes at pos of fd, or, when
 * fd is -1, len bytes at mem. */
struct ckpt_piece {
	int fd;
	const void *mem;
	uint64_t pos;
	size_t len;
};

/* Opens path as an editable tree (see struct ckpt_tree_opts). */
ckpt_err ckpt_tree_open(const char *path, const struct ckpt_tree_opts *opts,
			struct ckpt_tree **out, struct ckpt_error *err);

/* Frees the tree without committing (pending changes are discarded). */
void ckpt_tree_close(struct ckpt_tree *t);

/* NULL if the tree accepts changes, else why not ("-o ro was given",
 * "the checkpoint is not writable", ...). */
const char *ckpt_tree_read_only(const struct ckpt_tree *t);

/* What opening the source found (encryption, CRC, ...), or NULL for a
 * tree that has no file yet.  Valid until the next commit; after a commit
 * of a plain tree it describes the new file, of an encrypted one still the
 * file first opened. */
const struct ckpt_stats *ckpt_tree_source_stats(const struct ckpt_tree *t);

/* Path commits are written to. */
const char *ckpt_tree_target(const struct ckpt_tree *t);

/* True if something changed since the last commit. */
bool ckpt_tree_dirty(struct ckpt_tree *t);

/* Number of root entries. */
size_t ckpt_tree_count(struct ckpt_tree *t);

/* Calls fn with the name, id and description of the entries of directory
 * dir (0 = root, in checkpoint order; or a map entry) from position start
 * on, until fn returns false (the entry was not taken); next is the
 * position after the entry.  With count, each entry fn takes counts one
 * lookup (readdirplus).  fn runs under the read lock and must not call
 * into the tree. */
void ckpt_tree_list(struct ckpt_tree *t, uint64_t dir, size_t start,
		    bool (*fn)(void *ctx, const char *name, uint64_t id,
			       const struct ckpt_entry_info *info, size_t next),
		    void *ctx, bool count);

/* Lookup counts (FUSE's nlookup) live in the entries: ckpt_tree_lookup,
 * ckpt_tree_create and ckpt_tree_list with count add one to each root
 * entry they hand out; ckpt_tree_forget takes n away.  A deleted entry
 * whose count is zero is freed, and its id may later name a new entry.
 * Map tensors (ids id+1..id+3) are not counted: they live with their map.
 * The counts are 64 bits wide, as the kernel's.  Forgetting more than was
 * counted is a caller's bug: an assertion failure in debug builds, and in
 * release builds the count drops to zero.  An id that names nothing is
 * ignored. */
void ckpt_tree_forget(struct ckpt_tree *t, uint64_t id, uint64_t n);

/* Finds name (a shown file name, see ckpt_name_escape) in directory dir
 * (0 = root, or the id of a map entry) and counts one lookup of it.
 * CKPT_ERR_NOTFOUND if there is none. */
ckpt_err ckpt_tree_lookup(struct ckpt_tree *t, uint64_t dir, const char *name,
			  uint64_t *id, struct ckpt_error *err);

/* Describes entry id.  CKPT_ERR_NOTFOUND if it was deleted. */
ckpt_err ckpt_tree_stat(struct ckpt_tree *t, uint64_t id,
			struct ckpt_entry_info *info, struct ckpt_error *err);

/* What ckpt_tree_read_pieces hands the pieces to. */
typedef ckpt_err (*ckpt_pieces_fn)(void *ctx, const struct ckpt_piece *p,
				   uint32_t n, struct ckpt_error *err);

/* Calls fn with the pieces holding bytes [off, off+size) of id (clipped to
 * the size), under the read lock: the descriptors stay valid during fn.
 * Returns fn's result, or CKPT_ERR_NOTFOUND (no such entry), _ISDIR (a
 * map), _CHANGED (its bytes were in a checkpoint modified underneath),
 * _NOMEM or _IO. */
ckpt_err ckpt_tree_read_pieces(struct ckpt_tree *t, uint64_t id, uint64_t off,
			       size_t size, ckpt_pieces_fn fn, void *ctx,
			       struct ckpt_error *err);

/* Copies up to size bytes of id from off into buf and their count into
 * *done (0 at or past the end). */
ckpt_err ckpt_tree_read(struct ckpt_tree *t, uint64_t id, void *buf,
			size_t size, uint64_t off, size_t *done,
			struct ckpt_error *err);

/* Writes all size bytes at off, extending the entry if needed. */
ckpt_err ckpt_tree_write(struct ckpt_tree *t, uint64_t id, const void *buf,
			 size_t size, uint64_t off, struct ckpt_error *err);

/* Sets the byte size of id (truncate or zero-extend). */
ckpt_err ckpt_tree_truncate(struct ckpt_tree *t, uint64_t id, uint64_t size,
			    struct ckpt_error *err);

/* Creates an empty entry (UInt8, shape inferred) at the end, with one
 * lookup counted. */
ckpt_err ckpt_tree_create(struct ckpt_tree *t, const char *name, uint64_t *id,
			  struct ckpt_error *err);

/* Removes the entry named name from the root. */
ckpt_err ckpt_tree_unlink(struct ckpt_tree *t, const char *name,
			  struct ckpt_error *err);

/* Renames from to to, replacing an existing to like rename(2) unless
 * noreplace.  The entry keeps its place in the order. */
ckpt_err ckpt_tree_rename(struct ckpt_tree *t, const char *from, const char *to,
			  bool noreplace, struct ckpt_error *err);

/* Sets the dtype (MindSpore or numpy spelling) or the shape ("6,1,5,5",
 * "[6, 1, 5, 5]", "[]") of id.  CKPT_ERR_INVAL if malformed. */
ckpt_err ckpt_tree_set_dtype(struct ckpt_tree *t, uint64_t id,
			     const char *value, size_t len,
			     struct ckpt_error *err);
ckpt_err ckpt_tree_set_shape(struct ckpt_tree *t, uint64_t id,
			     const char *value, size_t len,
			     struct ckpt_error *err);
/* Makes the shape inferred again (1-D, size / element size). */
ckpt_err ckpt_tree_clear_shape(struct ckpt_tree *t, uint64_t id,
			       struct ckpt_error *err);

/* Makes the next commit write even if nothing changed (ckpt convert). */
void ckpt_tree_mark_dirty(struct ckpt_tree *t);

/* Writes the tree as a new checkpoint at the target (see top of file).
 * Does nothing if nothing changed.  On failure nothing is lost: the target
 * and the tree are as before, and err says why.  One exception: if only
 * the final fsync of the directory fails, the new checkpoint is complete
 * and in place, the tree continues on it (not dirty), the error says so,
 * and the next commit retries that fsync. */
ckpt_err ckpt_tree_commit(struct ckpt_tree *t, struct ckpt_error *err);

/* Closes the checkpoint file the last commit replaced, if the tree still
 * holds it.  That last close of an unlinked file frees its page cache and
 * its blocks (0.3-0.5 s for a 4 GiB checkpoint in the cache), so a front
 * end answers the request that committed first and then calls this; the
 * next commit and ckpt_tree_close do it otherwise.  Takes the tree's lock
 * for a moment; the close itself runs outside it. */
void ckpt_tree_drop_replaced(struct ckpt_tree *t);

/* Writes the pending tree to a new file beside the target (or in $TMPDIR)
 * even if some shapes do not match their data (those entries are written
 * as 1-D tensors), and stores its malloc'd path in *path.  Parameters
 * whose bytes can no longer be read (the checkpoint was modified
 * underneath) are left out: *lost is then a malloc'd list of their names
 * ("a, b, c"), else NULL. */
ckpt_err ckpt_tree_save_recovery(struct ckpt_tree *t, char **path, char **lost,
				 struct ckpt_error *err);

/* ---- metadata: the key -> string map of formats that have one
 * (safetensors' __metadata__), shown on a mount's root as user.metadata.KEY.
 * Int4 markers are the dtype of their tensors, not metadata of their own:
 * never listed nor set here.  crc_num is listed but computed by commits:
 * it cannot be set or removed. */

/* The tree's output format: "ckpt" or "safetensors". */
const char *ckpt_tree_format(const struct ckpt_tree *t);

/* True if the tree's format keeps metadata. */
bool ckpt_tree_has_metadata(const struct ckpt_tree *t);

/* Calls fn with each key and value (a non-string JSON value as its JSON
 * text), in order, under the read lock, until fn returns false. */
void ckpt_tree_meta_list(struct ckpt_tree *t,
			 bool (*fn)(void *ctx, const char *key,
				    const char *value),
			 void *ctx);

/* A malloc'd copy of the value of key in *value.  CKPT_ERR_NOTFOUND if
 * there is no such key. */
ckpt_err ckpt_tree_meta_get(struct ckpt_tree *t, const char *key, char **value,
			    struct ckpt_error *err);

/* Sets key to the string value (len bytes of UTF-8, no NUL), a new key at
 * the end.  CKPT_ERR_UNSUPPORTED for a format without metadata, _PERM for
 * crc_num and the marker of an Int4 tensor, _INVAL for bytes that are not
 * such a string, _READONLY. */
ckpt_err ckpt_tree_meta_set(struct ckpt_tree *t, const char *key,
			    const char *value, size_t len,
			    struct ckpt_error *err);

/* Removes key: CKPT_ERR_NOTFOUND if there is none, else as _set. */
ckpt_err ckpt_tree_meta_remove(struct ckpt_tree *t, const char *key,
			       struct ckpt_error *err);

/* ---- trust: the file underneath, names, owners ------------------------ */

/* True if id is a scratch file: an entry created or renamed in this tree
 * whose name matches a scratch glob (default ".*", "#*#", "*~",
 * "sed??????").  Scratch files are never committed, do not make the tree
 * dirty, and an fsync of one commits nothing. */
bool ckpt_tree_is_scratch(struct ckpt_tree *t, uint64_t id);

/* True if a file created now under the shown name fname would be a
 * scratch file (see ckpt_tree_is_scratch): it matches a scratch glob and
 * names no parameter deleted since the last commit. */
bool ckpt_tree_name_is_scratch(struct ckpt_tree *t, const char *fname);

/* Permission bits (never setuid/setgid/sticky), owner and group of the
 * checkpoint as opened; for a tree without a file yet 0644 and the
 * caller's ids. */
void ckpt_tree_owner(const struct ckpt_tree *t, mode_t *mode, uid_t *uid,
		     gid_t *gid);

/* CKPT_OK if the checkpoint file is as it was opened (or last committed)
 * and its path still names it, else CKPT_ERR_CHANGED with a message that
 * says what happened and what to do. */
ckpt_err ckpt_tree_check_source(struct ckpt_tree *t, struct ckpt_error *err);

/* Makes the next commit replace whatever file the target path holds now,
 * even one that replaced the checkpoint underneath (ckpt umount --force). */
void ckpt_tree_force(struct ckpt_tree *t);

/* statfs of the target's directory, through the descriptor opened at
 * ckpt_tree_open (never a path, which may lead into our own mount). */
ckpt_err ckpt_tree_statfs(struct ckpt_tree *t, struct statvfs *sv,
			  struct ckpt_error *err);

/* A warning about the source for the user at open (a name stored twice,
 * ...), or NULL. */
const char *ckpt_tree_warning(const struct ckpt_tree *t);

/* ---- selection and renaming (select.c) --------------------------------
 * A parameter of the checkpoint that the include/exclude globs of the
 * options do not keep is hidden: ckpt_tree_list does not show it,
 * ckpt_tree_lookup does not find it (nor does any function given its
 * id), ckpt_tree_count does not count it, it cannot be deleted or
 * renamed, and creating or renaming an entry onto its name fails with
 * CKPT_ERR_EXISTS.  It keeps its place in the order and every commit
 * writes it unchanged.  The selection is made once, at open, on the
 * parameters of the file: entries created later are shown whatever
 * their names. */

/* True if the parameter stored as name (up to a NUL byte in it) is kept:
 * it matches some glob of include (or include is NULL or empty) and none
 * of exclude (NULL: none); fnmatch(3) without flags, so '*' also matches
 * '/' and '.'. */
bool ckpt_select_keep(const char *const *include, const char *const *exclude,
		      const char *name);

/* Number of hidden parameters. */
size_t ckpt_tree_hidden_count(struct ckpt_tree *t);

/* Removes the hidden parameters from the tree, as deletions: the next
 * commit leaves them out (ckpt convert --exclude).  CKPT_ERR_READONLY if
 * the tree refuses changes. */
ckpt_err ckpt_tree_drop_hidden(struct ckpt_tree *t, struct ckpt_error *err);

/* What ckpt_tree_rename_all asks for each entry: the new stored name of
 * the entry stored as name (len bytes, NUL-terminated) in *out, malloc'd
 * and NUL-terminated (taken over), or NULL to keep it.  Any other result
 * than CKPT_OK stops the renaming, with the message fn put in err (its
 * code and msg), else one made from the code. */
typedef ckpt_err (*ckpt_rename_fn)(void *ctx, const char *name, size_t len,
				   char **out, struct ckpt_error *err);

/* Renames every shown entry (not the hidden ones, not scratch files) at
 * once, as fn says.  All new names are computed and checked first: a
 * name that two entries would share (a renamed one and another, renamed
 * or not, hidden or not) is CKPT_ERR_EXISTS with a message naming both
 * and the name; an empty name, one that is not UTF-8 or longer than
 * CKPT_NAME_MAX is CKPT_ERR_INVAL; renaming a map parameter is
 * CKPT_ERR_UNSUPPORTED.  On any failure nothing is renamed.  Entries keep
 * their places; the old names are not remembered as deleted parameters
 * (meant for a one-shot tree: ckpt convert --rename). */
ckpt_err ckpt_tree_rename_all(struct ckpt_tree *t, ckpt_rename_fn fn, void *ctx,
			      struct ckpt_error *err);

/* Renames every shown entry whose stored name is from or lies under it
 * (ckpt_view_under: whole components) by putting to in place of from
 * (the rename of a directory of the tree view, ckpt_view.h), in one step:
 * scratch files too, hidden parameters stay as they are.  CKPT_ERR_INVAL
 * if to is from or lies under it, _NOTEMPTY if an entry that does not
 * move (hidden or not) is named to or lies under it; else as
 * ckpt_tree_rename_all (_EXISTS, _INVAL, _UNSUPPORTED for a map
 * parameter), and on any failure nothing is renamed.  Nothing under
 * from: nothing happens.  Entries keep their places. */
ckpt_err ckpt_tree_rename_prefix(struct ckpt_tree *t, const char *from,
				 const char *to, struct ckpt_error *err);

#endif /* CKPT_TREE_H */
