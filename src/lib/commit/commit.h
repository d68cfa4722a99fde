/*
 * commit.h - writing a tree as a new file: the orchestration (commit.c),
 * the O_DIRECT writer (dio.c), and putting the written file in place
 * (replace.c).
 */
#ifndef CKPT_COMMIT_H
#define CKPT_COMMIT_H

#include "tree/tree.h"

/* A file written front to back with O_DIRECT by a thread of its own
 * (dio.c): the caller fills one chunk while the previous one is written. */
struct ckpt_dio;

/* Switches fd to O_DIRECT and starts the writer, which will write the file
 * from offset 0.  NULL when the file system has no direct I/O, or memory
 * or a thread is short: then write through the page cache instead. */
struct ckpt_dio *ckpt_dio_start(int fd);

/* Where the next bytes go: *room (> 0) bytes free at the returned pointer,
 * valid until the next ckpt_dio_fill. */
uint8_t *ckpt_dio_room(struct ckpt_dio *d, size_t *room);

/* Appends the n (<= room) bytes just put at ckpt_dio_room's pointer; a full
 * chunk goes to the writer.  0, or -1 with errno and *at (the offset of
 * the chunk) of the first failed write. */
int ckpt_dio_fill(struct ckpt_dio *d, size_t n, uint64_t *at);

/* Waits for the writer and writes the rest through the page cache.  0, or
 * -1 with errno and *at as ckpt_dio_fill.  The data is not yet durable. */
int ckpt_dio_finish(struct ckpt_dio *d, uint64_t *at);

/* Stops the writer, waiting for a write in progress, and frees d (NULL is
 * allowed).  Call before closing the fd. */
void ckpt_dio_free(struct ckpt_dio *d);

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

#endif /* CKPT_COMMIT_H */
