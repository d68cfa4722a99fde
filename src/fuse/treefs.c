/*
 * treefs.c - ckptfs -o tree: dotted names shown as directories (see
 * ckptfs.h; the rules of the view are libckpt's, ckpt_view.h, and
 * docs/tree-view.md).
 *
 * Inodes.  A parameter's file keeps its tree id as inode number, as
 * without -o tree, so reads, writes, attributes and xattrs of files are
 * the same code.  The directories (the prefixes) are numbered apart:
 * DIR_INO_BIT | slot, and no tree id ever has that bit set (ids are
 * multiples of CKPT_TREE_ID_STEP counted from the entries a tree holds);
 * the root is FUSE_ROOT_ID, the directory "".  A directory's node keeps
 * its inode number while its path is a directory, also when nothing looks
 * it up (so readdir can give the number stat gives), follows it through
 * moves, and dies when the directory is removed or replaced; a dead node
 * is freed once the kernel forgot every lookup of it (its number is then
 * reused), and a lookup of its old path gets a new node.
 *
 * Every change of names goes through this file while the view lock is
 * held for writing: the tree's change and the view's happen together.
 * What the view needs to undo a change is allocated before the tree
 * changes; a move of a directory that the tree refuses is moved back.
 *
 * Map parameters are leaves of the view that are directories; they never
 * move (the tree refuses), so they are listed once more, apart (tv->maps),
 * to count them in their directory's link count.
 *
 * Listings: a directory handle holds the children as they were at the
 * listing's start (offset 0), so offsets stay stable while entries are
 * deleted (rm -r) or added; entries of readdirplus carry no lookup.
 *
 * Locking: tv->lock (rwlock) guards the view and every node's path,
 * taken before the tree's lock; tv->nlock (a mutex inside it) guards the
 * node table and the lookup counts.  Nothing is held across a reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "ckpt_view.h"
#include "ckptfs.h"

#define DIR_INO_BIT (1ull << 63)

/* A directory's inode. */
struct dnode {
	char *path;	  /* NULL once dead */
	uint64_t nlookup; /* the kernel's lookups */
	size_t slot;	  /* its inode is DIR_INO_BIT | slot */
	struct dnode *hnext;
};

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

bool tv_dir_ino(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID || (ino & DIR_INO_BIT);
}

/* ---- the node table (tv->nlock held) ----------------------------------- */

static size_t path_hash(const char *s)
{
	size_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* Doubles the buckets; false if out of memory (the table still works). */
static bool rehash(struct tview *tv)
{
	size_t n = tv->nbuckets ? tv->nbuckets * 2 : 64;
	struct dnode **b = calloc(n, sizeof(*b));

	if (!b)
		return false;
	for (size_t i = 0; i < tv->nbuckets; i++) {
		while (tv->buckets[i]) {
			struct dnode *d = tv->buckets[i];
			tv->buckets[i] = d->hnext;
			d->hnext = b[path_hash(d->path) % n];
			b[path_hash(d->path) % n] = d;
		}
	}
	free(tv->buckets);
	tv->buckets = b;
	tv->nbuckets = n;
	return true;
}

static struct dnode *node_find(struct tview *tv, const char *path)
{
	struct dnode *d;

	if (!tv->nbuckets)
		return NULL;
	d = tv->buckets[path_hash(path) % tv->nbuckets];
	while (d && strcmp(d->path, path) != 0)
		d = d->hnext;
	return d;
}

static void node_hash(struct tview *tv, struct dnode *d)
{
	size_t b = path_hash(d->path) % tv->nbuckets;

	d->hnext = tv->buckets[b];
	tv->buckets[b] = d;
	tv->nlive++;
}

static void node_unhash(struct tview *tv, struct dnode *d)
{
	struct dnode **p = &tv->buckets[path_hash(d->path) % tv->nbuckets];

	while (*p != d)
		p = &(*p)->hnext;
	*p = d->hnext;
	tv->nlive--;
}

/* A free slot for d; false if out of memory. */
static bool node_slot(struct tview *tv, struct dnode *d)
{
	if (tv->nfreed) {
		d->slot = tv->freed[--tv->nfreed];
	} else {
		if (tv->nslots == tv->slotcap) {
			size_t cap = tv->slotcap ? tv->slotcap * 2 : 64;
			struct dnode **s = realloc(tv->slots, cap * sizeof(*s));
			size_t *f = s ? realloc(tv->freed, cap * sizeof(*f))
				      : NULL;
			if (s)
				tv->slots = s;
			if (!f)
				return false;
			tv->freed = f;
			tv->slotcap = cap;
		}
		d->slot = tv->nslots++;
	}
	tv->slots[d->slot] = d;
	return true;
}

/* The node of directory path, made if there is none; NULL if out of
 * memory. */
static struct dnode *node_get(struct tview *tv, const char *path)
{
	struct dnode *d = node_find(tv, path);

	if (d)
		return d;
	if (tv->nlive >= tv->nbuckets && !rehash(tv) && !tv->nbuckets)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d || !(d->path = strdup(path)) || !node_slot(tv, d)) {
		if (d)
			free(d->path);
		free(d);
		return NULL;
	}
	node_hash(tv, d);
	return d;
}

static void node_free(struct tview *tv, struct dnode *d)
{
	tv->slots[d->slot] = NULL;
	tv->freed[tv->nfreed++] = d->slot;
	free(d);
}

/* Directory path is gone: its node (if any) dies. */
static void node_kill(struct tview *tv, const char *path)
{
	struct dnode *d = node_find(tv, path);

	if (!d)
		return;
	node_unhash(tv, d);
	free(d->path);
	d->path = NULL;
	if (!d->nlookup)
		node_free(tv, d);
}

static struct dnode *node_of(struct tview *tv, fuse_ino_t ino)
{
	size_t slot = (size_t)(ino & ~DIR_INO_BIT);

	return slot < tv->nslots ? tv->slots[slot] : NULL;
}

/* The path of directory inode ino, stable while tv->lock is held; NULL
 * if it is gone. */
static const char *dir_path(struct tview *tv, fuse_ino_t ino)
{
	struct dnode *d;
	const char *p;

	if (ino == FUSE_ROOT_ID)
		return "";
	if (!(ino & DIR_INO_BIT))
		return NULL;
	pthread_mutex_lock(&tv->nlock);
	d = node_of(tv, ino);
	p = d ? d->path : NULL;
	pthread_mutex_unlock(&tv->nlock);
	return p;
}

/* The inode of directory path, with a lookup counted when count; 0 if
 * out of memory. */
static fuse_ino_t dir_ino(struct tview *tv, const char *path, bool count)
{
	struct dnode *d;
	fuse_ino_t ino = 0;

	if (!*path)
		return FUSE_ROOT_ID;
	pthread_mutex_lock(&tv->nlock);
	d = node_get(tv, path);
	if (d) {
		d->nlookup += count;
		ino = DIR_INO_BIT | d->slot;
	}
	pthread_mutex_unlock(&tv->nlock);
	return ino;
}

void tv_forget(struct ckptfs *fs, fuse_ino_t ino, uint64_t n)
{
	struct tview *tv = fs->tv;
	struct dnode *d;

	if (ino == FUSE_ROOT_ID)
		return;
	pthread_mutex_lock(&tv->nlock);
	d = node_of(tv, ino);
	if (d) {
		d->nlookup = n > d->nlookup ? 0 : d->nlookup - n;
		if (!d->nlookup && !d->path)
			node_free(tv, d);
	}
	pthread_mutex_unlock(&tv->nlock);
}

/* The nodes of from and below now belong to to and below; a node of to
 * (an empty directory the move replaced) dies first.  tv->lock held for
 * writing. */
static void nodes_move(struct tview *tv, const char *from, const char *to)
{
	size_t flen = strlen(from), tlen = strlen(to);

	pthread_mutex_lock(&tv->nlock);
	node_kill(tv, to);
	for (size_t i = 0; i < tv->nslots; i++) {
		struct dnode *d = tv->slots[i];
		char *p;
		if (!d || !d->path || strncmp(d->path, from, flen) != 0 ||
		    (d->path[flen] && d->path[flen] != '/'))
			continue;
		p = malloc(tlen + strlen(d->path + flen) + 1);
		if (!p) { /* a new node serves the new path */
			node_kill(tv, d->path);
			continue;
		}
		memcpy(p, to, tlen);
		strcpy(p + tlen, d->path + flen);
		node_unhash(tv, d);
		free(d->path);
		d->path = p;
		node_hash(tv, d);
	}
	pthread_mutex_unlock(&tv->nlock);
}

/* ---- building, freeing ------------------------------------------------- */

/* ckpt_tree_list callback: adds a root entry's path to the view (ctx);
 * false (stops) if out of memory. */
static bool add_listed(void *ctx, const char *fname, uint64_t id,
		       const struct ckpt_entry_info *info, size_t next)
{
	struct tview *tv = ctx;
	char *name, *path = NULL;
	size_t len;
	bool ok;

	(void)id, (void)next;
	if (ckpt_name_unescape(fname, &name, &len) != CKPT_OK)
		return false;
	path = ckpt_view_path(name, len);
	ok = path && ckpt_view_add(tv->view, path, NULL) == CKPT_OK &&
	     (info->kind != CKPT_ENTRY_DIR ||
	      ckpt_view_add(tv->maps, path, NULL) == CKPT_OK);
	free(path);
	free(name);
	tv->nlive += ok; /* counts the entries here, reset below */
	return ok;
}

void tv_free(struct ckptfs *fs)
{
	struct tview *tv = fs->tv;

	if (!tv)
		return;
	for (size_t i = 0; i < tv->nslots; i++) {
		if (tv->slots[i])
			free(tv->slots[i]->path);
		free(tv->slots[i]);
	}
	free(tv->slots);
	free(tv->freed);
	free(tv->buckets);
	ckpt_view_free(tv->view);
	ckpt_view_free(tv->maps);
	pthread_rwlock_destroy(&tv->lock);
	pthread_mutex_destroy(&tv->nlock);
	free(tv);
	fs->tv = NULL;
}

int tv_start(struct ckptfs *fs)
{
	struct tview *tv = calloc(1, sizeof(*tv));
	bool all;

	if (!tv || !(tv->view = ckpt_view_new()) ||
	    !(tv->maps = ckpt_view_new())) {
		if (tv)
			ckpt_view_free(tv->view);
		free(tv);
		say(LOG_ERR, "-o tree: out of memory");
		return -1;
	}
	pthread_rwlock_init(&tv->lock, NULL);
	pthread_mutex_init(&tv->nlock, NULL);
	fs->tv = tv;
	ckpt_tree_list(fs->tree, 0, 0, add_listed, tv, false);
	all = tv->nlive == ckpt_tree_count(fs->tree);
	tv->nlive = 0;
	if (all)
		return 0;
	say(LOG_ERR, "-o tree: out of memory listing the parameters");
	tv_free(fs);
	return -1;
}

/* ---- names --------------------------------------------------------------- */

/* "dir/comp", or comp in the root; malloc'd, NULL if out of memory. */
static char *join(const char *dir, const char *comp)
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

/* The path of the parameter file fname in directory dir (its own
 * parameter for CKPT_VIEW_SELF), malloc'd in *path; 0 or an errno. */
static int leaf_path(const char *dir, const char *fname, char **path)
{
	char *comp = NULL;
	bool self;
	ckpt_err r = ckpt_view_leaf_parse(fname, &comp, &self);

	*path = NULL;
	if (r)
		return r == CKPT_ERR_NOMEM ? ENOMEM : EINVAL;
	if (self && !*dir)
		return EINVAL; /* the root is no parameter */
	*path = self ? strdup(dir) : join(dir, comp);
	free(comp);
	return *path ? 0 : ENOMEM;
}

/* The tree's file name (ckpt_name_escape) of the parameter at path,
 * malloc'd in *fname; 0, EINVAL (no name has that path) or ENOMEM. */
static int flat_name(const char *path, char **fname)
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

/* The stored name of the directory at path in *name: 0, EINVAL if it
 * cannot be a directory (a name below it would not split there) or holds
 * a NUL byte, ENOMEM. */
static int prefix_name(const char *path, char **name)
{
	char *probe = join(path, "x"), *below = NULL;
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

static bool is_dir(enum ckpt_view_kind k)
{
	return k == CKPT_VIEW_DIR || k == CKPT_VIEW_BOTH;
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
	char *path = name ? join(c->dir, name) : NULL;

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
	path = dir_path(tv, ino);
	if (path)
		dir_attr(fs, ino, path, st);
	pthread_rwlock_unlock(&tv->lock);
	return path != NULL;
}

/* Replies to a lookup or mkdir with the directory at path, counting a
 * lookup of it; tv->lock held (for reading at least), and released. */
static void reply_dir(fuse_req_t req, const char *path)
{
	struct ckptfs *fs = fs_of(req);
	struct fuse_entry_param e = {.attr_timeout = ATTR_TIMEOUT,
				     .entry_timeout = ENTRY_TIMEOUT};

	e.ino = dir_ino(fs->tv, path, true);
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
	int e = flat_name(path, &fname);
	struct ckpt_error err;

	if (e)
		return e;
	if (ckpt_tree_lookup(fs->tree, 0, fname, id, &err) != CKPT_OK)
		e = ckpt_errno(&err);
	free(fname);
	return e;
}

void tv_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ckptfs *fs = fs_of(req);
	struct tview *tv = fs->tv;
	const char *dir;
	char *child = NULL;
	int e = ENOENT;
	uint64_t id;

	pthread_rwlock_rdlock(&tv->lock);
	dir = dir_path(tv, parent);
	if (!dir)
		goto fail;
	child = join(dir, name);
	if (!child) {
		e = ENOMEM;
		goto fail;
	}
	if (strcmp(name, CKPT_VIEW_SELF) != 0 &&
	    is_dir(ckpt_view_kind(tv->view, child))) {
		reply_dir(req, child); /* unlocks */
		free(child);
		return;
	}
	free(child);
	e = leaf_path(dir, name, &child);
	if (!e)
		e = ckpt_view_kind(tv->view, child) ==
				    (strcmp(child, dir) ? CKPT_VIEW_LEAF
							: CKPT_VIEW_BOTH)
			    ? leaf_id(fs, child, &id)
			    : ENOENT;
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
 * directory); false if it is gone or out of memory. */
static bool child_stat(struct ckptfs *fs, const char *path,
		       enum ckpt_view_kind kind, struct stat *st)
{
	struct ckpt_entry_info info;
	uint64_t id;

	memset(st, 0, sizeof(*st));
	if (kind == CKPT_VIEW_DIR) {
		st->st_ino = dir_ino(fs->tv, path, false);
		st->st_mode = S_IFDIR;
		return st->st_ino != 0;
	}
	if (leaf_id(fs, path, &id))
		return false;
	st->st_ino = id;
	st->st_mode = ckpt_tree_stat(fs->tree, id, &info, NULL) == CKPT_OK &&
				      info.kind == CKPT_ENTRY_DIR
			      ? S_IFDIR
			      : S_IFREG;
	ckpt_tree_forget(fs->tree, id, 1);
	return true;
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
	path = self ? strdup(sn->dir) : join(sn->dir, c);
	if (!ent->name || !path)
		goto nomem_ent;
	if (!name_listable(ent->name) ||
	    !child_stat(sn->fs, path,
			kind == CKPT_VIEW_DIR ? kind : CKPT_VIEW_LEAF,
			&ent->st))
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
	sn->dir = dir_path(tv, ino);
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
	dir = dir_path(fs->tv, parent);
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

/* What the parameter file fname in directory dir is: its path in *path
 * and true if it exists (a plain child a LEAF, its own parameter when the
 * directory is also one); 0 or an errno (EISDIR: a directory). */
static int leaf_at(struct tview *tv, const char *dir, const char *fname,
		   char **path, bool *exists)
{
	enum ckpt_view_kind k;
	bool self;
	int e = leaf_path(dir, fname, path);

	if (e)
		return e;
	self = strcmp(*path, dir) == 0;
	k = ckpt_view_kind(tv->view, *path);
	*exists = self ? k == CKPT_VIEW_BOTH : k == CKPT_VIEW_LEAF;
	return !self && is_dir(k) ? EISDIR : 0;
}

int tv_create(struct ckptfs *fs, fuse_ino_t parent, const char *name,
	      uint64_t *id)
{
	struct ckpt_error err;
	char *path = NULL, *fname = NULL;
	bool exists;
	int e;
	const char *dir = begin_change(fs, parent, &e);

	if (!dir)
		return e;
	e = leaf_at(fs->tv, dir, name, &path, &exists);
	if (!e && exists)
		e = EEXIST;
	if (!e)
		e = flat_name(path, &fname);
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

int tv_unlink(struct ckptfs *fs, fuse_ino_t parent, const char *name)
{
	struct ckpt_error err;
	char *path = NULL, *fname = NULL;
	bool exists;
	int e;
	const char *dir = begin_change(fs, parent, &e);

	if (!dir)
		return e;
	e = leaf_at(fs->tv, dir, name, &path, &exists);
	if (!e && !exists)
		e = ENOENT;
	if (!e)
		e = flat_name(path, &fname);
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
	path = join(dir, name);
	e = path ? prefix_name(path, &prefix) : ENOMEM;
	if (!e)
		e = view_errno(ckpt_view_mkdir(fs->tv->view, path, NULL));
	free(prefix);
	if (e)
		end_change(fs);
	else
		reply_dir(req, path); /* unlocks */
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
	path = join(dir, name);
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
		pthread_mutex_lock(&fs->tv->nlock);
		node_kill(fs->tv, path);
		pthread_mutex_unlock(&fs->tv->nlock);
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
	int e = flat_name(from, &ffrom);

	if (!e)
		e = flat_name(to, &fto);
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
		nodes_move(fs->tv, from, to);
	free(pfrom);
	free(pto);
	return e;
}

int tv_rename(struct ckptfs *fs, fuse_ino_t parent, const char *name,
	      fuse_ino_t newparent, const char *newname, bool noreplace)
{
	const char *dir, *newdir;
	char *from = NULL, *to = NULL;
	bool self = !strcmp(name, CKPT_VIEW_SELF), from_exists, to_exists;
	int e;

	dir = begin_change(fs, parent, &e);
	if (!dir)
		return e;
	newdir = dir_path(fs->tv, newparent);
	from = join(dir, name);
	if (!newdir)
		e = ENOENT;
	else if (!from)
		e = ENOMEM;
	else if (!self && is_dir(ckpt_view_kind(fs->tv->view, from))) {
		to = join(newdir, newname);
		e = !to				       ? ENOMEM
		    : !strcmp(newname, CKPT_VIEW_SELF) ? ENOTDIR
		    : strcmp(from, to) ? rename_dir(fs, from, to, noreplace)
				       : 0;
	} else {
		free(from);
		e = leaf_at(fs->tv, dir, name, &from, &from_exists);
		if (!e && !from_exists)
			e = ENOENT;
		if (!e)
			e = leaf_at(fs->tv, newdir, newname, &to, &to_exists);
		if (!e && strcmp(from, to) != 0)
			e = rename_leaf(fs, from, to, to_exists, noreplace);
	}
	end_change(fs);
	free(from);
	free(to);
	return e;
}
