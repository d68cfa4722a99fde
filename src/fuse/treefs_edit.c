/*
 * treefs_edit.c - -o tree: the changes of names in the directories of the
 * view (treefs.h, docs/tree-view.md): create and unlink of parameter
 * files, mkdir and rmdir of directories that exist only in the mount,
 * rename of a file (one parameter) and of a directory (a prefix: every
 * parameter under it at once, ckpt_tree_rename_prefix).
 *
 * Every change of names goes through this file while the view lock is
 * held for writing: the tree's change and the view's happen together.
 * What the view needs to undo a change is allocated before the tree
 * changes; a move of a directory that the tree refuses is moved back.
 * Map parameters never move (the tree refuses a prefix holding one).
 *
 * Locking: tv->lock for writing from begin_change to end_change, around
 * the tree's calls (treefs.h).  The caller replies.
 */
#include <errno.h>
#include <stdlib.h>
#include <syslog.h>

#include "treefs.h"

/* ---- names of directories ------------------------------------------------ */

/* The stored name of the directory at path in *name: 0, EINVAL if it
 * cannot be a directory (a name below it would not split there) or holds
 * a NUL byte, ENOMEM. */
static int prefix_name(const char *path, char **name)
{
	char *probe = tv_join(path, "x"), *below = NULL;
	size_t len;
	ckpt_err r;

	*name = NULL;
	if (!*path)
		return EINVAL; /* the root */
	if (!probe)
		return ENOMEM;
	r = ckpt_view_name(probe, &below, &len);
	free(probe);
	if (r)
		return r == CKPT_ERR_NOMEM ? ENOMEM : EINVAL;
	if (strlen(below) != len) { /* a NUL byte: no C string names it */
		free(below);
		return EINVAL;
	}
	below[len - 2] = '\0'; /* "path.x" */
	*name = below;
	return 0;
}

/* ---- changes ------------------------------------------------------------- */

/* The errno of a view's refusal. */
static int view_errno(ckpt_err r)
{
	struct ckpt_error err = {.code = r};

	return ckpt_errno(&err);
}

/* Takes tv->lock for writing and finds directory parent's path; NULL
 * (unlocked, *e set) if it is gone or the tree is read-only. */
static const char *begin_change(struct ckptfs *fs, fuse_ino_t parent, int *e)
{
	const char *dir;

	pthread_rwlock_wrlock(&fs->tv->lock);
	dir = tv_path_of(fs->tv, parent);
	*e = !dir ? ENOENT : ckpt_tree_read_only(fs->tree) ? EROFS : 0;
	if (!*e)
		return dir;
	pthread_rwlock_unlock(&fs->tv->lock);
	return NULL;
}

static void end_change(struct ckptfs *fs)
{
	pthread_rwlock_unlock(&fs->tv->lock);
}

/* The path (malloc'd) and the tree's name of the leaf named leaf in dir
 * into *path and *tname, or NULLs if leaf is NULL or no leaf's name; 0
 * or ENOMEM. */
static int leaf_names(const char *dir, const char *leaf, char **path,
		      char **tname)
{
	int e = EINVAL;

	*path = *tname = NULL;
	if (leaf)
		e = tv_leaf_path(dir, leaf, path);
	if (!e)
		e = tv_flat_name(*path, tname);
	if (e) {
		free(*path);
		*path = NULL;
	}
	return e == ENOMEM ? ENOMEM : 0;
}

/* The path of a new file fname in dir into *path: its leaf's, or with
 * -o npy npy_new_pick's choice, fname as it is for a scratch name (*raw)
 * or the leaf NAME of NAME.npy.  0 or an errno. */
static int pick_leaf(struct ckptfs *fs, const char *dir, const char *fname,
		     char **path, bool *raw)
{
	char buf[NAME_MAX + 1], *rpath, *rname, *spath = NULL, *sname = NULL;
	const char *pick = NULL;
	int e;

	*raw = true;
	if (!fs->npy)
		return tv_leaf_path(dir, fname, path);
	*path = NULL;
	e = leaf_names(dir, fname, &rpath, &rname);
	if (!e)
		e = leaf_names(dir, npy_strip(fname, buf), &spath, &sname);
	if (!e)
		pick = npy_new_pick(fs, fname, rname, sname);
	if (!e && !pick)
		e = EINVAL;
	if (pick && pick == rname) {
		*path = rpath;
		rpath = NULL;
	} else if (pick) {
		*path = spath;
		spath = NULL;
		*raw = false;
	}
	free(rpath);
	free(spath);
	free(rname);
	free(sname);
	return e;
}

/* What the new parameter file fname in directory dir (a create, a
 * rename's target) is: its path in *path (pick_leaf, *raw) and true if it
 * exists (a plain child a LEAF, its own parameter when the directory is
 * also one); 0 or an errno (EISDIR: a directory). */
static int new_leaf(struct ckptfs *fs, const char *dir, const char *fname,
		    char **path, bool *exists, bool *raw)
{
	enum ckpt_view_kind k;
	bool self;
	int e = pick_leaf(fs, dir, fname, path, raw);

	if (e)
		return e;
	self = strcmp(*path, dir) == 0;
	k = ckpt_view_kind(fs->tv->view, *path);
	*exists = self ? k == CKPT_VIEW_BOTH : k == CKPT_VIEW_LEAF;
	return !self && tv_is_dir(k) ? EISDIR : 0;
}

/* The path of the parameter file shown as fname in dir (tv_find_leaf,
 * *raw), which must be id only unless it is 0; 0 or an errno. */
static int old_leaf(struct ckptfs *fs, const char *dir, const char *fname,
		    uint64_t only, char **path, bool *raw)
{
	uint64_t id;
	int e = tv_find_leaf(fs, dir, fname, path, &id, raw);

	if (e)
		return e;
	ckpt_tree_forget(fs->tree, id, 1);
	if (!only || id == only)
		return 0;
	free(*path);
	*path = NULL;
	return ENOENT;
}

int tv_create(struct ckptfs *fs, fuse_ino_t parent, const char *name,
	      uint64_t *id)
{
	struct ckpt_error err;
	char *path = NULL, *fname = NULL;
	bool exists, raw;
	int e;
	const char *dir = begin_change(fs, parent, &e);

	if (!dir)
		return e;
	e = new_leaf(fs, dir, name, &path, &exists, &raw);
	if (!e && exists)
		e = EEXIST;
	if (!e)
		e = tv_flat_name(path, &fname);
	if (!e && (ckpt_view_prepare_remove(fs->tv->view, path, NULL) ||
		   ckpt_view_add(fs->tv->view, path, NULL)))
		e = ENOMEM;
	if (!e && ckpt_tree_create(fs->tree, fname, id, &err)) {
		ckpt_view_remove(fs->tv->view, path, NULL); /* cannot fail */
		e = ckpt_errno(&err);
	}
	end_change(fs);
	free(fname);
	free(path);
	return e;
}

int tv_unlink(struct ckptfs *fs, fuse_ino_t parent, const char *name,
	      uint64_t id)
{
	struct ckpt_error err;
	char *path = NULL, *fname = NULL;
	bool raw;
	int e;
	const char *dir = begin_change(fs, parent, &e);

	if (!dir)
		return e;
	e = old_leaf(fs, dir, name, id, &path, &raw);
	if (!e)
		e = tv_flat_name(path, &fname);
	if (!e && ckpt_view_prepare_remove(fs->tv->view, path, NULL))
		e = ENOMEM;
	if (!e && ckpt_tree_unlink(fs->tree, fname, &err))
		e = ckpt_errno(&err);
	if (!e)
		ckpt_view_remove(fs->tv->view, path, NULL); /* cannot fail */
	end_change(fs);
	free(fname);
	free(path);
	return e;
}

void tv_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ckptfs *fs = fs_of(req);
	char *path = NULL, *prefix = NULL;
	int e;
	const char *dir = begin_change(fs, parent, &e);

	if (!dir) {
		fuse_reply_err(req, e);
		return;
	}
	path = tv_join(dir, name);
	e = path ? prefix_name(path, &prefix) : ENOMEM;
	if (!e)
		e = view_errno(ckpt_view_mkdir(fs->tv->view, path, NULL));
	free(prefix);
	if (e)
		end_change(fs);
	else
		tv_reply_dir(req, path); /* unlocks */
	if (e)
		fuse_reply_err(req, e);
	free(path);
}

int tv_rmdir(struct ckptfs *fs, fuse_ino_t parent, const char *name)
{
	char *path;
	enum ckpt_view_kind k;
	int e;
	const char *dir = begin_change(fs, parent, &e);

	if (!dir)
		return e;
	path = tv_join(dir, name);
	k = path ? ckpt_view_kind(fs->tv->view, path) : CKPT_VIEW_NONE;
	if (!path)
		e = ENOMEM;
	else if (k == CKPT_VIEW_NONE)
		e = ENOENT;
	else if (k == CKPT_VIEW_LEAF || !strcmp(name, CKPT_VIEW_SELF))
		e = ENOTDIR;
	else
		e = view_errno(ckpt_view_rmdir(fs->tv->view, path, NULL));
	if (!e) {
		tv_dir_gone(fs->tv, path);
	}
	end_change(fs);
	free(path);
	return e;
}

/* Renames the parameter file at from to the one at to (to_exists: it is
 * replaced); 0 or an errno.  tv->lock held for writing. */
static int rename_leaf(struct ckptfs *fs, const char *from, const char *to,
		       bool to_exists, bool noreplace)
{
	struct ckpt_view *v = fs->tv->view;
	struct ckpt_error err;
	char *ffrom = NULL, *fto = NULL;
	int e = tv_flat_name(from, &ffrom);

	if (!e)
		e = tv_flat_name(to, &fto);
	if (!e && (ckpt_view_prepare_remove(v, from, NULL) ||
		   ckpt_view_prepare_remove(v, to, NULL) ||
		   (!to_exists && ckpt_view_add(v, to, NULL))))
		e = ENOMEM;
	if (!e && ckpt_tree_rename(fs->tree, ffrom, fto, noreplace, &err)) {
		if (!to_exists) /* cannot fail: prepared */
			ckpt_view_remove(v, to, NULL);
		e = ckpt_errno(&err);
	}
	if (!e)
		ckpt_view_remove(v, from, NULL); /* cannot fail */
	free(ffrom);
	free(fto);
	return e;
}

/* Moves the directory at from to to, which is none or an empty directory
 * (replaced, unless noreplace); 0 or an errno.  tv->lock held for
 * writing. */
static int rename_dir(struct ckptfs *fs, const char *from, const char *to,
		      bool noreplace)
{
	struct ckpt_view *v = fs->tv->view;
	enum ckpt_view_kind k = ckpt_view_kind(v, to);
	struct ckpt_error err;
	char *pfrom = NULL, *pto = NULL;
	int e = prefix_name(from, &pfrom);

	if (!e)
		e = prefix_name(to, &pto);
	if (!e && k == CKPT_VIEW_LEAF)
		e = ENOTDIR;
	else if (!e && k != CKPT_VIEW_NONE && noreplace)
		e = EEXIST;
	if (!e)
		e = view_errno(ckpt_view_move(v, from, to, NULL));
	if (!e && ckpt_tree_rename_prefix(fs->tree, pfrom, pto, &err)) {
		e = ckpt_errno(&err);
		if (ckpt_view_move(v, to, from, NULL) ||
		    (k == CKPT_VIEW_DIR && ckpt_view_mkdir(v, to, NULL)))
			logmsg(LOG_ERR,
			       "-o tree: out of memory: the view "
			       "of %s may show it wrong until "
			       "the next mount",
			       to);
	}
	if (!e)
		tv_nodes_move(fs->tv, from, to);
	free(pfrom);
	free(pto);
	return e;
}

int tv_rename(struct ckptfs *fs, fuse_ino_t parent, const char *name,
	      fuse_ino_t newparent, const char *newname, bool noreplace)
{
	const char *dir, *newdir;
	char *from = NULL, *to = NULL;
	bool self = !strcmp(name, CKPT_VIEW_SELF), from_raw, to_raw, to_exists;
	int e;

	dir = begin_change(fs, parent, &e);
	if (!dir)
		return e;
	newdir = tv_path_of(fs->tv, newparent);
	from = tv_join(dir, name);
	if (!newdir)
		e = ENOENT;
	else if (!from)
		e = ENOMEM;
	else if (!self && tv_is_dir(ckpt_view_kind(fs->tv->view, from))) {
		to = tv_join(newdir, newname);
		e = !to				       ? ENOMEM
		    : !strcmp(newname, CKPT_VIEW_SELF) ? ENOTDIR
		    : strcmp(from, to) ? rename_dir(fs, from, to, noreplace)
				       : 0;
	} else {
		free(from);
		e = old_leaf(fs, dir, name, 0, &from, &from_raw);
		if (!e)
			e = new_leaf(fs, newdir, newname, &to, &to_exists,
				     &to_raw);
		if (!e && fs->npy)
			e = npy_rename_check(name, from_raw, newname, to_raw);
		if (!e && strcmp(from, to) != 0)
			e = rename_leaf(fs, from, to, to_exists, noreplace);
	}
	end_change(fs);
	free(from);
	free(to);
	return e;
}
