/*
 * dir.c - readdir and readdirplus of ckptfs (see ckptfs.h).
 *
 * A directory is the root (the checkpoint's parameters, in checkpoint
 * order) or a map parameter (its keys, values and status); with -o tree
 * the root and the view's directories are listed by treefs.c.  Offsets: 1
 * after ".", 2 after "..", 2 + i + 1 after entry i, so a listing resumes
 * where it left off while entries are renamed or deleted.  Names the
 * kernel cannot show (longer than NAME_MAX) are left out.
 *
 * Lookup counts: with readdirplus the tree counts one lookup of every
 * entry it hands out (ckpt_tree_list with count); the kernel gets only
 * those in the reply, so this file gives back every count of an entry
 * left out, and all of them when the reply fails.  The callback runs
 * under the tree's read lock and must never call into the tree.
 */
#include <errno.h>
#include <stdlib.h>

#include "ckptfs.h"

struct dir_fill {
	fuse_req_t req;
	struct shown shown;
	bool plus; /* readdirplus: entries carry attributes and a lookup */
	char *buf;
	size_t size, used;
	uint64_t *ids; /* plus: the lookups the tree counted, ... */
	bool *given;   /* ... and whether the reply holds that entry */
	size_t nids, idcap;
};

/* Remembers (readdirplus) that the tree counted a lookup of id, which the
 * kernel gets only if given; false if there is no memory to remember. */
static bool note_counted(struct dir_fill *d, uint64_t id, bool given)
{
	if (d->nids == d->idcap) {
		size_t n = d->idcap ? d->idcap * 2 : 64;
		uint64_t *ids = realloc(d->ids, n * sizeof(*ids));
		bool *g = ids ? realloc(d->given, n * sizeof(*g)) : NULL;
		if (ids)
			d->ids = ids;
		if (!ids || !g)
			return false;
		d->given = g;
		d->idcap = n;
	}
	d->ids[d->nids] = id;
	d->given[d->nids++] = given;
	return true;
}

/* Gives the tree back the lookups the kernel did not get: those of
 * entries left out of the reply, all of them if the reply failed. */
static void forget_untaken(struct ckptfs *fs, struct dir_fill *d, bool replied)
{
	for (size_t i = 0; i < d->nids; i++)
		if (!replied || !d->given[i])
			ckpt_tree_forget(fs->tree, d->ids[i], 1);
	free(d->ids);
	free(d->given);
}

/* Adds one entry to the reply buffer; false if it does not fit. */
static bool add_dirent(void *ctx, const char *name, uint64_t id,
		       const struct ckpt_entry_info *info, size_t next)
{
	struct dir_fill *d = ctx;
	struct fuse_entry_param e;
	char shown[NAME_MAX + 1];
	size_t need;
	bool dot = !strcmp(name, ".") || !strcmp(name, "..");

	if (d->shown.npy && !dot)
		name = npy_shown_name(name, info, shown);
	if (!name || !name_listable(name)) /* the kernel cannot show it */
		return !d->plus || dot || note_counted(d, id, false);
	memset(&e, 0, sizeof(e));
	fill_attr(&d->shown, id, info, &e.attr);
	need = d->plus ? fuse_add_direntry_plus(d->req, NULL, 0, name, NULL, 0)
		       : fuse_add_direntry(d->req, NULL, 0, name, NULL, 0);
	if (d->used + need > d->size)
		return false;
	if (d->plus && !dot && !note_counted(d, id, true))
		return false; /* not taken: the tree counts nothing */
	if (d->plus) {
		e.ino = dot ? 0 : id; /* no lookup is counted for . and .. */
		e.attr_timeout = ATTR_TIMEOUT;
		e.entry_timeout = ENTRY_TIMEOUT;
		fuse_add_direntry_plus(
			d->req, d->buf + d->used, d->size - d->used, name, &e,
			(off_t)next + 2); /* the tree counts it */
	} else {
		fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used,
				  name, &e.attr, (off_t)next + 2);
	}
	d->used += need;
	return true;
}

/* readdir and readdirplus: ".", "..", then the tree's entries. */
static void list_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi, bool plus)
{
	struct ckptfs *fs = fs_of(req);
	struct dir_fill d = {.req = req, .plus = plus, .size = size};
	struct ckpt_entry_info dir = {.kind = CKPT_ENTRY_DIR}, info;

	if (fs->tv && tv_dir_ino(ino)) {
		tv_readdir(req, ino, size, off, fi, plus);
		return;
	}
	if (!ino_info(fs, ino, &info) || info.kind != CKPT_ENTRY_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	get_shown(fs, &d.shown);
	d.buf = malloc(size);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* offsets: 1 after ".", 2 after "..", 2 + i + 1 after entry i */
	if (off == 0)
		add_dirent(&d, ".", ino, &dir, (size_t)-1);
	if (off <= 1)
		add_dirent(&d, "..", FUSE_ROOT_ID, &dir, 0);
	ckpt_tree_list(fs->tree, tree_dir(ino), off >= 2 ? (size_t)off - 2 : 0,
		       add_dirent, &d, plus);
	forget_untaken(fs, &d, fuse_reply_buf(req, d.buf, d.used) == 0);
	free(d.buf);
}

/* The entries of a directory (the root or a map parameter). */
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	list_dir(req, ino, size, off, fi, false);
}

/* readdir with attributes; each entry counts a lookup. */
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	list_dir(req, ino, size, off, fi, true);
}

/* A directory handle: with -o tree, of the root or a directory of the
 * view, a listing's snapshot (treefs.c); else none. */
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fs_of(req)->tv && tv_dir_ino(ino)) {
		tv_opendir(req, ino, fi);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fi->fh) {
		tv_releasedir(req, ino, fi);
		return;
	}
	fuse_reply_err(req, 0);
}
