/*
 * replace.h - putting a written checkpoint or recovery file in place
 * (replace.c), and checking first that the target is still ours.
 */
#ifndef CKPT_REPLACE_H
#define CKPT_REPLACE_H

#include "tree_internal.h"

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
ckpt_err ckpt_link_recovery(struct ckpt_tree *t, int fd, int dirfd,
			    char **path, struct ckpt_error *err);

#endif /* CKPT_REPLACE_H */
