/*
 * nameops.c - the FUSE requests on names of ckptfs: mknod, unlink,
 * rename, and the refusals of what a checkpoint cannot hold (directories
 * outside -o tree, symbolic and hard links); with -o tree they go to the
 * view (treefs_edit.c), with -o npy the names are NAME.npy (npyname.c).
 * create, which also opens, is in ops.c.
 *
 * Only the root holds parameters that can change (with -o tree every
 * directory of the view); map parameters are read-only.  Nothing is
 * committed here (control.c).  No locks of its own: the tree's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>

#include "ckptfs.h"

/* A new parameter in the root, regular files only (EPERM otherwise). */
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	      dev_t rdev)
{
	struct ckpt_error err;
	char buf[NAME_MAX + 1];
	uint64_t id;

	int e;

	(void)rdev;
	if (S_ISREG(mode) && fs_of(req)->tv && tv_dir_ino(parent)) {
		e = tv_create(fs_of(req), parent, name, &id);
		if (e)
			fuse_reply_err(req, e);
		else
			reply_entry(req, id);
		return;
	}
	if (!S_ISREG(mode) || parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!name_fits(req, name) ||
	    (fs_of(req)->npy && !(name = npy_new_name(req, name, buf))))
		return;
	if (ckpt_tree_create(fs_of(req)->tree, name, &id, &err))
		reply_fail(req, &err);
	else
		reply_entry(req, id);
}

/* Refused: the parameter list is flat; with -o tree an empty directory
 * of the view (only in the mount until a file is made in it). */
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)mode;
	if (fs_of(req)->tv && tv_dir_ino(parent))
		tv_mkdir(req, parent, name);
	else
		fuse_reply_err(req, EPERM); /* the parameter list is flat */
}

/* Refused: a checkpoint has no links. */
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		const char *name)
{
	(void)link, (void)parent, (void)name;
	fuse_reply_err(req, EPERM);
}

/* Refused: a checkpoint has no links. */
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
	     const char *name)
{
	(void)ino, (void)parent, (void)name;
	fuse_reply_err(req, EPERM);
}

/* Deletes a parameter of the root (EPERM in a map parameter). */
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ckpt_error err;
	char buf[NAME_MAX + 1];

	if (fs_of(req)->tv && tv_dir_ino(parent)) {
		fuse_reply_err(req, tv_unlink(fs_of(req), parent, name, 0));
		return;
	}
	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (fs_of(req)->npy &&
	    !(name = npy_lookup_name(fs_of(req), name, buf))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (ckpt_tree_unlink(fs_of(req)->tree, name, &err))
		reply_fail(req, &err);
	else
		fuse_reply_err(req, 0);
}

/* Refused: map parameters are read-only; with -o tree an empty directory
 * of the view goes. */
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (fs_of(req)->tv && tv_dir_ino(parent))
		fuse_reply_err(req, tv_rmdir(fs_of(req), parent, name));
	else
		fuse_reply_err(req, EPERM); /* map parameters are read-only */
}

/* -o npy: the tree's names of a rename from name to newname into from
 * and to (buffers of NAME_MAX + 1); false after a reply: from is not
 * shown (ENOENT), newname not a name a file can have, or a raw scratch
 * file would become a parameter (EINVAL, logged: its bytes would be
 * the data behind a header). */
static bool npy_rename_names(fuse_req_t req, const char **name, char *from,
			     const char **newname, char *to)
{
	const char *f = npy_lookup_name(fs_of(req), *name, from);
	const char *t;
	int e;

	if (!f) {
		fuse_reply_err(req, ENOENT);
		return false;
	}
	t = npy_new_name(req, *newname, to);
	if (!t)
		return false;
	e = npy_rename_check(*name, f == *name, *newname, t == *newname);
	if (e) {
		fuse_reply_err(req, e);
		return false;
	}
	*name = f;
	*newname = t;
	return true;
}

/* Renames within the root (RENAME_NOREPLACE honoured, other flags
 * EINVAL); the entry keeps its place in the order.  With -o tree, between
 * any directories of the view (treefs.c). */
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;
	char from[NAME_MAX + 1], to[NAME_MAX + 1];

	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (fs->tv && tv_dir_ino(parent) && tv_dir_ino(newparent)) {
		fuse_reply_err(req,
			       tv_rename(fs, parent, name, newparent, newname,
					 flags & RENAME_NOREPLACE));
		return;
	}
	if (parent != FUSE_ROOT_ID || newparent != FUSE_ROOT_ID) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!name_fits(req, newname) ||
	    (fs->npy && !npy_rename_names(req, &name, from, &newname, to)))
		return;
	if (ckpt_tree_rename(fs->tree, name, newname, flags & RENAME_NOREPLACE,
			     &err))
		reply_fail(req, &err);
	else
		fuse_reply_err(req, 0);
}
