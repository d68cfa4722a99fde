/*
 * minfuse.c - the smallest FUSE server that serves a file the way ckptfs
 * does: the baseline of bench/run's group readbase (docs/performance.md).
 *
 *   minfuse [FUSE options: -f -s -d -o clone_fd,max_threads=N,...]
 *           [-o offset=N,size=N] FILE MOUNTPOINT
 *
 * The mount shows one read-only regular file, MOUNTPOINT/data, with FILE's
 * size and bytes, or the size bytes of FILE from offset (bench/run serves
 * a parameter from the checkpoint itself, at the file offsets ckptfs
 * reads it from: an offset that is not a multiple of the page size
 * changes what splice can do).  Everything ckptfs does between the kernel and the
 * bytes is absent here: no index, no tree, no lock, no staging, no
 * extended attributes.  What it shares with ckptfs is everything that
 * decides how the kernel reads: the same libfuse (low-level API, the same
 * FUSE_USE_VERSION), the same fuse_conn_info in init (splice write and
 * move asked for, nothing else changed: max_readahead, max_write,
 * max_pages stay what libfuse and the kernel agree on), keep_cache on
 * open, the same mount options (default_permissions), the same loop
 * (multi-threaded unless -s, clone_fd and max_threads as given), and the
 * same reply to READ: a one-piece fd-backed fuse_bufvec (FUSE_BUF_IS_FD |
 * FUSE_BUF_FD_SEEK) given to fuse_reply_data with FUSE_BUF_SPLICE_MOVE,
 * so that libfuse splices FILE's pages into /dev/fuse.  So whatever
 * ckptfs loses against this server is ckptfs's; what this server loses
 * against FILE read directly is the kernel's (and libfuse's).
 *
 * Not installed; built with the project (target minfuse) or by bench/run.
 * No readdir: only the file's name is looked up.
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME "data"
#define FILE_INO 2
#define TIMEOUT 1.0 /* ckptfs's ATTR_TIMEOUT and ENTRY_TIMEOUT */

static int src_fd = -1;
static off_t src_off, src_size; /* what is served: src_size bytes at src_off */
static long long opt_off = 0, opt_size = -1; /* -o offset=, -o size= */
static unsigned max_read; /* -o max_read=N, as ckptfs: 0 if not given */

/* As ckptfs's op_init: -o max_read, splice the replies. */
static void mf_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (max_read) /* libfuse 3.14 refuses INIT unless they agree */
		conn->max_read = max_read;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
}

/* The attributes of the root (1) or the file (2); false for others. */
static bool attr_of(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else if (ino == FILE_INO) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = src_size;
		st->st_blocks = (src_size + 511) / 512;
	} else {
		return false;
	}
	return true;
}

static void mf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {.ino = FILE_INO,
				     .attr_timeout = TIMEOUT,
				     .entry_timeout = TIMEOUT};

	if (parent != FUSE_ROOT_ID || strcmp(name, NAME) != 0)
		fuse_reply_err(req, ENOENT);
	else if (attr_of(FILE_INO, &e.attr))
		fuse_reply_entry(req, &e);
}

static void mf_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (attr_of(ino, &st))
		fuse_reply_attr(req, &st, TIMEOUT);
	else
		fuse_reply_err(req, ENOENT);
}

static void mf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FILE_INO)
		fuse_reply_err(req, EISDIR);
	else if ((fi->flags & O_ACCMODE) != O_RDONLY)
		fuse_reply_err(req, EROFS);
	else {
		fi->keep_cache = 1;
		fuse_reply_open(req, fi);
	}
}

/* As ckptfs's reply_pieces for a piece in a file: spliced from src_fd. */
static void mf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);

	(void)ino;
	(void)fi;
	if (off >= src_size)
		size = 0;
	else if ((off_t)size > src_size - off)
		size = (size_t)(src_size - off);
	bv.buf[0] =
		(struct fuse_buf){.size = size,
				  .flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK,
				  .fd = src_fd,
				  .pos = src_off + off};
	bv.count = size ? 1 : 0;
	if (size == 0)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
}

static const struct fuse_lowlevel_ops mf_ops = {
	.init = mf_init,
	.lookup = mf_lookup,
	.getattr = mf_getattr,
	.open = mf_open,
	.read = mf_read,
};

/* Takes the first non-option as FILE, opens it; notes -o max_read
 * (kept for libfuse and the kernel). */
static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct stat st;

	(void)data;
	(void)outargs;
	if (key == FUSE_OPT_KEY_OPT) {
		if (sscanf(arg, "offset=%lld", &opt_off) == 1 ||
		    sscanf(arg, "size=%lld", &opt_size) == 1)
			return 0; /* ours, not libfuse's */
		sscanf(arg, "max_read=%u", &max_read);
	}
	if (key != FUSE_OPT_KEY_NONOPT || src_fd >= 0)
		return 1;
	src_fd = open(arg, O_RDONLY);
	if (src_fd < 0 || fstat(src_fd, &st) != 0) {
		fprintf(stderr, "minfuse: %s: %s\n", arg, strerror(errno));
		exit(1);
	}
	src_size = st.st_size;
	return 0;
}

/* Mounts, daemonizes unless -f, serves until unmounted; as ckptfs's
 * serve() in session.c. */
static int serve(struct fuse_args *args, struct fuse_cmdline_opts *opts)
{
	struct fuse_loop_config *cfg = NULL;
	struct fuse_session *se;
	int r = 1;

	se = fuse_session_new(args, &mf_ops, sizeof(mf_ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) != 0 ||
	    fuse_session_mount(se, opts->mountpoint) != 0)
		goto out;
	fuse_daemonize(opts->foreground);
	if (opts->singlethread) {
		r = fuse_session_loop(se);
	} else if ((cfg = fuse_loop_cfg_create())) {
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)opts->clone_fd);
		fuse_loop_cfg_set_max_threads(cfg, opts->max_threads);
		r = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
out:
	fuse_session_destroy(se);
	return r < 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = {0};
	int r = 1;

	if (fuse_opt_parse(&args, NULL, NULL, opt_proc) != 0 ||
	    fuse_opt_add_arg(&args, "-odefault_permissions") != 0 ||
	    fuse_opt_add_arg(&args, "-ofsname=minfuse") != 0 ||
	    fuse_parse_cmdline(&args, &opts) != 0)
		goto out;
	if (src_fd < 0 || !opts.mountpoint) {
		fprintf(stderr,
			"usage: %s [FUSE options] [-o offset=N,size=N] "
			"FILE MOUNTPOINT\n",
			argv[0]);
		goto out;
	}
	if (opt_off < 0 || opt_off > src_size ||
	    (opt_size >= 0 && opt_size > src_size - opt_off)) {
		fprintf(stderr, "minfuse: offset and size lie outside FILE\n");
		goto out;
	}
	src_off = opt_off;
	src_size = opt_size >= 0 ? opt_size : src_size - opt_off;
	r = serve(&args, &opts);
out:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return r;
}
