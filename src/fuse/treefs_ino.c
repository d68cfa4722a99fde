/*
 * treefs_ino.c - -o tree: the view's state (building it from the tree,
 * freeing it) and the inode numbers of its directories (see treefs.h;
 * the view's design is at the top of treefs.c).
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
 * reused), and a lookup of its old path gets a new node.  Live nodes are
 * found by path in a hash table, all nodes by slot.
 *
 * Map parameters are leaves of the view that are directories; they never
 * move (the tree refuses), so they are listed once more, apart (tv->maps),
 * to count them in their directory's link count.
 *
 * Locking: tv->nlock guards the node table and the lookup counts; it is
 * taken here only, inside tv->lock (the caller's), which guards the
 * nodes' paths.
 */
#include <stdlib.h>
#include <syslog.h>

#include "treefs.h"

#define DIR_INO_BIT (1ull << 63)

/* A directory's inode. */
struct dnode {
	char *path;	  /* NULL once dead */
	uint64_t nlookup; /* the kernel's lookups */
	size_t slot;	  /* its inode is DIR_INO_BIT | slot */
	struct dnode *hnext;
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

void tv_dir_gone(struct tview *tv, const char *path)
{
	pthread_mutex_lock(&tv->nlock);
	node_kill(tv, path);
	pthread_mutex_unlock(&tv->nlock);
}

static struct dnode *node_of(struct tview *tv, fuse_ino_t ino)
{
	size_t slot = (size_t)(ino & ~DIR_INO_BIT);

	return slot < tv->nslots ? tv->slots[slot] : NULL;
}

const char *tv_path_of(struct tview *tv, fuse_ino_t ino)
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

fuse_ino_t tv_ino_of(struct tview *tv, const char *path, bool count)
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

void tv_nodes_move(struct tview *tv, const char *from, const char *to)
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
