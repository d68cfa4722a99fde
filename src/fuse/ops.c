/*
 * ops.c - the FUSE requests on files of ckptfs (low-level API) and the
 * table of operations (see ckptfs.h for the other files).
 *
 * Owns the requests that read or change parameter files: open, read,
 * write, create, setattr, statfs, and how the kernel caches an open file
 * (the requests on names, mknod to rename, are in nameops.c).
 *
 *   - Reads never copy tensor data through this process when they can be
 *     avoided: the tree hands out (fd, offset) pieces, from the checkpoint
 *     for untouched entries and from a staging file for edited ones, and
 *     libfuse splices them into /dev/fuse.
 *   - Writes, truncates, creates, unlinks and renames change the tree;
 *     only the root holds parameters that can change, map parameters are
 *     read-only.  Nothing is committed here (control.c).
 *   - Content only changes through this mount, so the kernel keeps its page
 *     cache across opens and shared mmap works, also for writing.  The
 *     exception is a write-only open that truncates (cp, dd, "> file",
 *     numpy's tofile): it bypasses the page cache (direct_io), so a bulk
 *     rewrite is not also copied into cached pages nobody reads; the
 *     kernel (>= 6.6, FUSE 7.39) drops cached pages of the ranges such
 *     writes touch, so other opens and mappings stay coherent.
 *   - The mount's readahead window is raised from the kernel's 128 KiB to
 *     READ_AHEAD_KB at the first open (raise_readahead).
 *
 * Locking: fs->lock only for source_msg (note_source_problem).  Never
 * holds a tree descriptor beyond the callback it was handed to.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <syslog.h>

#include "ckpt_npy.h"
#include "ckptfs.h"

/* The readahead window of the mount: sequential reads become READs of
 * this size.  512 KiB moves a cold or page-cache read 20-25 % faster than
 * the kernel's 128 KiB and halves the requests; 1 MiB and more are
 * slower, because libfuse 3.14 copies a reply instead of splicing it when
 * the header and the data do not fit one pipe, and a pipe holds at most
 * /proc/sys/fs/pipe-max-size (1 MiB) without CAP_SYS_RESOURCE
 * (docs/performance.md, "Reads against a minimal FUSE server"). */
#define READ_AHEAD_KB 512

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

	fi->fh = (fi->fh & FH_NPY) | (acc != O_RDONLY ? FH_WRITABLE : 0);
	if (fs->direct_writes && empty && acc == O_WRONLY)
		fi->direct_io = 1;
	else
		fi->keep_cache = 1;
}

/* The mount's "MAJ:MIN" (its backing device, named so under
 * /sys/class/bdi) from /proc/self/mountinfo, the last mount on
 * fs->mountpoint; false if not found.  Not stat(2): that could wait for
 * this very daemon. */
static bool mount_dev(const struct ckptfs *fs, char *dev, size_t size)
{
	char line[PATH_MAX * 2 + 256], id[32], path[PATH_MAX * 2];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		/* mount ID, parent ID, MAJ:MIN, root, mount point (with
		 * octal escapes: a mount point with a space, tab, newline
		 * or backslash is not found, the kernel's window stays) */
		if (sscanf(line, "%*s %*s %31s %*s %4095s", id, path) == 2 &&
		    strcmp(path, fs->mountpoint) == 0) {
			snprintf(dev, size, "%s", id);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* Once, after INIT (which only lets a server lower the window): raises
 * the readahead window of this mount's bdi to READ_AHEAD_KB unless it is
 * that large already.  Needs root (sysfs); otherwise the kernel's window
 * stays, as it does when the attempt fails. */
static void raise_readahead(struct ckptfs *fs)
{
	char dev[32], path[96];
	unsigned kb = 0;
	FILE *f;

	if (atomic_exchange(&fs->readahead_set, true) ||
	    !mount_dev(fs, dev, sizeof(dev)))
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	f = fopen(path, "r+e");
	if (!f)
		return;
	if (fscanf(f, "%u", &kb) == 1 && kb < READ_AHEAD_KB) {
		rewind(f);
		fprintf(f, "%u\n", READ_AHEAD_KB);
	}
	if (fclose(f) != 0)
		logmsg(LOG_DEBUG, "%s: cannot raise the readahead window",
		       path);
}

/* ---- files ------------------------------------------------------------- */

/* Truncates on a size change; mode, owner and times are accepted and not
 * stored: a checkpoint has no place for them (chmod and touch succeed). */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;
	struct stat st;

	int e = 0;

	(void)fi;
	if ((to_set & FUSE_SET_ATTR_SIZE) && fs->npy &&
	    npy_truncate(req, ino, (uint64_t)attr->st_size, &e)) {
		if (e) {
			fuse_reply_err(req, e);
			return;
		}
	} else if ((to_set & FUSE_SET_ATTR_SIZE) &&
		   ckpt_tree_truncate(fs->tree, ino, (uint64_t)attr->st_size,
				      &err)) {
		reply_fail(req, &err);
		return;
	}
	if (ino_attr(req, ino, &st))
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/* Opens a file; a writing open with O_TRUNC empties it (-o npy: once
 * the header came, npyfs.c). */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_entry_info info;
	struct ckpt_error err;
	bool trunc = (fi->flags & O_TRUNC) &&
		     (fi->flags & O_ACCMODE) != O_RDONLY;
	int e;

	if (!ino_get(req, ino, &info))
		return;
	if (info.kind != CKPT_ENTRY_FILE) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY &&
	    ckpt_tree_read_only(fs->tree)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (trunc && fs->npy && npy_viewed(&info)) {
		e = npy_opened(fs, ino, false, true, 0, NULL);
		if (e) {
			fuse_reply_err(req, e);
			return;
		}
		fi->fh |= FH_NPY;
	} else if (trunc && ckpt_tree_truncate(fs->tree, ino, 0, &err)) {
		reply_fail(req, &err);
		return;
	}
	set_open_file(fs, fi, fi->flags & O_TRUNC);
	if (fuse_reply_open(req, fi) != 0 && (fi->fh & FH_NPY))
		npy_release(fs, ino);
	raise_readahead(fs);
}

/* A new parameter in the root (EPERM elsewhere; with -o tree in any
 * directory of the view), open; -o npy: NAME.npy is parameter NAME,
 * waiting for its header (a scratch file does not wait). */
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct ckpt_error err;
	char buf[NAME_MAX + 1];
	const char *tname = name;
	uint64_t id;
	int r;

	(void)mode;
	if (fs->tv && tv_dir_ino(parent)) {
		int no = tv_create(fs, parent, name, &id);
		if (no) {
			fuse_reply_err(req, no);
			return;
		}
	} else if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, EPERM);
		return;
	} else if (!name_fits(req, name) ||
		   (fs->npy && !(tname = npy_new_name(req, name, buf)))) {
		return;
	} else if (ckpt_tree_create(fs->tree, tname, &id, &err)) {
		reply_fail(req, &err);
		return;
	}
	if (fs->npy && !ckpt_tree_is_scratch(fs->tree, id)) {
		r = npy_opened(fs, id, true, false, parent, name);
		if (r) {
			ckpt_tree_forget(fs->tree, id, 1);
			if (fs->tv)
				tv_unlink(fs, parent, name, id);
			else
				ckpt_tree_unlink(fs->tree, tname, NULL);
			fuse_reply_err(req, r);
			return;
		}
		fi->fh = FH_NPY;
	}
	set_open_file(fs, fi, true);
	if (make_entry(req, id, &e) && fuse_reply_create(req, &e, fi) != 0) {
		ckpt_tree_forget(fs->tree, id, 1);
		if (fi->fh & FH_NPY)
			npy_release(fs, id);
	}
}

/* ---- data -------------------------------------------------------------- */

/* A read's reply: the request and the bytes before the tree's pieces
 * (-o npy: of the header). */
struct read_reply {
	fuse_req_t req;
	const char *head;
	size_t hlen;
};

/* Replies to a read with the header bytes, if any, and the tree's pieces
 * (spliced where they are in a file); CKPT_ERR_NOMEM if there is no
 * memory to describe them. */
static ckpt_err reply_pieces(void *ctx, const struct ckpt_piece *p, uint32_t n,
			     struct ckpt_error *err)
{
	const struct read_reply *rr = ctx;
	fuse_req_t req = rr->req;
	struct fuse_bufvec *bv;
	uint32_t h = rr->hlen ? 1 : 0;

	bv = calloc(1, sizeof(*bv) + (n + h) * sizeof(struct fuse_buf));
	if (!bv) {
		*err = (struct ckpt_error){.code = CKPT_ERR_NOMEM,
					   .msg = "out of memory"};
		return CKPT_ERR_NOMEM;
	}
	bv->count = n + h;
	if (h) /* read only: fuse_buf has no const */
		bv->buf[0] = (struct fuse_buf){
			.size = rr->hlen, .mem = (void *)(uintptr_t)rr->head};
	for (uint32_t i = 0; i < n; i++) {
		if (p[i].fd >= 0)
			bv->buf[i + h] = (struct fuse_buf){
				.size = p[i].len,
				.flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK,
				.fd = p[i].fd,
				.pos = (off_t)p[i].pos};
		else
			bv->buf[i + h] = (struct fuse_buf){
				.size = p[i].len,
				/* read only: fuse_buf has no const */
				.mem = (void *)(uintptr_t)p[i].mem};
	}
	if (n + h == 0)
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
	char text[sizeof(err.msg) + 200];
	bool fresh;

	if (ckpt_tree_check_source(fs->tree, &err) == CKPT_OK)
		return;
	pthread_mutex_lock(&fs->lock);
	fresh = strcmp(fs->source_msg, err.msg) != 0;
	if (fresh)
		snprintf(fs->source_msg, sizeof(fs->source_msg), "%s", err.msg);
	pthread_mutex_unlock(&fs->lock);
	if (fresh)
		logmsg(LOG_ERR, "reads fail with EIO: %s",
		       ckpt_error_text(&err, CKPT_FRONT_MOUNT, text,
				       sizeof(text)));
}

/* Reads through the tree's pieces (-o npy: after the header's bytes);
 * an EIO is explained in the log. */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct read_reply rr = {.req = req};
	char head[CKPT_NPY_HEADER_MAX];
	uint64_t pos = (uint64_t)off;
	struct ckpt_error err;
	int e = 0;

	(void)fi;
	if (fs->npy &&
	    npy_read_split(fs, ino, &pos, &size, head, &rr.hlen, &e)) {
		rr.head = head;
		if (e || size == 0) {
			if (e)
				fuse_reply_err(req, e);
			else
				fuse_reply_buf(req, head, rr.hlen);
			return;
		}
	}
	if (ckpt_tree_read_pieces(fs->tree, ino, pos, size, reply_pieces, &rr,
				  &err) == CKPT_OK)
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
	if (fs_of(req)->npy && npy_write(req, ino, buf, size, off))
		return;
	if (ckpt_tree_write(fs_of(req)->tree, ino, buf, size, (uint64_t)off,
			    &err))
		reply_fail(req, &err);
	else
		fuse_reply_write(req, size);
}

/* -o npy: a close finishes a file that waits for its header. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fi->fh & FH_NPY)
		npy_flush(fs_of(req), ino);
	fuse_reply_err(req, 0);
}

/* -o npy: the last close forgets that a file waited for its header. */
static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	if (fi->fh & FH_NPY)
		npy_release(fs_of(req), ino);
	fuse_reply_err(req, 0);
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

/* ---- the table --------------------------------------------------------- */

/* Names and lookup counts are in inode.c, listings in dir.c, extended
 * attributes in xattr.c, fsync and the commit at unmount in control.c. */
const struct fuse_lowlevel_ops ckptfs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
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
	.flush = op_flush,
	.release = op_release,
	.write = op_write,
	.fsync = op_fsync,
	.fsyncdir = op_fsyncdir,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.statfs = op_statfs,
};
