/*
 * treefs.h - what the three files of -o tree share (private to them; the
 * rest of ckptfs calls the tv_ functions of ckptfs.h):
 *
 *   treefs.c       names (path <-> stored name, the leaf file names),
 *                  attributes, lookups and listings of the directories
 *   treefs_ino.c   the view's state: building and freeing it, the
 *                  inode numbers of its directories and their lookups
 *   treefs_edit.c  the changes of names: create, unlink, mkdir, rmdir,
 *                  rename of files and of prefixes
 *
 * Locking (all three): tv->lock (rwlock) guards the view and every
 * directory node's path, taken before the tree's lock; tv->nlock (a
 * mutex inside it) guards the node table and the lookup counts, and is
 * taken only in treefs_ino.c.  Nothing is held across a reply.
 */
#ifndef TREEFS_H
#define TREEFS_H

#include "ckpt_view.h"
#include "ckptfs.h"

struct dnode; /* a directory's inode (treefs_ino.c) */

struct tview {
	pthread_rwlock_t lock;
	struct ckpt_view *view;
	struct ckpt_view *maps; /* the map parameters (directories): fixed */
	pthread_mutex_t nlock;	/* what follows */
	struct dnode **slots;	/* by slot; NULL: free */
	size_t nslots, slotcap; /* slots used so far, room */
	size_t *freed, nfreed;	/* free slots below nslots */
	struct dnode **buckets; /* live nodes by path */
	size_t nbuckets, nlive;
};

/* ---- directory inodes (treefs_ino.c; tv->lock held by the caller) ------ */

/* The path of directory inode ino ("" for the root), stable while
 * tv->lock is held; NULL if it is gone or no directory's. */
const char *tv_path_of(struct tview *tv, fuse_ino_t ino);

/* The inode of directory path, its node made if need be, with a lookup
 * counted when count; 0 if out of memory. */
fuse_ino_t tv_ino_of(struct tview *tv, const char *path, bool count);

/* Directory path is gone (rmdir): its node, if any, dies.  tv->lock held
 * for writing. */
void tv_dir_gone(struct tview *tv, const char *path);

/* The nodes of from and below now belong to to and below; a node of to
 * (an empty directory the move replaced) dies first.  tv->lock held for
 * writing. */
void tv_nodes_move(struct tview *tv, const char *from, const char *to);

/* ---- names and replies (treefs.c) -------------------------------------- */

/* "dir/comp", or comp in the root; malloc'd, NULL if out of memory. */
char *tv_join(const char *dir, const char *comp);

/* The path of the parameter file fname in directory dir (its own
 * parameter for CKPT_VIEW_SELF), malloc'd in *path; 0 or an errno. */
int tv_leaf_path(const char *dir, const char *fname, char **path);

/* The tree's file name (ckpt_name_escape) of the parameter at path,
 * malloc'd in *fname; 0, EINVAL (no name has that path) or ENOMEM. */
int tv_flat_name(const char *path, char **fname);

/* Finds the parameter file shown as fname in directory dir: its path
 * into *path (malloc'd), its id into *id (a lookup counted), and into
 * *raw whether fname is its leaf's name as it is (else -o npy's
 * NAME.npy).  0, ENOENT, EINVAL (no leaf's name) or ENOMEM.  tv->lock
 * held. */
int tv_find_leaf(struct ckptfs *fs, const char *dir, const char *fname,
		 char **path, uint64_t *id, bool *raw);

/* True if a path of kind k is a directory. */
static inline bool tv_is_dir(enum ckpt_view_kind k)
{
	return k == CKPT_VIEW_DIR || k == CKPT_VIEW_BOTH;
}

/* Replies to a lookup or mkdir with the directory at path, counting a
 * lookup of it; tv->lock held (for reading at least), and released. */
void tv_reply_dir(fuse_req_t req, const char *path);

#endif /* TREEFS_H */
