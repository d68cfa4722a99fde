/*
 * ckptfs.c - mount a MindSpore checkpoint as a directory (low-level FUSE).
 *
 * Design.  All knowledge of the format lives in libckpt: ckpt_open scans the
 * file once and hands us an index of parameters, each with its dtype, shape
 * and the extents of the file that hold its bytes.  This file only maps that
 * index onto FUSE:
 *
 *   - Inode numbers are computed, not allocated: the root is 1 and
 *     parameter i owns the block 2 + 4*i .. 5 + 4*i (the parameter itself,
 *     then the keys/values/status files when it is a map, shown as a
 *     directory).  The index does not change while mounted, so lookup
 *     counts need no bookkeeping and forget has nothing to release.
 *   - Reads never copy tensor data through this process when they can be
 *     avoided: the reply is a fuse_bufvec of (fd, offset) pieces, one per
 *     extent, which libfuse splices from the checkpoint into /dev/fuse.
 *     Only bfloat16 stored as float32 is converted in a buffer.
 *   - The content never changes, so the kernel may keep its page cache
 *     across opens (keep_cache), attributes are cached for long, and
 *     shared read-only mmap works.
 *   - Extended attributes user.dtype and user.shape describe each tensor.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"

#define ROOT_INO FUSE_ROOT_ID
#define INO_PER_PARAM 4
#define CACHE_TIMEOUT 86400.0 /* the index never changes while mounted */

struct ckptfs {
	struct ckpt_file *ckpt;
	struct stat src; /* stat of the checkpoint: times, owner */
	uid_t uid;
	gid_t gid;
};

/* What an inode number designates. */
struct node {
	const struct ckpt_param *param; /* NULL for the root */
	const struct ckpt_tensor *tensor; /* NULL for directories */
};

static struct ckptfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static fuse_ino_t param_ino(size_t i)
{
	return 2 + (fuse_ino_t)i * INO_PER_PARAM;
}

/* Resolves ino; returns false if it designates nothing. */
static bool resolve(const struct ckptfs *fs, fuse_ino_t ino, struct node *n)
{
	size_t i, k;

	n->param = NULL;
	n->tensor = NULL;
	if (ino == ROOT_INO)
		return true;
	if (ino < 2)
		return false;
	i = (ino - 2) / INO_PER_PARAM;
	k = (ino - 2) % INO_PER_PARAM;
	n->param = ckpt_param_at(fs->ckpt, i);
	if (!n->param)
		return false;
	if (n->param->kind == CKPT_PARAM_TENSOR) {
		n->tensor = &n->param->tensor;
		return k == 0;
	}
	if (k > 0)
		n->tensor = &n->param->map[k - 1];
	return true;
}

static void fill_attr(const struct ckptfs *fs, fuse_ino_t ino,
		      const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_atim = fs->src.st_atim;
	st->st_mtim = fs->src.st_mtim;
	st->st_ctim = fs->src.st_ctim;
	st->st_blksize = 4096;
	if (n->tensor) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)n->tensor->size;
		st->st_blocks = (blkcnt_t)((n->tensor->size + 511) / 512);
	} else {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	}
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, const struct node *n)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = CACHE_TIMEOUT;
	e.entry_timeout = CACHE_TIMEOUT;
	fill_attr(fs_of(req), ino, n, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ckptfs *fs = fs_of(req);
	struct node dir, n;
	ssize_t i;

	if (!resolve(fs, parent, &dir) || dir.tensor) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (dir.param) { /* inside a map directory */
		for (int k = 0; k < CKPT_MAP_NTENSORS; k++) {
			if (strcmp(name, ckpt_map_names[k]) == 0) {
				fuse_ino_t ino = parent + 1 + (fuse_ino_t)k;
				resolve(fs, ino, &n);
				reply_entry(req, ino, &n);
				return;
			}
		}
		fuse_reply_err(req, ENOENT);
		return;
	}
	i = ckpt_find(fs->ckpt, name);
	if (i < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	resolve(fs, param_ino((size_t)i), &n);
	reply_entry(req, param_ino((size_t)i), &n);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct stat st;
	struct node n;

	(void)fi;
	if (!resolve(fs, ino, &n)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(fs, ino, &n, &st);
	fuse_reply_attr(req, &st, CACHE_TIMEOUT);
}

/* Adds one entry to a readdir reply; returns false when the buffer is full. */
static bool add_dirent(fuse_req_t req, char *buf, size_t size, size_t *used,
		       const char *name, fuse_ino_t ino, mode_t mode,
		       off_t next)
{
	struct stat st = {.st_ino = ino, .st_mode = mode};
	size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);

	if (*used + need > size)
		return false;
	fuse_add_direntry(req, buf + *used, size - *used, name, &st, next);
	*used += need;
	return true;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	size_t used = 0, count;
	struct node dir;
	char *buf;

	(void)fi;
	if (!resolve(fs, ino, &dir) || dir.tensor) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* offsets: 0 ".", 1 "..", 2 + i entry i */
	count = dir.param ? CKPT_MAP_NTENSORS : ckpt_count(fs->ckpt);
	for (off_t o = off; o < (off_t)count + 2; o++) {
		const char *name;
		fuse_ino_t child;
		mode_t mode = S_IFREG;

		if (o < 2) {
			name = o == 0 ? "." : "..";
			child = o == 0 ? ino : ROOT_INO;
			mode = S_IFDIR;
		} else if (dir.param) {
			name = ckpt_map_names[o - 2];
			child = ino + 1 + (fuse_ino_t)(o - 2);
		} else {
			const struct ckpt_param *p =
				ckpt_param_at(fs->ckpt, (size_t)(o - 2));
			name = p->fname;
			child = param_ino((size_t)(o - 2));
			if (p->kind == CKPT_PARAM_MAP)
				mode = S_IFDIR;
		}
		if (!add_dirent(req, buf, size, &used, name, child, mode,
				o + 1))
			break;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node n;

	if (!resolve(fs_of(req), ino, &n) || !n.tensor) {
		fuse_reply_err(req, n.param || ino == ROOT_INO ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* Replies with the stored bytes [off, off+size) as fd pieces to splice. */
static void reply_extents(fuse_req_t req, const struct ckptfs *fs,
			  const struct ckpt_tensor *t, size_t size, off_t off)
{
	uint32_t first = ckpt_tensor_extent_at(t, (uint64_t)off), n = 0;
	struct fuse_bufvec *bv;
	uint64_t pos = (uint64_t)off;

	for (uint32_t i = first; i < t->nextents &&
	     t->extents[i].pos < (uint64_t)off + size; i++)
		n++;
	bv = calloc(1, sizeof(*bv) + n * sizeof(struct fuse_buf));
	if (!bv) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	bv->count = n;
	for (uint32_t i = 0; i < n; i++) {
		const struct ckpt_extent *x = &t->extents[first + i];
		uint64_t in = pos - x->pos, len = x->len - in;
		if (len > (uint64_t)off + size - pos)
			len = (uint64_t)off + size - pos;
		bv->buf[i] = (struct fuse_buf){
			.size = (size_t)len,
			.flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK,
			.fd = ckpt_fd(fs->ckpt),
			.pos = (off_t)(x->src + in)};
		pos += len;
	}
	fuse_reply_data(req, bv, FUSE_BUF_SPLICE_MOVE);
	free(bv);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;
	struct node n;
	ssize_t got;
	char *buf;

	(void)fi;
	if (!resolve(fs, ino, &n) || !n.tensor) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((uint64_t)off >= n.tensor->size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > n.tensor->size - (uint64_t)off)
		size = (size_t)(n.tensor->size - (uint64_t)off);
	if (!n.tensor->bf16_from_f32) {
		reply_extents(req, fs, n.tensor, size, off);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	got = ckpt_tensor_read(fs->ckpt, n.tensor, buf, size, (uint64_t)off,
			       &err);
	if (got < 0) {
		fprintf(stderr, "ckptfs: %s\n", err.msg);
		fuse_reply_err(req, ckpt_errno(&err));
	} else {
		fuse_reply_buf(req, buf, (size_t)got);
	}
	free(buf);
}

static const char xattr_list[] = "user.dtype\0user.shape";

/* Formats xattr name of n into buf; returns its length or -errno. */
static int xattr_value(const struct node *n, const char *name, char *buf,
		       size_t size)
{
	const struct ckpt_tensor *t = n->tensor;
	int len;

	if (!t)
		return -ENODATA;
	if (strcmp(name, "user.dtype") == 0) {
		/* map tensors keep their stored (numpy) spelling */
		len = snprintf(buf, size, "%s",
			       n->param->kind == CKPT_PARAM_MAP
				       ? t->type_str
				       : ckpt_dtype_name(t->dtype));
	} else if (strcmp(name, "user.shape") == 0) {
		len = ckpt_shape_format(t->dims, t->ndims, buf, size);
	} else {
		return -ENODATA;
	}
	return len < (int)size ? len : -ERANGE;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	char buf[1024];
	struct node n;
	int len;

	if (!resolve(fs_of(req), ino, &n)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	len = xattr_value(&n, name, buf, sizeof(buf));
	if (len < 0)
		fuse_reply_err(req, -len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, (size_t)len);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	size_t len = sizeof(xattr_list);
	struct node n;

	if (!resolve(fs_of(req), ino, &n)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!n.tensor)
		len = 0;
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, xattr_list, len);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct ckptfs *fs = fs_of(req);
	const struct ckpt_stats *st = ckpt_stats(fs->ckpt);
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = (st->data_bytes + 4095) / 4096;
	sv.f_files = ckpt_count(fs->ckpt) + 1;
	sv.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.statfs = op_statfs,
};

/* ---- command line ------------------------------------------------------ */

struct options {
	char *checkpoint;
	int nonopts;
};

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
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
	       "written %%2F and '%%' written %%25.  The mount is read-only.\n"
	       "Unmount with 'fusermount3 -u MOUNTPOINT'.\n"
	       "\n"
	       "ckptfs options:\n"
	       "    -h   --help            print help\n"
	       "    -V   --version         print version\n"
	       "    -f                     stay in the foreground\n"
	       "    -d   -o debug          debug output (implies -f)\n"
	       "    -s                     single-threaded\n"
	       "    -o ro                  read-only (always the case for now)\n"
	       "\n"
	       "FUSE options:\n",
	       prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* Opens the checkpoint and fills fs; prints the reason on failure. */
static int load(struct ckptfs *fs, const char *path)
{
	struct ckpt_error err;

	if (ckpt_open(path, NULL, &fs->ckpt, &err) != CKPT_OK) {
		fprintf(stderr, "ckptfs: %s\n", err.msg);
		fprintf(stderr, "ckptfs: not mounted; run 'ckpt verify %s' for "
			"details\n", path);
		return -1;
	}
	if (fstat(ckpt_fd(fs->ckpt), &fs->src) < 0) {
		fprintf(stderr, "ckptfs: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fs->uid = getuid();
	fs->gid = getgid();
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct options o = {0};
	struct fuse_loop_config *cfg = NULL;
	struct fuse_session *se = NULL;
	struct ckptfs fs = {0};
	int ret = 1;

	if (fuse_opt_parse(&args, &o, NULL, opt_proc) != 0 ||
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
	if (load(&fs, o.checkpoint) != 0)
		goto out;
	if (fuse_opt_add_arg(&args, "-oro") ||
	    fuse_opt_add_arg(&args, "-odefault_permissions") ||
	    fuse_opt_add_arg(&args, "-osubtype=ckptfs"))
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
	ckpt_close(fs.ckpt);
	return ret;
}
