/*
 * ops.c - the FUSE requests of ckptfs (low-level API) on a libckpt tree.
 *
 * Design.  Everything about the format and about editing lives in libckpt:
 * ckpt_tree_open scans the checkpoint once into an editable tree whose
 * entries (one per parameter) have stable ids.  This file only maps FUSE
 * requests onto that tree:
 *
 *   - Inode numbers are entry ids (the root is FUSE_ROOT_ID = 1, ids are
 *     multiples of 4, a map parameter's keys/values/status are id+1..id+3).
 *     The tree counts the kernel's lookups in its entries; forget gives
 *     them back, and a deleted entry is freed once its count is zero.
 *   - Reads never copy tensor data through this process when they can be
 *     avoided: the tree hands out (fd, offset) pieces, from the checkpoint
 *     for untouched entries and from a staging file for edited ones, and
 *     libfuse splices them into /dev/fuse.
 *   - Writes, truncates, creates, unlinks, renames and setxattr of
 *     user.dtype / user.shape change the tree; fsync of any file or
 *     directory commits the whole tree as a new checkpoint (except an
 *     fsync of a scratch file, which commits nothing), and so does
 *     unmounting.  If that last commit fails, the tree is saved as a
 *     recovery checkpoint beside the original instead of being lost.
 *   - Privileges: files and directories show the checkpoint's owner, group
 *     and permission bits (files mode & 0666, & 0444 when read-only;
 *     directories add x where r is set); with default_permissions the
 *     kernel enforces them.  A commit by fsync needs write permission on
 *     the checkpoint: a descriptor opened for writing, root, or the write
 *     bit of the caller's class (owner, group, other).
 *   - Content only changes through this mount, so the kernel keeps its page
 *     cache across opens and shared mmap works, also for writing.  The
 *     exception is a write-only open that truncates (cp, dd, "> file",
 *     numpy's tofile): it bypasses the page cache (direct_io), so a bulk
 *     rewrite is not also copied into cached pages nobody reads; the
 *     kernel (>= 6.6, FUSE 7.39) drops cached pages of the ranges such
 *     writes touch, so other opens and mappings stay coherent.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>

#include "ckptfs.h"

#define ATTR_TIMEOUT 1.0
#define ENTRY_TIMEOUT 1.0
#define FH_WRITABLE 1 /* fi->fh: the file was opened for writing */

static struct ckptfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Replies with the errno of err. */
static void reply_fail(fuse_req_t req, const struct ckpt_error *err)
{
	fuse_reply_err(req, ckpt_errno(err));
}

/* The tree's directory id of inode ino (the root is 0 in the tree). */
_Static_assert(FUSE_ROOT_ID % CKPT_TREE_ID_STEP != 0,
	       "the root's inode must never be a tree id");

static uint64_t dir_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? 0 : ino;
}

/* ---- attributes -------------------------------------------------------- */

/* What every entry shows of the checkpoint: owner, group, the mode of a
 * writable parameter file (mode & 0666, & 0444 if the tree is
 * read-only). */
struct shown {
	uid_t uid;
	gid_t gid;
	mode_t file;
};

/* What the entries show now (the checkpoint's owner and mode). */
static void get_shown(struct ckptfs *fs, struct shown *s)
{
	mode_t mode;

	ckpt_tree_owner(fs->tree, &mode, &s->uid, &s->gid);
	s->file = mode & (ckpt_tree_read_only(fs->tree) ? 0444 : 0666);
}

/* A directory's mode for file mode m: x wherever r is set. */
static mode_t dir_mode(mode_t m)
{
	return m | ((m & 0444) >> 2);
}

/* Fills st for ino.  Only the root and plain parameter files can be
 * writable: map parameters (directories) and their tensors (ino % 4) are
 * read-only. */
static void fill_attr(const struct shown *s, fuse_ino_t ino,
		      const struct ckpt_entry_info *info, struct stat *st)
{
	bool file = info->kind == CKPT_ENTRY_FILE;
	bool writable = ino == FUSE_ROOT_ID || (file && ckpt_tree_id_is_entry(ino));
	mode_t m = writable ? s->file : s->file & 0444;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = s->uid;
	st->st_gid = s->gid;
	st->st_mode = file ? S_IFREG | m : S_IFDIR | dir_mode(m);
	st->st_nlink = file ? 1 : 2;
	st->st_mtim.tv_sec = (time_t)(info->mtime_ns / 1000000000u);
	st->st_mtim.tv_nsec = (long)(info->mtime_ns % 1000000000u);
	st->st_atim = st->st_ctim = st->st_mtim;
	st->st_blksize = 4096;
	if (file) {
		st->st_size = (off_t)info->size;
		st->st_blocks = (blkcnt_t)((info->size + 511) / 512);
	}
}

/* Stats ino into st; false if it does not exist. */
static bool stat_ino(struct ckptfs *fs, fuse_ino_t ino, struct stat *st)
{
	struct ckpt_entry_info info;
	struct shown s;

	if (ino == FUSE_ROOT_ID) {
		memset(&info, 0, sizeof(info));
		info.kind = CKPT_ENTRY_DIR;
		info.mtime_ns = fs->mount_ns;
	} else if (ckpt_tree_stat(fs->tree, ino, &info, NULL) != CKPT_OK) {
		return false;
	}
	get_shown(fs, &s);
	fill_attr(&s, ino, &info, st);
	return true;
}

/* ---- who may commit ---------------------------------------------------- */

/* True if gid is the caller's primary group or one of its supplementary
 * groups. */
static bool caller_in_group(fuse_req_t req, gid_t primary, gid_t gid)
{
	gid_t small[64], *list = small;
	int n, cap = 64;
	bool found = primary == gid;

	n = fuse_req_getgroups(req, cap, list);
	if (n > cap) {
		list = malloc((size_t)n * sizeof(*list));
		cap = n;
		n = list ? fuse_req_getgroups(req, cap, list) : -ENOMEM;
	}
	for (int i = 0; i < n && i < cap && !found; i++)
		found = list[i] == gid;
	if (list != small)
		free(list);
	return found;
}

/* True if the caller of req may write the checkpoint: root, or the write
 * bit of its class (owner, group, other) on the mode the files show. */
static bool caller_may_write(fuse_req_t req, struct ckptfs *fs)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct shown s;

	if (c->uid == 0)
		return true;
	get_shown(fs, &s);
	if (c->uid == s.uid)
		return s.file & S_IWUSR;
	if (caller_in_group(req, c->gid, s.gid))
		return s.file & S_IWGRP;
	return s.file & S_IWOTH;
}

/* True if req may commit (fi: its open file, NULL if none); else logs
 * the refusal of what (a verb). */
static bool may_commit(fuse_req_t req, const struct fuse_file_info *fi,
		       const char *what)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	if ((fi && (fi->fh & FH_WRITABLE)) || caller_may_write(req, fs_of(req)))
		return true;
	logmsg(LOG_NOTICE, "%s by uid %u (pid %d) refused: it may not write "
	       "the checkpoint %s", what, (unsigned)c->uid, (int)c->pid,
	       ckpt_tree_target(fs_of(req)->tree));
	return false;
}

/* ---- entries ----------------------------------------------------------- */

/* Fills e for id, whose lookup the tree has counted; false (ENOENT
 * replied, the count given back) if id is gone. */
static bool make_entry(fuse_req_t req, uint64_t id,
		       struct fuse_entry_param *e)
{
	struct ckptfs *fs = fs_of(req);

	memset(e, 0, sizeof(*e));
	if (!stat_ino(fs, id, &e->attr)) {
		ckpt_tree_forget(fs->tree, id, 1);
		fuse_reply_err(req, ENOENT);
		return false;
	}
	e->ino = id;
	e->attr_timeout = ATTR_TIMEOUT;
	e->entry_timeout = ENTRY_TIMEOUT;
	return true;
}

/* Replies with the entry id (lookup counted); a failed reply gives the
 * count back. */
static void reply_entry(fuse_req_t req, uint64_t id)
{
	struct fuse_entry_param e;

	if (make_entry(req, id, &e) && fuse_reply_entry(req, &e) != 0)
		ckpt_tree_forget(fs_of(req)->tree, id, 1);
}

/* Asks for splicing and notes whether direct writes keep the cache
 * coherent. */
static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct ckptfs *fs = userdata;

	if (fs->max_read) /* -o max_read: libfuse wants it here too */
		conn->max_read = fs->max_read;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	/* 7.39 (Linux 6.6): direct writes invalidate the cached range */
	fs->direct_writes = conn->proto_major > 7 ||
			    (conn->proto_major == 7 && conn->proto_minor >= 39);
}

/* Sets how the kernel caches an open file (write-only opens that start
 * from an empty file skip the page cache, see the top of this file, all
 * others keep it across opens) and remembers in fi->fh whether it was
 * opened for writing. */
static void set_open_file(const struct ckptfs *fs, struct fuse_file_info *fi,
			  bool empty)
{
	int acc = fi->flags & O_ACCMODE;

	fi->fh = acc != O_RDONLY ? FH_WRITABLE : 0;
	if (fs->direct_writes && empty && acc == O_WRONLY)
		fi->direct_io = 1;
	else
		fi->keep_cache = 1;
}

/* ---- the unmount commit ------------------------------------------------ */

/* Records that the commit at unmount failed, with the message fmt... for
 * the status clients, in fs->final_failed and fs->final_error. */
static void final_failure(struct ckptfs *fs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void final_failure(struct ckptfs *fs, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	free(fs->final_error);
	fs->final_error = msg;
	fs->final_failed = true;
}

/* The commit at unmount failed with err: saves the pending tree as a
 * recovery checkpoint, so that nothing is lost, and records and logs
 * where it went (or that it could not be saved). */
static void save_recovery(struct ckptfs *fs, const struct ckpt_error *err)
{
	struct ckpt_error rerr;
	char *saved, *lost;
	const char *sep;

	if (ckpt_tree_save_recovery(fs->tree, &saved, &lost, &rerr) != CKPT_OK) {
		logmsg(LOG_CRIT, "could not save pending changes: %s",
		       rerr.msg);
		final_failure(fs, "commit at unmount failed (%s) and the "
			      "changes could not be saved: %s", err->msg,
			      rerr.msg);
		return;
	}
	sep = lost ? "; these could not be saved: " : "";
	logmsg(LOG_ERR, "pending changes saved to %s%s%s", saved, sep,
	       lost ? lost : "");
	final_failure(fs, "commit at unmount failed (%s); pending changes "
		      "saved to %s%s%s", err->msg, saved, sep,
		      lost ? lost : "");
	free(saved);
	free(lost);
}

/* Commits pending changes at unmount; a failure is logged, recorded (see
 * final_failure) and saves a recovery checkpoint. */
static void op_destroy(void *userdata)
{
	struct ckptfs *fs = userdata;
	struct ckpt_error err;

	if (ckpt_tree_read_only(fs->tree) || !ckpt_tree_dirty(fs->tree))
		return;
	if (ckpt_tree_commit(fs->tree, &err) == CKPT_OK) {
		logmsg(LOG_INFO, "committed %s at unmount",
		       ckpt_tree_target(fs->tree));
		return;
	}
	logmsg(LOG_ERR, "commit at unmount failed: %s", err.msg);
	if (!ckpt_tree_dirty(fs->tree)) /* in place, directory unsynced */
		final_failure(fs, "commit at unmount: %s", err.msg);
	else
		save_recovery(fs, &err);
}

/* ---- names ------------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint64_t id;

	if (ckpt_tree_lookup(fs_of(req)->tree, dir_of(parent), name, &id,
			     NULL))
		fuse_reply_err(req, ENOENT);
	else
		reply_entry(req, id);
}

/* The kernel forgets nlookup lookups of ino. */
static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	ckpt_tree_forget(fs_of(req)->tree, ino, nlookup);
	fuse_reply_none(req);
}

/* op_forget for a batch. */
static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		ckpt_tree_forget(fs_of(req)->tree, forgets[i].ino,
				 forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Attributes of ino (ENOENT once it is gone). */
static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (!stat_ino(fs_of(req), ino, &st))
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/* Truncates on a size change; mode, owner and times are accepted and not
 * stored: a checkpoint has no place for them (chmod and touch succeed). */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;
	struct stat st;

	(void)fi;
	if ((to_set & FUSE_SET_ATTR_SIZE) &&
	    ckpt_tree_truncate(fs->tree, ino, (uint64_t)attr->st_size, &err)) {
		reply_fail(req, &err);
		return;
	}
	if (!stat_ino(fs, ino, &st))
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

struct dir_fill {
	fuse_req_t req;
	struct shown shown;
	bool plus; /* readdirplus: entries carry attributes and a lookup */
	char *buf;
	size_t size, used;
	uint64_t *ids;     /* plus: the lookups the tree counted, ... */
	bool *given;       /* ... and whether the reply holds that entry */
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
static void forget_untaken(struct ckptfs *fs, struct dir_fill *d,
			   bool replied)
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
	size_t need;
	bool dot = !strcmp(name, ".") || !strcmp(name, "..");

	if (strlen(name) > NAME_MAX) /* the kernel cannot show it; 'ckpt
				      * ls' can */
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
		fuse_add_direntry_plus(d->req, d->buf + d->used,
				       d->size - d->used, name, &e,
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
		     bool plus)
{
	struct ckptfs *fs = fs_of(req);
	struct dir_fill d = {.req = req, .plus = plus, .size = size};
	struct ckpt_entry_info dir = {.kind = CKPT_ENTRY_DIR};
	struct stat st;

	if (!stat_ino(fs, ino, &st) || !S_ISDIR(st.st_mode)) {
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
	ckpt_tree_list(fs->tree, dir_of(ino), off >= 2 ? (size_t)off - 2 : 0,
		       add_dirent, &d, plus);
	forget_untaken(fs, &d, fuse_reply_buf(req, d.buf, d.used) == 0);
	free(d.buf);
}

/* The entries of a directory (the root or a map parameter). */
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	list_dir(req, ino, size, off, false);
}

/* readdir with attributes; each entry counts a lookup. */
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	list_dir(req, ino, size, off, true);
}

/* Opens a file; a writing open with O_TRUNC empties it. */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;
	struct stat st;

	if (!stat_ino(fs, ino, &st)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY && ckpt_tree_read_only(fs->tree)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY &&
	    ckpt_tree_truncate(fs->tree, ino, 0, &err)) {
		reply_fail(req, &err);
		return;
	}
	set_open_file(fs, fi, fi->flags & O_TRUNC);
	fuse_reply_open(req, fi);
}

/* Refuses names the kernel could never list; true if name is fine. */
static bool name_fits(fuse_req_t req, const char *name)
{
	if (strlen(name) <= NAME_MAX)
		return true;
	fuse_reply_err(req, ENAMETOOLONG);
	return false;
}

/* A new parameter in the root (EPERM elsewhere), open. */
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct ckpt_error err;
	uint64_t id;

	(void)mode;
	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!name_fits(req, name))
		return;
	if (ckpt_tree_create(fs->tree, name, &id, &err)) {
		reply_fail(req, &err);
		return;
	}
	set_open_file(fs, fi, true);
	if (make_entry(req, id, &e) && fuse_reply_create(req, &e, fi) != 0)
		ckpt_tree_forget(fs->tree, id, 1);
}

/* A new parameter in the root, regular files only (EPERM otherwise). */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct ckpt_error err;
	uint64_t id;

	(void)rdev;
	if (!S_ISREG(mode) || parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!name_fits(req, name))
		return;
	if (ckpt_tree_create(fs_of(req)->tree, name, &id, &err))
		reply_fail(req, &err);
	else
		reply_entry(req, id);
}

/* Refused: the parameter list is flat. */
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fuse_reply_err(req, EPERM); /* the parameter list is flat */
}

/* Refused: a checkpoint has no links. */
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link, (void)parent, (void)name;
	fuse_reply_err(req, EPERM);
}

/* Refused: a checkpoint has no links. */
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
		    const char *name)
{
	(void)ino, (void)parent, (void)name;
	fuse_reply_err(req, EPERM);
}

/* Deletes a parameter of the root (EPERM in a map parameter). */
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ckpt_error err;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (ckpt_tree_unlink(fs_of(req)->tree, name, &err))
		reply_fail(req, &err);
	else
		fuse_reply_err(req, 0);
}

/* Refused: map parameters are read-only. */
static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, EPERM); /* map parameters are read-only */
}

/* Renames within the root (RENAME_NOREPLACE honoured, other flags
 * EINVAL); the entry keeps its place in the order. */
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct ckpt_error err;

	if (parent != FUSE_ROOT_ID || newparent != FUSE_ROOT_ID) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (flags & ~RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!name_fits(req, newname))
		return;
	if (ckpt_tree_rename(fs_of(req)->tree, name, newname,
			     flags & RENAME_NOREPLACE, &err))
		reply_fail(req, &err);
	else
		fuse_reply_err(req, 0);
}

/* ---- data -------------------------------------------------------------- */

/* Replies to a read with the tree's pieces (spliced where they are in a
 * file); CKPT_ERR_NOMEM if there is no memory to describe them. */
static ckpt_err reply_pieces(void *ctx, const struct ckpt_piece *p,
			     uint32_t n, struct ckpt_error *err)
{
	fuse_req_t req = ctx;
	struct fuse_bufvec *bv;

	bv = calloc(1, sizeof(*bv) + n * sizeof(struct fuse_buf));
	if (!bv) {
		*err = (struct ckpt_error){.code = CKPT_ERR_NOMEM,
					   .msg = "out of memory"};
		return CKPT_ERR_NOMEM;
	}
	bv->count = n;
	for (uint32_t i = 0; i < n; i++) {
		if (p[i].fd >= 0)
			bv->buf[i] = (struct fuse_buf){
				.size = p[i].len,
				.flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK,
				.fd = p[i].fd,
				.pos = (off_t)p[i].pos};
		else
			bv->buf[i] = (struct fuse_buf){
				.size = p[i].len, .mem = (void *)p[i].mem};
	}
	if (n == 0)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_data(req, bv, FUSE_BUF_SPLICE_MOVE);
	free(bv);
	return CKPT_OK;
}

/* After a read failed with EIO: if the checkpoint changed underneath,
 * logs why, once per distinct reason (not once per read). */
static void note_source_problem(struct ckptfs *fs)
{
	struct ckpt_error err;
	bool fresh;

	if (ckpt_tree_check_source(fs->tree, &err) == CKPT_OK)
		return;
	pthread_mutex_lock(&fs->lock);
	fresh = strcmp(fs->source_msg, err.msg) != 0;
	if (fresh)
		snprintf(fs->source_msg, sizeof(fs->source_msg), "%s",
			 err.msg);
	pthread_mutex_unlock(&fs->lock);
	if (fresh)
		logmsg(LOG_ERR, "reads fail with EIO: %s", err.msg);
}

/* Reads through the tree's pieces; an EIO is explained in the log. */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct ckpt_error err;

	(void)fi;
	if (ckpt_tree_read_pieces(fs_of(req)->tree, ino, (uint64_t)off, size,
				  reply_pieces, req, &err) == CKPT_OK)
		return;
	if (ckpt_errno(&err) == EIO)
		note_source_problem(fs_of(req));
	fuse_reply_err(req, ckpt_errno(&err));
}

/* Writes into the entry's staging data. */
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct ckpt_error err;

	(void)fi;
	if (ckpt_tree_write(fs_of(req)->tree, ino, buf, size, (uint64_t)off,
			    &err))
		reply_fail(req, &err);
	else
		fuse_reply_write(req, size);
}

/* ---- commits ----------------------------------------------------------- */

/* Remembers the outcome of a commit for user.ckptfs.error and
 * user.ckptfs.changed (err NULL: success) and logs a failure; when the
 * checkpoint changed underneath, the message says what to do. */
static void note_commit(struct ckptfs *fs, const struct ckpt_error *err)
{
	char msg[sizeof(fs->last_error)] = "";

	if (err && err->code == CKPT_ERR_CHANGED)
		snprintf(msg, sizeof(msg), "%s; every edit is still in the "
			 "mount: unmount it ('ckpt umount %s') to save them as "
			 "a recovery file beside the checkpoint, or replace the "
			 "file the path holds now with 'ckpt umount --force %s'",
			 err->msg, fs->mountpoint, fs->mountpoint);
	else if (err)
		ckpt_error_text(err, CKPT_FRONT_MOUNT, msg, sizeof(msg));
	pthread_mutex_lock(&fs->lock);
	memcpy(fs->last_error, msg, sizeof(msg));
	fs->changed = err && err->code == CKPT_ERR_CHANGED;
	if (!err)
		fs->source_msg[0] = '\0'; /* a new file: problems logged anew */
	pthread_mutex_unlock(&fs->lock);
	if (err)
		logmsg(LOG_ERR, "commit failed: %s", msg);
}

/* fsync of anything commits everything, unless ino is a scratch file or
 * the caller may not write the checkpoint (EACCES). */
static void commit(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;

	if (ckpt_tree_read_only(fs->tree) || ckpt_tree_is_scratch(fs->tree, ino)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (!may_commit(req, fi, "fsync")) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (ckpt_tree_commit(fs->tree, &err) == CKPT_OK) {
		note_commit(fs, NULL);
		fuse_reply_err(req, 0);
	} else {
		note_commit(fs, &err);
		reply_fail(req, &err);
	}
}

/* fsync of a file: commit (see commit()). */
static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)datasync;
	commit(req, ino, fi);
}

/* fsync of a directory: commit (see commit()). */
static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)datasync;
	commit(req, ino, fi);
}

/* ---- extended attributes ----------------------------------------------- */

static const char xattr_list[] = "user.dtype\0user.shape";

/* Replies to getxattr/listxattr with the len bytes at v (size 0: the
 * length only; too small: ERANGE). */
static void reply_value(fuse_req_t req, const char *v, size_t len,
			size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, len);
}

/* The control values of the root for 'ckpt umount' (ckpt_status.h). */
static void root_getxattr(fuse_req_t req, const char *name, size_t size)
{
	struct ckptfs *fs = fs_of(req);
	char buf[sizeof(fs->last_error)];
	const char *path = ckpt_status_path(fs->status);

	pthread_mutex_lock(&fs->lock);
	if (strcmp(name, CKPT_XATTR_PID) == 0)
		snprintf(buf, sizeof(buf), "%d", (int)getpid());
	else if (strcmp(name, CKPT_XATTR_STATUS) == 0 && path)
		snprintf(buf, sizeof(buf), "%s", path);
	else if (strcmp(name, CKPT_XATTR_ERROR) == 0)
		snprintf(buf, sizeof(buf), "%s", fs->last_error);
	else if (strcmp(name, CKPT_XATTR_CHANGED) == 0)
		snprintf(buf, sizeof(buf), "%d", fs->changed);
	else
		name = NULL;
	pthread_mutex_unlock(&fs->lock);
	if (name)
		reply_value(req, buf, strlen(buf), size);
	else
		fuse_reply_err(req, ENODATA);
}

/* user.dtype and user.shape of files; the root's control values. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct ckpt_entry_info info;

	if (ino == FUSE_ROOT_ID) {
		root_getxattr(req, name, size);
		return;
	}
	if (strncmp(name, "user.", 5) != 0) {
		/* no security.*, system.* (ACLs), trusted.*: saying so stops
		 * ls -l from asking again for every file */
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (ckpt_tree_stat(fs_of(req)->tree, ino, &info, NULL)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (info.kind != CKPT_ENTRY_FILE)
		fuse_reply_err(req, ENODATA);
	else if (strcmp(name, "user.dtype") == 0)
		reply_value(req, info.dtype, strlen(info.dtype), size);
	else if (strcmp(name, "user.shape") == 0)
		reply_value(req, info.shape, strlen(info.shape), size);
	else
		fuse_reply_err(req, ENODATA);
}

/* Files list user.dtype and user.shape; the root lists nothing. */
static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct ckpt_entry_info info;

	if (ino == FUSE_ROOT_ID) {
		reply_value(req, "", 0, size);
		return;
	}
	if (ckpt_tree_stat(fs_of(req)->tree, ino, &info, NULL)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_value(req, xattr_list,
		    info.kind == CKPT_ENTRY_FILE ? sizeof(xattr_list) : 0,
		    size);
}

/* setxattr user.ckptfs.force on the root: the next commit replaces
 * whatever file the path holds now (needs write permission). */
static void set_force(fuse_req_t req)
{
	struct ckptfs *fs = fs_of(req);

	if (ckpt_tree_read_only(fs->tree)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!may_commit(req, NULL, "forcing the next commit")) {
		fuse_reply_err(req, EACCES);
		return;
	}
	ckpt_tree_force(fs->tree);
	logmsg(LOG_NOTICE, "forced: the next commit replaces whatever file %s "
	       "holds now", ckpt_tree_target(fs->tree));
	fuse_reply_err(req, 0);
}

/* True if XATTR_CREATE is asked for user.dtype or user.shape of the
 * parameter file ino, which always has both: EEXIST. */
static bool exists_already(struct ckptfs *fs, fuse_ino_t ino, int flags)
{
	struct ckpt_entry_info info;

	return (flags & XATTR_CREATE) &&
	       ckpt_tree_stat(fs->tree, ino, &info, NULL) == CKPT_OK &&
	       info.kind == CKPT_ENTRY_FILE;
}

/* Sets user.dtype or user.shape (XATTR_CREATE: EEXIST, they always
 * exist; malformed: EINVAL, logged), or user.ckptfs.force on the root. */
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;
	bool dtype = strcmp(name, "user.dtype") == 0;
	ckpt_err r;

	if (ino == FUSE_ROOT_ID && strcmp(name, CKPT_XATTR_FORCE) == 0) {
		set_force(req);
		return;
	}
	if (!dtype && strcmp(name, "user.shape") != 0) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (exists_already(fs, ino, flags)) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	r = dtype ? ckpt_tree_set_dtype(fs->tree, ino, value, size, &err)
		  : ckpt_tree_set_shape(fs->tree, ino, value, size, &err);
	if (r == CKPT_ERR_INVAL)
		logmsg(LOG_NOTICE, "setxattr %s: %s", name, err.msg);
	if (r)
		reply_fail(req, &err);
	else
		fuse_reply_err(req, 0);
}

/* Removing user.shape makes it inferred again; user.dtype cannot go. */
static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct ckpt_error err;

	if (strcmp(name, "user.shape") == 0) { /* back to inferred (1-D) */
		if (ckpt_tree_clear_shape(fs_of(req)->tree, ino, &err))
			reply_fail(req, &err);
		else
			fuse_reply_err(req, 0);
		return;
	}
	fuse_reply_err(req, strcmp(name, "user.dtype") == 0 ? EPERM : ENODATA);
}

/* statfs of the target's directory through the tree's descriptor (a path
 * could lead back into this mount); 4 KiB blocks and no space if that
 * fails. */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct ckptfs *fs = fs_of(req);
	struct statvfs sv;

	(void)ino;
	if (ckpt_tree_statfs(fs->tree, &sv, NULL) != CKPT_OK) {
		memset(&sv, 0, sizeof(sv));
		sv.f_bsize = sv.f_frsize = 4096;
	}
	sv.f_files = ckpt_tree_count(fs->tree) + 1;
	sv.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops ckptfs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.open = op_open,
	.create = op_create,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.read = op_read,
	.write = op_write,
	.fsync = op_fsync,
	.fsyncdir = op_fsyncdir,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.statfs = op_statfs,
};
