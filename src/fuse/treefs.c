/*
 * treefs.c - ckptfs -o tree: dotted names shown as directories (see
 * ckptfs.h; the rules of the view are libckpt's, ckpt_view.h, and
 * docs/tree-view.md).  This file: the names, the attributes of the
 * directories, lookups and listings; treefs_ino.c keeps the view and
 * numbers its directories, treefs_edit.c changes names (treefs.h).
 *
 * The view (struct tview) is the sorted index of the paths of the tree's
 * parameters (ckpt_view.h), built at mount and changed with the tree by
 * every change of names.  A path maps to the tree's name by
 * ckpt_view_name (then ckpt_name_escape); a leaf's file name only by
 * ckpt_view_leaf and back by ckpt_view_leaf_parse.  Parameter files keep
 * their tree ids as inodes, so everything but their names is the code of
 * the flat mount; the directories have inodes of their own.
 *
 * Listings: a directory handle holds the children as they were at the
 * listing's start (offset 0), so offsets stay stable while entries are
 * deleted (rm -r) or added; entries of readdirplus carry no lookup.
 *
 * Locking: lookups, attributes and listings take tv->lock for reading
 * (treefs.h).  Nothing is held across a reply.
 */
#include <errno.h>
#include <stdlib.h>

#include "treefs.h"

/* ---- names --------------------------------------------------------------- */

char *tv_join(const char *dir, const char *comp)
{
	size_t d = strlen(dir), c = strlen(comp);
	char *p = malloc(d + c + 2);

	if (!p)
		return NULL;
	memcpy(p, dir, d);
	p[d] = '/';
	memcpy(p + (d ? d + 1 : 0), comp, c + 1);
	return p;
}

int tv_leaf_path(const char *dir, const char *fname, char **path)
{
	char *comp = NULL;
	bool self;
	ckpt_err r = ckpt_view_leaf_parse(fname, &comp, &self);

	*path = NULL;
	if (r)
		return r == CKPT_ERR_NOMEM ? ENOMEM : EINVAL;
	if (self && !*dir)
		return EINVAL; /* the root is no parameter */
	*path = self ? strdup(dir) : tv_join(dir, comp);
	free(comp);
	return *path ? 0 : ENOMEM;
}

int tv_flat_name(const char *path, char **fname)
{
	char *name;
	size_t len;
	ckpt_err r = ckpt_view_name(path, &name, &len);

	*fname = NULL;
	if (r)
		return r == CKPT_ERR_NOMEM ? ENOMEM : EINVAL;
	*fname = ckpt_name_escape(name, len);
	free(name);
	return *fname ? 0 : ENOMEM;
}

/* ---- attributes ---------------------------------------------------------- */

/* Counts a directory's subdirectories (ctx: a size_t). */
static bool count_subdir(void *ctx, const char *comp, size_t clen,
			 enum ckpt_view_kind kind)
{
	(void)comp, (void)clen;
	*(size_t *)ctx += kind == CKPT_VIEW_DIR;
	return true;
}

/* What count_maps counts in. */
struct map_count {
	const struct tview *tv;
	const char *dir;
	size_t n;
};

/* Counts the map parameters among a directory's children (they are
 * directories too), but not one whose path is a directory of the view,
 * counted already (its map is %self inside). */
static bool count_maps(void *ctx, const char *comp, size_t clen,
		       enum ckpt_view_kind kind)
{
	struct map_count *c = ctx;
	char *name = kind == CKPT_VIEW_LEAF ? strndup(comp, clen) : NULL;
	char *path = name ? tv_join(c->dir, name) : NULL;

	if (kind == CKPT_VIEW_SELFLEAF)
		c->n++;
	else if (kind == CKPT_VIEW_LEAF && path &&
		 ckpt_view_kind(c->tv->view, path) == CKPT_VIEW_LEAF)
		c->n++;
	free(path);
	free(name);
	return true;
}

/* Fills st for directory ino at path: the root's mode, the mount's time,
 * size 0 (du -b of a directory: its parameters' bytes), nlink 2 + its
 * subdirectories (map parameters too). */
static void dir_attr(struct ckptfs *fs, fuse_ino_t ino, const char *path,
		     struct stat *st)
{
	struct ckpt_entry_info info = {.kind = CKPT_ENTRY_DIR,
				       .mtime_ns = fs->mount_ns};
	struct shown s;
	struct map_count maps = {.tv = fs->tv, .dir = path};
	size_t n = 0;

	get_shown(fs, &s);
	fill_attr(&s, FUSE_ROOT_ID, &info, st);
	ckpt_view_children(fs->tv->view, path, count_subdir, &n, NULL);
	ckpt_view_children(fs->tv->maps, path, count_maps, &maps, NULL);
	st->st_ino = ino;
	st->st_nlink = (nlink_t)(2 + n + maps.n);
}

bool tv_stat(struct ckptfs *fs, fuse_ino_t ino, struct stat *st)
{
	struct tview *tv = fs->tv;
	const char *path;

	pthread_rwlock_rdlock(&tv->lock);
	path = tv_path_of(tv, ino);
	if (path)
		dir_attr(fs, ino, path, st);
	pthread_rwlock_unlock(&tv->lock);
	return path != NULL;
}

void tv_reply_dir(fuse_req_t req, const char *path)
{
	struct ckptfs *fs = fs_of(req);
	struct fuse_entry_param e = {.attr_timeout = ATTR_TIMEOUT,
				     .entry_timeout = ENTRY_TIMEOUT};

	e.ino = tv_ino_of(fs->tv, path, true);
	if (e.ino)
		dir_attr(fs, e.ino, path, &e.attr);
	pthread_rwlock_unlock(&fs->tv->lock);
	if (!e.ino)
		fuse_reply_err(req, ENOMEM);
	else if (fuse_reply_entry(req, &e) != 0)
		tv_forget(fs, e.ino, 1);
}

/* The id of the parameter at path, one lookup counted; 0 or an errno. */
static int leaf_id(struct ckptfs *fs, const char *path, uint64_t *id)
{
	char *fname;
	int e = tv_flat_name(path, &fname);
	struct ckpt_error err;

	if (e)
		return e;
	if (ckpt_tree_lookup(fs->tree, 0, fname, id, &err) != CKPT_OK)
		e = ckpt_errno(&err);
	free(fname);
	return e;
}

/* tv_find_leaf of the leaf named leaf, shown as fname. */
static int find_as(struct ckptfs *fs, const char *dir, const char *leaf,
		   const char *fname, char **path, uint64_t *id)
{
	struct ckpt_entry_info info;
	int e = tv_leaf_path(dir, leaf, path);

	if (!e &&
	    ckpt_view_kind(fs->tv->view, *path) !=
		    (strcmp(*path, dir) ? CKPT_VIEW_LEAF : CKPT_VIEW_BOTH))
		e = ENOENT;
	if (!e)
		e = leaf_id(fs, *path, id);
	if (!e && fs->npy &&
	    (ckpt_tree_stat(fs->tree, *id, &info, NULL) ||
	     !npy_shows(leaf, &info, fname))) {
		ckpt_tree_forget(fs->tree, *id, 1);
		e = ENOENT;
	}
	if (e) {
		free(*path);
		*path = NULL;
	}
	return e;
}

int tv_find_leaf(struct ckptfs *fs, const char *dir, const char *fname,
		 char **path, uint64_t *id, bool *raw)
{
	char buf[NAME_MAX + 1];
	const char *leaf = fs->npy ? npy_strip(fname, buf) : NULL;
	int e;

	*raw = true;
	if (leaf) {
		e = find_as(fs, dir, leaf, fname, path, id);
		*raw = e == ENOENT || e == EINVAL;
		if (!*raw)
			return e;
	}
	return find_as(fs, dir, fname, fname, path, id);
}

void tv_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ckptfs *fs = fs_of(req);
	struct tview *tv = fs->tv;
	const char *dir;
	char *child = NULL;
	int e = ENOENT;
	uint64_t id;
	bool raw;

	pthread_rwlock_rdlock(&tv->lock);
	dir = tv_path_of(tv, parent);
	if (!dir)
		goto fail;
	child = tv_join(dir, name);
	if (!child) {
		e = ENOMEM;
		goto fail;
	}
	if (strcmp(name, CKPT_VIEW_SELF) != 0 &&
	    tv_is_dir(ckpt_view_kind(tv->view, child))) {
		tv_reply_dir(req, child); /* unlocks */
		free(child);
		return;
	}
	free(child);
	e = tv_find_leaf(fs, dir, name, &child, &id, &raw);
	free(child);
	pthread_rwlock_unlock(&tv->lock);
	if (e)
		fuse_reply_err(req, e == EINVAL ? ENOENT : e);
	else
		reply_entry(req, id);
	return;
fail:
	pthread_rwlock_unlock(&tv->lock);
	fuse_reply_err(req, e);
}

/* ---- listings ------------------------------------------------------------ */

/* A directory's children as a listing found them. */
struct snap {
	size_t n, cap;
	struct snap_ent {
		char *name;
		struct stat st; /* st_ino and the type */
	} * e;
	const char *dir; /* while it is made */
	struct ckptfs *fs;
	bool failed;
};

static void snap_clear(struct snap *sn)
{
	for (size_t i = 0; i < sn->n; i++)
		free(sn->e[i].name);
	free(sn->e);
	sn->e = NULL;
	sn->n = sn->cap = 0;
}

/* The type and inode number a listing shows for the child at path
 * (kind): a directory's node, a parameter's id (a map parameter is a
 * directory); -o npy: its file name *name (malloc'd, its leaf's name)
 * replaced by the one npy_shown_name shows.  False if it is gone, not
 * shown or out of memory. */
static bool child_stat(struct ckptfs *fs, const char *path,
		       enum ckpt_view_kind kind, char **name, struct stat *st)
{
	struct ckpt_entry_info info;
	char buf[NAME_MAX + 1];
	const char *shown;
	uint64_t id;
	bool found;

	memset(st, 0, sizeof(*st));
	if (kind == CKPT_VIEW_DIR) {
		st->st_ino = tv_ino_of(fs->tv, path, false);
		st->st_mode = S_IFDIR;
		return st->st_ino != 0;
	}
	if (leaf_id(fs, path, &id))
		return false;
	found = ckpt_tree_stat(fs->tree, id, &info, NULL) == CKPT_OK;
	ckpt_tree_forget(fs->tree, id, 1);
	st->st_ino = id;
	st->st_mode = found && info.kind == CKPT_ENTRY_DIR ? S_IFDIR : S_IFREG;
	if (!fs->npy)
		return true;
	shown = found ? npy_shown_name(*name, &info, buf) : NULL;
	if (shown && shown != *name) {
		char *s = strdup(shown);
		free(*name);
		*name = s;
		return s != NULL;
	}
	return shown != NULL;
}

/* ckpt_view_children callback: adds a child to the snapshot (ctx). */
static bool snap_add(void *ctx, const char *comp, size_t clen,
		     enum ckpt_view_kind kind)
{
	struct snap *sn = ctx;
	char *c = comp ? strndup(comp, clen) : NULL, *path = NULL;
	struct snap_ent *ent;
	bool self = kind == CKPT_VIEW_SELFLEAF;

	if (!self && !c)
		goto nomem;
	if (sn->n == sn->cap) {
		size_t cap = sn->cap ? sn->cap * 2 : 16;
		struct snap_ent *e = realloc(sn->e, cap * sizeof(*e));
		if (!e)
			goto nomem;
		sn->e = e;
		sn->cap = cap;
	}
	ent = &sn->e[sn->n];
	ent->name = kind == CKPT_VIEW_DIR ? strdup(c) : ckpt_view_leaf(c, self);
	path = self ? strdup(sn->dir) : tv_join(sn->dir, c);
	if (!ent->name || !path)
		goto nomem_ent;
	if (!name_listable(ent->name) ||
	    !child_stat(sn->fs, path,
			kind == CKPT_VIEW_DIR ? kind : CKPT_VIEW_LEAF,
			&ent->name, &ent->st))
		free(ent->name); /* the kernel cannot show it, or it is gone */
	else
		sn->n++;
	free(path);
	free(c);
	return true;
nomem_ent:
	free(ent->name);
nomem:
	free(path);
	free(c);
	sn->failed = true;
	return false;
}

/* Makes the snapshot of directory ino; 0 or an errno. */
static int snap_make(struct ckptfs *fs, fuse_ino_t ino, struct snap *sn)
{
	struct tview *tv = fs->tv;
	int e = 0;

	snap_clear(sn);
	pthread_rwlock_rdlock(&tv->lock);
	sn->dir = tv_path_of(tv, ino);
	sn->fs = fs;
	sn->failed = false;
	if (!sn->dir)
		e = ENOENT;
	else if (ckpt_view_children(tv->view, sn->dir, snap_add, sn, NULL) ||
		 sn->failed)
		e = ENOMEM;
	sn->dir = NULL;
	pthread_rwlock_unlock(&tv->lock);
	return e;
}

void tv_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct snap *sn = calloc(1, sizeof(*sn));

	if (!sn) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)sn;
	if (fuse_reply_open(req, fi) != 0)
		free(sn);
	(void)ino;
}

void tv_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct snap *sn = (struct snap *)(uintptr_t)fi->fh;

	(void)ino;
	if (sn)
		snap_clear(sn);
	free(sn);
	fuse_reply_err(req, 0);
}

/* Adds entry name (offset next) to the reply; false if it is full. */
static bool put_dirent(fuse_req_t req, bool plus, char *buf, size_t size,
		       size_t *used, const char *name, const struct stat *st,
		       off_t next)
{
	struct fuse_entry_param e = {.attr = *st}; /* ino 0: no lookup */
	size_t need = plus ? fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0)
			   : fuse_add_direntry(req, NULL, 0, name, NULL, 0);

	if (*used + need > size)
		return false;
	if (plus)
		fuse_add_direntry_plus(req, buf + *used, size - *used, name, &e,
				       next);
	else
		fuse_add_direntry(req, buf + *used, size - *used, name, st,
				  next);
	*used += need;
	return true;
}

void tv_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi, bool plus)
{
	struct snap *sn = (struct snap *)(uintptr_t)fi->fh;
	struct stat dot = {.st_ino = ino, .st_mode = S_IFDIR};
	size_t used = 0, i;
	char *buf;
	int e;

	if (off == 0 && (e = snap_make(fs_of(req), ino, sn)) != 0) {
		fuse_reply_err(req, e);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* offsets: 1 after ".", 2 after "..", 2 + i + 1 after child i */
	if (off == 0 && !put_dirent(req, plus, buf, size, &used, ".", &dot, 1))
		goto reply;
	dot.st_ino = FUSE_ROOT_ID;
	if (off <= 1 && !put_dirent(req, plus, buf, size, &used, "..", &dot, 2))
		goto reply;
	for (i = off >= 2 ? (size_t)off - 2 : 0; i < sn->n; i++)
		if (!put_dirent(req, plus, buf, size, &used, sn->e[i].name,
				&sn->e[i].st, (off_t)(i + 3)))
			break;
reply:
	fuse_reply_buf(req, buf, used);
	free(buf);
}
