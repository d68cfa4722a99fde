/*
 * commit.h - writing a tree as a new file: the orchestration (commit.c),
 * recovery files (recovery.c), putting the written file in place
 * (replace.c).  Where the bytes go is behind the sinks of sink.h.
 *
 * Everything here is called with the tree locked for writing (the public
 * entry points take the lock).  Nothing here knows a file format: the
 * tree's format module (format.h) encodes, a sink writes.
 */
#ifndef CKPT_COMMIT_H
#define CKPT_COMMIT_H

#include "tree/tree.h"

/* What every failed commit says, and it is true: nothing was replaced and
 * the tree holds every edit still.  Appended to the messages. */
#define CKPT_EDITS_KEPT "the original is untouched and all edits are kept"

/* sink.c: fills err with "writing the new checkpoint PATH failed (WHAT
 * [at offset AT]): <errno>; " CKPT_EDITS_KEPT; at may be NULL.  Returns
 * CKPT_ERR_IO. */
ckpt_err ckpt_write_failed(struct ckpt_error *err, const char *path,
			   const char *what, const uint64_t *at);

/* What a new file holds: every live, non-scratch entry of the tree in
 * order, except those keep (if set) refuses. */
struct ckpt_write_opts {
	/* a recovery file: shapes that do not fit their bytes are made to
	 * fit, empty parameters are left out, no checksum is added */
	bool recovery;
	bool (*keep)(void *ctx, const struct entry *e);
	void *keep_ctx;
	/* if set, the index of the new file is built here (struct
	 * ckpt_snapshot's index) */
	struct ckpt_file *index;
};

/* What snapshot.c describes to a format: tree t, locked for writing,
 * as o selects it. */
struct ckpt_tree_view {
	const struct ckpt_tree *t;
	const struct ckpt_write_opts *o;
	const size_t *perm; /* the order's positions in the order to write
			     * (NULL: the order itself) */
};

/* snapshot.c: s describes view v (which must outlive s) to a format's
 * encode; the checksum as the tree asks, or as its file had one, never in
 * a recovery file or an encrypted one. */
void ckpt_snapshot_of(const struct ckpt_tree_view *v, struct ckpt_snapshot *s);

/* commit.c: writes tree t into fd (new and empty) from offset 0: its
 * format encodes what o selects into the sink the tree needs (encrypted,
 * O_DIRECT, or through the page cache), with progress.  Syncs nothing.
 * On failure fd holds garbage and the tree is unchanged. */
ckpt_err ckpt_commit_write(struct ckpt_tree *t, int fd,
			   const struct ckpt_write_opts *o,
			   struct ckpt_error *err);

/* Creates the file a commit writes, readable and writable, in dirfd:
 * unnamed (O_TMPFILE), or where the filesystem has none named
 * ".BASE.ckptfs-tmp-XXXXXXXX" (the name is then left in tmpname, else
 * tmpname is ""). Returns the descriptor or -1 with errno. */
int ckpt_out_create(int dirfd, const char *base, char *tmpname, size_t size);

/* CKPT_OK if a commit may replace the target: the checkpoint's bytes are
 * unchanged, and the target path names the pinned file (or, with none
 * pinned, nothing) unless forced; else CKPT_ERR_CHANGED saying what
 * happened and what to do.  Call with the tree locked. */
ckpt_err ckpt_tree_check_target(struct ckpt_tree *t, struct ckpt_error *err);

/* Puts the complete file fd (from ckpt_out_create, with tmp its name or
 * "") in place of the target: mode and owner of the replaced file, fsync,
 * the check above again, a name, the writer lock on a new descriptor of
 * it (*lfd, which the caller owns when it is set), then the exchange (see
 * the top of replace.c) and the directory fsync.  On failure the target
 * is as it was, unless *in_place is set: then only the directory fsync
 * failed. */
ckpt_err ckpt_replace_target(struct ckpt_tree *t, int fd, const char *tmp,
			     bool *in_place, int *lfd, struct ckpt_error *err);

/* After a commit: fd (owned from here on) is the pinned, locked file. */
void ckpt_repin(struct ckpt_tree *t, int fd);

/* Links the complete unnamed recovery file fd into dirfd (the target's
 * directory or $TMPDIR) under a fresh name, mode 0600, and stores its
 * malloc'd path in *path. */
ckpt_err ckpt_link_recovery(struct ckpt_tree *t, int fd, int dirfd, char **path,
			    struct ckpt_error *err);

#endif /* CKPT_COMMIT_H */
