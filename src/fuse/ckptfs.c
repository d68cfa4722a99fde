/*
 * ckptfs.c - mount a MindSpore checkpoint as a directory (low-level FUSE).
 *
 * Design.  Everything about the format and about editing lives in libckpt:
 * ckpt_tree_open scans the checkpoint once into an editable tree whose
 * entries (one per parameter) have stable ids.  This file only maps FUSE
 * requests onto that tree:
 *
 *   - Inode numbers are entry ids (the root is FUSE_ROOT_ID = 1, ids are
 *     multiples of 4, a map parameter's keys/values/status are id+1..id+3).
 *     Ids are never reused, so the kernel can never confuse two entries.
 *     We count the kernel's lookups per root entry; when a deleted entry's
 *     count drops to zero (forget), its staging data is released.
 *   - Reads never copy tensor data through this process when they can be
 *     avoided: the tree hands out (fd, offset) pieces, from the checkpoint
 *     for untouched entries and from a staging file for edited ones, and
 *     libfuse splices them into /dev/fuse.
 *   - Writes, truncates, creates, unlinks, renames and setxattr of
 *     user.dtype / user.shape change the tree; fsync of any file or
 *     directory commits the whole tree as a new checkpoint, and so does
 *     unmounting.  If that last commit fails, the tree is saved as a
 *     recovery checkpoint beside the original instead of being lost.
 *   - Content only changes through this mount, so the kernel keeps its page
 *     cache across opens and shared mmap works, also for writing.  The
 *     exception is a write-only open that truncates (cp, dd, "> file",
 *     numpy's tofile): it bypasses the page cache (direct_io), so a bulk
 *     rewrite is not also copied into cached pages nobody reads; the
 *     kernel (>= 6.6, FUSE 7.39) drops cached pages of the ranges such
 *     writes touch, so other opens and mappings stay coherent.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_tree.h"
#include "ckpt_status.h"

#define ATTR_TIMEOUT 1.0
#define ENTRY_TIMEOUT 1.0

struct ckptfs {
	struct ckpt_tree *tree;
	uid_t uid;
	gid_t gid;
	bool foreground;
	uint64_t mount_ns; /* mtime of the root directory */
	unsigned max_read; /* -o max_read=N, 0 if not given */
	bool direct_writes; /* the kernel invalidates pages on direct writes */
	pthread_mutex_t lock; /* last_error */
	char last_error[sizeof(((struct ckpt_error *)0)->msg)];
};

static struct ckptfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Logs to stderr in the foreground and to syslog always. */
static void logmsg(const struct ckptfs *fs, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void logmsg(const struct ckptfs *fs, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (fs->foreground) {
		va_list aq;
		va_copy(aq, ap);
		fputs("ckptfs: ", stderr);
		vfprintf(stderr, fmt, aq);
		fputc('\n', stderr);
		va_end(aq);
	}
	vsyslog(prio, fmt, ap);
	va_end(ap);
}

/* Replies with the errno of err and remembers failed commits. */
static void reply_fail(fuse_req_t req, const struct ckpt_error *err)
{
	fuse_reply_err(req, ckpt_errno(err));
}

static uint64_t dir_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? 0 : ino;
}

/* Gives back lookups the kernel did not get (a failed reply) or forgot. */
static void forget_lookups(struct ckptfs *fs, uint64_t id, uint64_t n)
{
	ckpt_tree_forget(fs->tree, id, n);
}

static void fill_attr(const struct ckptfs *fs, fuse_ino_t ino,
		      const struct ckpt_entry_info *info, struct stat *st)
{
	bool ro = ckpt_tree_read_only(fs->tree) != NULL;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtim.tv_sec = (time_t)(info->mtime_ns / 1000000000u);
	st->st_mtim.tv_nsec = (long)(info->mtime_ns % 1000000000u);
	st->st_atim = st->st_ctim = st->st_mtim;
	st->st_blksize = 4096;
	if (info->kind == CKPT_ENTRY_FILE) {
		st->st_mode = S_IFREG | (ro || ino % 4 ? 0444 : 0644);
		st->st_nlink = 1;
		st->st_size = (off_t)info->size;
		st->st_blocks = (blkcnt_t)((info->size + 511) / 512);
	} else {
		st->st_mode = S_IFDIR | (ro || ino != FUSE_ROOT_ID ? 0555 : 0755);
		st->st_nlink = 2;
	}
}

/* Stats ino into st; false if it does not exist. */
static bool stat_ino(struct ckptfs *fs, fuse_ino_t ino, struct stat *st)
{
	struct ckpt_entry_info info;

	if (ino == FUSE_ROOT_ID) {
		memset(&info, 0, sizeof(info));
		info.kind = CKPT_ENTRY_DIR;
		info.mtime_ns = fs->mount_ns;
	} else if (ckpt_tree_stat(fs->tree, ino, &info) != CKPT_OK) {
		return false;
	}
	fill_attr(fs, ino, &info, st);
	return true;
}

/* Fills e for id, whose lookup the tree has counted; false (ENOENT
 * replied, the count given back) if id is gone. */
static bool make_entry(fuse_req_t req, uint64_t id,
		       struct fuse_entry_param *e)
{
	struct ckptfs *fs = fs_of(req);

	memset(e, 0, sizeof(*e));
	if (!stat_ino(fs, id, &e->attr)) {
		forget_lookups(fs, id, 1);
		fuse_reply_err(req, ENOENT);
		return false;
	}
	e->ino = id;
	e->attr_timeout = ATTR_TIMEOUT;
	e->entry_timeout = ENTRY_TIMEOUT;
	return true;
}

static void reply_entry(fuse_req_t req, uint64_t id)
{
	struct fuse_entry_param e;

	if (make_entry(req, id, &e) && fuse_reply_entry(req, &e) != 0)
		forget_lookups(fs_of(req), id, 1);
}

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

/* Sets how the kernel caches an open file: write-only opens that start
 * from an empty file skip the page cache (see the top of this file), all
 * others keep it across opens. */
static void set_caching(const struct ckptfs *fs, struct fuse_file_info *fi,
			bool empty)
{
	if (fs->direct_writes && empty &&
	    (fi->flags & O_ACCMODE) == O_WRONLY)
		fi->direct_io = 1;
	else
		fi->keep_cache = 1;
}

/* Commits pending changes; at unmount a failed commit saves a recovery
 * checkpoint so that nothing is lost. */
static void op_destroy(void *userdata)
{
	struct ckptfs *fs = userdata;
	struct ckpt_error err;
	char *saved, *lost;

	if (ckpt_tree_read_only(fs->tree) || !ckpt_tree_dirty(fs->tree))
		return;
	if (ckpt_tree_commit(fs->tree, &err) == CKPT_OK) {
		logmsg(fs, LOG_INFO, "committed %s at unmount",
		       ckpt_tree_target(fs->tree));
		return;
	}
	logmsg(fs, LOG_ERR, "commit at unmount failed: %s", err.msg);
	if (!ckpt_tree_dirty(fs->tree)) { /* in place, directory unsynced */
		ckpt_status_write(getpid(), "commit at unmount: %s", err.msg);
		return;
	}
	if (ckpt_tree_save_recovery(fs->tree, &saved, &lost, &err) == CKPT_OK) {
		logmsg(fs, LOG_ERR, "pending changes saved to %s%s%s", saved,
		       lost ? "; these could not be saved: " : "",
		       lost ? lost : "");
		ckpt_status_write(getpid(), "commit at unmount failed; pending "
				  "changes saved to %s%s%s", saved,
				  lost ? "; these could not be saved: " : "",
				  lost ? lost : "");
		free(saved);
		free(lost);
	} else {
		logmsg(fs, LOG_CRIT, "could not save pending changes: %s",
		       err.msg);
		ckpt_status_write(getpid(), "commit at unmount failed and the "
				  "changes could not be saved: %s", err.msg);
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint64_t id;

	if (ckpt_tree_lookup(fs_of(req)->tree, dir_of(parent), name, &id))
		fuse_reply_err(req, ENOENT);
	else
		reply_entry(req, id);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_lookups(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_lookups(fs_of(req), forgets[i].ino,
			       forgets[i].nlookup);
	fuse_reply_none(req);
}

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
	/* mode, owner and times are accepted and not stored: a checkpoint
	 * has no place for them (chmod and touch succeed) */
	if (!stat_ino(fs, ino, &st))
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

struct dir_fill {
	fuse_req_t req;
	struct ckptfs *fs;
	bool plus; /* readdirplus: entries carry attributes and a lookup */
	char *buf;
	size_t size, used;
};

static bool add_dirent(void *ctx, const char *name, uint64_t id,
		       const struct ckpt_entry_info *info, size_t next)
{
	struct dir_fill *d = ctx;
	struct fuse_entry_param e;
	size_t need;
	bool dot = !strcmp(name, ".") || !strcmp(name, "..");

	if (strlen(name) > NAME_MAX)
		return true; /* the kernel cannot show it; 'ckpt ls' can */
	memset(&e, 0, sizeof(e));
	fill_attr(d->fs, id, info, &e.attr);
	need = d->plus ? fuse_add_direntry_plus(d->req, NULL, 0, name, NULL, 0)
		       : fuse_add_direntry(d->req, NULL, 0, name, NULL, 0);
	if (d->used + need > d->size)
		return false;
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

static void list_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     bool plus)
{
	struct dir_fill d = {.req = req, .fs = fs_of(req), .plus = plus,
			     .size = size};
	struct ckpt_entry_info dir = {.kind = CKPT_ENTRY_DIR};
	struct stat st;

	if (!stat_ino(d.fs, ino, &st) || !S_ISDIR(st.st_mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
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
	ckpt_tree_list(d.fs->tree, dir_of(ino), off >= 2 ? (size_t)off - 2 : 0,
		       add_dirent, &d, plus);
	fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	list_dir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	list_dir(req, ino, size, off, true);
}

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
	set_caching(fs, fi, fi->flags & O_TRUNC);
	fuse_reply_open(req, fi);
}

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
	if (strlen(name) > NAME_MAX) { /* it could never be listed */
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (ckpt_tree_create(fs->tree, name, &id, &err)) {
		reply_fail(req, &err);
		return;
	}
	set_caching(fs, fi, true);
	if (make_entry(req, id, &e) && fuse_reply_create(req, &e, fi) != 0)
		forget_lookups(fs, id, 1);
}

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
	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (ckpt_tree_create(fs_of(req)->tree, name, &id, &err))
		reply_fail(req, &err);
	else
		reply_entry(req, id);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fuse_reply_err(req, EPERM); /* the parameter list is flat */
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link, (void)parent, (void)name;
	fuse_reply_err(req, EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
		    const char *name)
{
	(void)ino, (void)parent, (void)name;
	fuse_reply_err(req, EPERM);
}

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

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, EPERM); /* map parameters are read-only */
}

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
	if (strlen(newname) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (ckpt_tree_rename(fs_of(req)->tree, name, newname,
			     flags & RENAME_NOREPLACE, &err))
		reply_fail(req, &err);
	else
		fuse_reply_err(req, 0);
}

static int reply_pieces(void *ctx, const struct ckpt_piece *p, uint32_t n)
{
	fuse_req_t req = ctx;
	struct fuse_bufvec *bv;

	bv = calloc(1, sizeof(*bv) + n * sizeof(struct fuse_buf));
	if (!bv)
		return -ENOMEM;
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
	return 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	int r;

	(void)fi;
	r = ckpt_tree_read_pieces(fs_of(req)->tree, ino, (uint64_t)off, size,
				  reply_pieces, req);
	if (r < 0)
		fuse_reply_err(req, -r);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct ckpt_error err;
	ssize_t n;

	(void)fi;
	n = ckpt_tree_write(fs_of(req)->tree, ino, buf, size, (uint64_t)off,
			    &err);
	if (n < 0)
		reply_fail(req, &err);
	else
		fuse_reply_write(req, (size_t)n);
}

/* fsync of anything commits everything. */
static void commit(fuse_req_t req)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;

	if (ckpt_tree_read_only(fs->tree)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (ckpt_tree_commit(fs->tree, &err) == CKPT_OK) {
		pthread_mutex_lock(&fs->lock);
		fs->last_error[0] = '\0';
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, 0);
		return;
	}
	logmsg(fs, LOG_ERR, "commit failed: %s", err.msg);
	pthread_mutex_lock(&fs->lock);
	snprintf(fs->last_error, sizeof(fs->last_error), "%s", err.msg);
	pthread_mutex_unlock(&fs->lock);
	reply_fail(req, &err);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino, (void)datasync, (void)fi;
	commit(req);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)ino, (void)datasync, (void)fi;
	commit(req);
}

static const char xattr_list[] = "user.dtype\0user.shape";

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

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_entry_info info;
	char buf[sizeof(fs->last_error)];

	if (ino == FUSE_ROOT_ID) { /* control values for 'ckpt umount' */
		if (strcmp(name, CKPT_XATTR_PID) == 0) {
			snprintf(buf, sizeof(buf), "%d", (int)getpid());
		} else if (strcmp(name, CKPT_XATTR_ERROR) == 0) {
			pthread_mutex_lock(&fs->lock);
			snprintf(buf, sizeof(buf), "%s", fs->last_error);
			pthread_mutex_unlock(&fs->lock);
		} else {
			fuse_reply_err(req, ENODATA);
			return;
		}
		reply_value(req, buf, strlen(buf), size);
		return;
	}
	if (strncmp(name, "user.", 5) != 0) {
		/* no security.*, system.* (ACLs), trusted.*: saying so stops
		 * ls -l from asking again for every file */
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (ckpt_tree_stat(fs->tree, ino, &info)) {
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

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct ckpt_entry_info info;

	if (ino == FUSE_ROOT_ID) {
		reply_value(req, "", 0, size);
		return;
	}
	if (ckpt_tree_stat(fs_of(req)->tree, ino, &info)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_value(req, xattr_list,
		    info.kind == CKPT_ENTRY_FILE ? sizeof(xattr_list) : 0,
		    size);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;
	ckpt_err r;

	(void)flags; /* both attributes always exist */
	if (strcmp(name, "user.dtype") == 0)
		r = ckpt_tree_set_dtype(fs->tree, ino, value, size, &err);
	else if (strcmp(name, "user.shape") == 0)
		r = ckpt_tree_set_shape(fs->tree, ino, value, size, &err);
	else {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (r) {
		if (r == CKPT_ERR_INVAL)
			logmsg(fs, LOG_NOTICE, "setxattr %s: %s", name,
			       err.msg);
		reply_fail(req, &err);
	} else {
		fuse_reply_err(req, 0);
	}
}

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

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct ckptfs *fs = fs_of(req);
	struct statvfs sv;
	char *dir = strdup(ckpt_tree_target(fs->tree)), *slash;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	if (dir && (slash = strrchr(dir, '/')))
		*slash = '\0';
	if (!dir || statvfs(slash ? dir : ".", &sv) != 0) {
		memset(&sv, 0, sizeof(sv));
		sv.f_bsize = sv.f_frsize = 4096;
	}
	free(dir);
	sv.f_files = ckpt_tree_count(fs->tree) + 1;
	sv.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
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

/* ---- command line ------------------------------------------------------ */

struct options {
	char *checkpoint;
	int nonopts;
	char *output;
	char *staging;
	int create;
	int crc;
	int ro;
	int ignore_crc;
	char *enc_mode;
	char *keyfile;
	int keyfd;
	unsigned max_read;
};

#define OPT(t, p) {t, offsetof(struct options, p), 1}
static const struct fuse_opt option_spec[] = {
	OPT("output=%s", output),
	OPT("staging=%s", staging),
	OPT("create", create),
	OPT("crc", crc),
	OPT("ignore_crc", ignore_crc),
	OPT("enc_mode=%s", enc_mode),
	OPT("keyfile=%s", keyfile),
	{"keyfd=%d", offsetof(struct options, keyfd), 0},
	FUSE_OPT_KEY("ro", 1),
	FUSE_OPT_END,
};

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
	if (key == 1) { /* -o ro: ours, and the kernel's */
		o->ro = 1;
		return 1;
	}
	if (key == FUSE_OPT_KEY_OPT &&
	    sscanf(arg, "max_read=%u", &o->max_read) == 1)
		return 1; /* the kernel's too: init must agree */
	if (key == FUSE_OPT_KEY_NONOPT && o->nonopts++ == 0) {
		o->checkpoint = strdup(arg);
		return 0; /* consumed: the checkpoint */
	}
	return 1; /* keep: the mountpoint and every other option */
}

static void usage(const char *prog)
{
	printf("usage: %s [options] CHECKPOINT MOUNTPOINT\n"
	       "\n"
	       "Mount a MindSpore checkpoint (.ckpt) as a directory: one file "
	       "per\n"
	       "parameter holding its raw tensor bytes, with extended "
	       "attributes\n"
	       "user.dtype and user.shape.  Names are shown as stored, with "
	       "'/'\n"
	       "written %%2F, '%%' written %%25 and control characters as "
	       "%%XX.\n"
	       "Edits are written back as a new checkpoint on fsync and on "
	       "unmount\n"
	       "('ckpt umount MOUNTPOINT' waits for that and reports "
	       "failures).\n"
	       "\n"
	       "ckptfs options:\n"
	       "    -h   --help            print help\n"
	       "    -V   --version         print version\n"
	       "    -f                     stay in the foreground\n"
	       "    -d   -o debug          debug output (implies -f)\n"
	       "    -s                     single-threaded\n"
	       "    -o ro                  read-only\n"
	       "    -o output=PATH         commit to PATH; CHECKPOINT is left "
	       "untouched\n"
	       "    -o staging=DIR         keep edited tensors in DIR until "
	       "commit\n"
	       "                           (default: beside the checkpoint)\n"
	       "    -o create              CHECKPOINT may not exist: start "
	       "empty\n"
	       "    -o crc                 add a crc_num trailer on commit\n"
	       "    -o ignore_crc          mount a file whose crc_num trailer "
	       "does not\n"
	       "                           match (read-only, with a warning)\n"
	       "    -o enc_mode=MODE       the checkpoint is encrypted: "
	       "AES-GCM, AES-CBC\n"
	       "                           or SM4-CBC; commits re-encrypt it\n"
	       "    -o keyfile=PATH        the raw key bytes (MindSpore's "
	       "enc_key);\n"
	       "                           keyfile=- reads them from standard "
	       "input\n"
	       "    -o keyfd=N             read the key from inherited "
	       "descriptor N\n"
	       "\n"
	       "Environment: TMPDIR (staging and recovery files when the "
	       "checkpoint's\n"
	       "directory cannot take them), CKPT_CRYPTO_THREADS=N "
	       "(threads that\n"
	       "decrypt and encrypt; default: one per CPU, at most 8).\n"
	       "\n"
	       "FUSE options:\n",
	       prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* Reads the key named by the options into *key (NULL: none). */
static int load_key(const struct options *o, struct ckpt_key **key)
{
	struct ckpt_error err;

	if (ckpt_key_load(o->enc_mode, o->keyfile, o->keyfd, key, &err)) {
		fprintf(stderr, "ckptfs: %s\n", err.msg);
		return -1;
	}
	return 0;
}

/* Opens the checkpoint; prints the reason on failure. */
static int load(struct ckptfs *fs, const struct options *o,
		const struct ckpt_key *key)
{
	struct ckpt_tree_opts to = {.output = o->output,
				    .staging_dir = o->staging,
				    .create = o->create,
				    .read_only = o->ro,
				    .add_crc = o->crc,
				    .open.key = key};
	struct ckpt_error err;
	struct timespec now;
	ckpt_err e;

	e = ckpt_tree_open(o->checkpoint, &to, &fs->tree, &err);
	if (e == CKPT_ERR_CRC && o->ignore_crc) {
		fprintf(stderr, "ckptfs: warning: %s\nckptfs: mounting it "
			"read-only because of -o ignore_crc\n", err.msg);
		to.open.skip_crc = true;
		to.read_only = true;
		e = ckpt_tree_open(o->checkpoint, &to, &fs->tree, &err);
	}
	if (e == CKPT_ERR_CRC)
		fprintf(stderr, "ckptfs: %s\nckptfs: -o ignore_crc mounts it "
			"read-only anyway\n", err.msg);
	else if (e)
		fprintf(stderr, "ckptfs: %s\n", err.msg);
	if (e) {
		fprintf(stderr, "ckptfs: not mounted; 'ckpt verify %s' "
			"checks the file\n", o->checkpoint);
		return -1;
	}
	if (ckpt_tree_source_stats(fs->tree) &&
	    ckpt_tree_source_stats(fs->tree)->enc_legacy)
		fprintf(stderr, "ckptfs: warning: %s uses the MindSpore 1.3-1.6 "
			"encryption layout, which is not authenticated: "
			"nothing vouches for its integrity\n", o->checkpoint);
	if (!o->ro && ckpt_tree_read_only(fs->tree))
		fprintf(stderr, "ckptfs: mounting %s read-only: %s\n",
			o->checkpoint, ckpt_tree_read_only(fs->tree));
	fs->uid = getuid();
	fs->gid = getgid();
	clock_gettime(CLOCK_REALTIME, &now);
	fs->mount_ns = (uint64_t)now.tv_sec * 1000000000u +
		       (uint64_t)now.tv_nsec;
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct options o = {.keyfd = -1};
	struct fuse_loop_config *cfg = NULL;
	struct fuse_session *se = NULL;
	struct ckptfs fs = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct ckpt_key *key = NULL;
	char fsname[PATH_MAX + 16];
	int ret = 1;

	if (fuse_opt_parse(&args, &o, option_spec, opt_proc) != 0 ||
	    fuse_parse_cmdline(&args, &opts) != 0)
		goto out_args;
	if (opts.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out;
	}
	if (opts.show_version) {
		printf("ckptfs %s\n", CKPT_VERSION);
		fuse_lowlevel_version();
		ret = 0;
		goto out;
	}
	if (!o.checkpoint || !opts.mountpoint) {
		fprintf(stderr, "usage: %s [options] CHECKPOINT MOUNTPOINT\n"
			"       %s --help for the options\n", argv[0],
			argv[0]);
		goto out;
	}
	fs.foreground = opts.foreground;
	fs.max_read = o.max_read;
	openlog("ckptfs", LOG_PID, LOG_USER);
	if (load_key(&o, &key) != 0 || load(&fs, &o, key) != 0)
		goto out;
	snprintf(fsname, sizeof(fsname), "-ofsname=ckptfs:%s", o.checkpoint);
	if ((ckpt_tree_read_only(fs.tree) && !o.ro &&
	     fuse_opt_add_arg(&args, "-oro")) ||
	    fuse_opt_add_arg(&args, "-odefault_permissions") ||
	    fuse_opt_add_arg(&args, "-osubtype=ckptfs") ||
	    fuse_opt_add_arg(&args, fsname))
		goto out;
	se = fuse_session_new(&args, &ops, sizeof(ops), &fs);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(opts.foreground);
	if (opts.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)opts.clone_fd);
		fuse_loop_cfg_set_max_threads(cfg, opts.max_threads);
		ret = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	ret = ret != 0;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	free(opts.mountpoint);
out_args:
	fuse_opt_free_args(&args);
	free(o.checkpoint);
	free(o.output);
	free(o.staging);
	free(o.enc_mode);
	free(o.keyfile);
	ckpt_tree_close(fs.tree);
	ckpt_key_free(key);
	return ret;
}
