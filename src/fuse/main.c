/*
 * main.c - ckptfs: mount a MindSpore checkpoint as a directory (low-level
 * FUSE).  The command line, the usage, the open policy, start-up and the
 * exit status; the session is in session.c, the requests in ops.c and
 * the files it names (see ckptfs.h).
 *
 * Life of a mount.  Before mounting: the options are parsed, the -o log=
 * file is opened, the key read, the checkpoint opened as a tree and the
 * status directory prepared, so that every refusal reaches the user's
 * terminal.  The open policy: a checkpoint whose crc_num trailer does not
 * match is refused, unless -o ignore_crc is given: then it is opened
 * again without the check, read-only.  Then the session is mounted and,
 * without -f, daemonized; in the final process the status socket is
 * bound (session.c).  When the session ends, op_destroy commits (or saves
 * a recovery file), the status clients get the outcome, and the exit
 * status is 0 after a successful commit or with nothing to commit, 1 when
 * that commit (or the session) failed.  Started by mount.fuse3 (mount(8),
 * /etc/fstab) it is the same, except that the key must come from a file
 * (helper.c says what mount.fuse3 passes).
 *
 * Single-threaded: everything here runs before the session's workers
 * start or after they are gone.  Never prints a library error without
 * ckpt_error_text, which spells the remedy in -o options.
 */
#include "ckptfs.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "ckpt_common.h"

/* ---- command line ------------------------------------------------------ */

struct options {
	char *checkpoint;
	int nonopts;
	char *output;
	char *staging;
	char *scratch;
	char *log;
	char *format;
	int create;
	int crc;
	int ro;
	int ignore_crc;
	int no_reflink;
	int tree;
	int npy;
	char *enc_mode;
	char *keyfile;
	int keyfd;
	unsigned max_read;
	/* -o include=GLOB, -o exclude=GLOB, each repeatable: NULL-terminated
	 * lists (NULL while empty) of malloc'd globs */
	char **include, **exclude;
	size_t ninclude, nexclude;
	int bad_glob; /* out of memory collecting them */
};

/* (clang-format would take these braces for blocks) */
/* clang-format off */
#define OPT(t, p) {t, offsetof(struct options, p), 1}
/* FUSE_OPT_KEY, its offset -1U converted in the open (clang warns) */
#define OPT_KEY(t, k) {t, (unsigned long)-1U, k}
/* clang-format on */
static const struct fuse_opt option_spec[] = {
	OPT("output=%s", output),
	OPT("staging=%s", staging),
	OPT("scratch=%s", scratch),
	OPT("log=%s", log),
	OPT("format=%s", format),
	OPT("create", create),
	OPT("crc", crc),
	OPT("ignore_crc", ignore_crc),
	OPT("no_reflink", no_reflink),
	OPT("tree", tree),
	OPT("npy", npy),
	OPT("enc_mode=%s", enc_mode),
	OPT("keyfile=%s", keyfile),
	{"keyfd=%d", offsetof(struct options, keyfd), 0},
	OPT_KEY("ro", 1),
	OPT_KEY("rw", 2),
	OPT_KEY("include=", 3),
	OPT_KEY("exclude=", 4),
	FUSE_OPT_END,
};

/* Appends a copy of glob to the NULL-terminated list *l of *n; -1 if
 * out of memory. */
static int add_glob(char ***l, size_t *n, const char *glob)
{
	char **nl = realloc(*l, (*n + 2) * sizeof(*nl));

	if (!nl)
		return -1;
	*l = nl;
	nl[*n] = strdup(glob);
	if (!nl[*n])
		return -1;
	nl[++*n] = NULL;
	return 0;
}

static void free_globs(char **l)
{
	for (char **g = l; g && *g; g++)
		free(*g);
	free(l);
}

/* Takes -o include= and -o exclude= (every one of them), -o ro, -o rw
 * and -o max_read (also passed on to libfuse), the generic mount options
 * that mean nothing to ckptfs (dropped) and the first non-option (the
 * checkpoint); keeps everything else for libfuse.
 * The last of ro and rw wins, as it does in libfuse. */
static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
	if (key == 1) { /* -o ro: ours, and the kernel's */
		o->ro = 1;
		return 1;
	}
	if (key == 2) { /* -o rw: the default, as mount(8) passes it */
		o->ro = 0;
		return 1;
	}
	if (key == 3 || key == 4) { /* -o include=GLOB, -o exclude=GLOB */
		if (key == 3 ? add_glob(&o->include, &o->ninclude, arg + 8)
			     : add_glob(&o->exclude, &o->nexclude, arg + 8))
			o->bad_glob = 1;
		return 0;
	}
	if (key == FUSE_OPT_KEY_OPT &&
	    sscanf(arg, "max_read=%u", &o->max_read) == 1)
		return 1; /* the kernel's too: init must agree */
	if (key == FUSE_OPT_KEY_OPT && mount_option_ignored(arg))
		return 0; /* mount(8)'s, or without effect here */
	if (key == FUSE_OPT_KEY_NONOPT && o->nonopts++ == 0) {
		o->checkpoint = strdup(arg);
		return 0; /* consumed: the checkpoint */
	}
	return 1; /* keep: the mountpoint and every other option */
}

/* --help, before libfuse's options: ours, the signals, exit status. */
static const char usage_text[] =
	"\n"
	"Mount a MindSpore checkpoint (.ckpt) or safetensors file as a\n"
	"directory: one file per parameter holding its raw tensor bytes, with\n"
	"extended attributes user.dtype and user.shape.  Names are shown as\n"
	"stored, with '/' written %2F, '%' written %25 and control characters\n"
	"as %XX.  A safetensors file's __metadata__ is on the root as\n"
	"user.metadata.KEY (read, set and removed with getfattr/setfattr).\n"
	"Edits are written back as a new checkpoint on fsync and on unmount\n"
	"('ckpt umount MOUNTPOINT' waits for that and reports failures).\n"
	"\n"
	"ckptfs options:\n"
	"    -h   --help            print help\n"
	"    -V   --version         print version\n"
	"    -f                     stay in the foreground\n"
	"    -d   -o debug          debug output (implies -f)\n"
	"    -s                     single-threaded\n"
	"    -o ro                  read-only\n"
	"    -o rw                  read-write (the default; the last of ro, rw counts)\n"
	"    -o output=PATH         commit to PATH; CHECKPOINT is left untouched\n"
	"    -o staging=DIR         keep edited tensors in DIR until commit\n"
	"                           (default: beside the checkpoint)\n"
	"    -o format=FORMAT       ckpt or safetensors: read and write\n"
	"                           CHECKPOINT as this format (default: found\n"
	"                           from its content; for -o create, from its\n"
	"                           extension)\n"
	"    -o create              CHECKPOINT may not exist: start empty\n"
	"    -o crc                 add a crc_num on commit (a trailer, or the\n"
	"                           safetensors metadata key)\n"
	"    -o ignore_crc          mount a file whose crc_num does not match\n"
	"                           (read-only, with a warning)\n"
	"    -o no_reflink          commits write every byte, even where the\n"
	"                           file system could share the unchanged\n"
	"                           ones with the old file (XFS, Btrfs, ...)\n"
	"    -o enc_mode=MODE       the checkpoint is encrypted: AES-GCM, AES-CBC\n"
	"                           or SM4-CBC; commits re-encrypt it\n"
	"    -o keyfile=PATH        the raw key bytes (MindSpore's enc_key);\n"
	"                           keyfile=- reads them from standard input\n"
	"    -o keyfd=N             read the key from inherited descriptor N\n"
	"                           (keyfile= and keyfd= exclude each other)\n"
	"    -o scratch=GLOB[:GLOB...]\n"
	"                           names of scratch files, never committed\n"
	"                           (default: .*:#*#:*~:sed??????; empty: none)\n"
	"    -o npy                 show every parameter as NAME.npy, a NumPy .npy\n"
	"                           file (np.load and np.save work on it; see\n"
	"                           docs/npy-mount.md)\n"
	"    -o log=PATH            append every message, timestamped, to PATH\n"
	"                           (created 0600; not a symbolic link)\n"
	"    -o tree                show dotted names as directories:\n"
	"                           model.layers.0.wq is model/layers/0/wq;\n"
	"                           mkdir, rmdir, mv and rm -r of directories\n"
	"                           (docs/tree-view.md); with -o npy the files\n"
	"                           are LEAF.npy (model/layers/0/wq.npy)\n"
	"    -o include=GLOB        show only the parameters whose stored names\n"
	"                           match GLOB (fnmatch(3); repeatable: any of\n"
	"                           them; write a ',' in GLOB as '\\,')\n"
	"    -o exclude=GLOB        hide the parameters whose names match GLOB\n"
	"                           (repeatable); hidden parameters are kept\n"
	"                           unchanged by commits, and their names\n"
	"                           cannot be taken (EEXIST)\n"
	"\n"
	"mount(8) and /etc/fstab: type fuse.ckptfs, the same options, the key\n"
	"only as keyfile=PATH; generic mount options (defaults, noauto, nofail,\n"
	"user, _netdev, x-*, ...) are accepted.  See MOUNTING FROM FSTAB in\n"
	"ckptfs(1).\n"
	"\n"
	"Messages go to stderr (with -f), to syslog, and to the log= file.\n"
	"SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM unmount\n"
	"and commit; SIGPIPE is ignored.  Exit status (with -f): 0 after a\n"
	"successful commit at unmount or with nothing to commit, 1 if that\n"
	"commit failed (the reason is logged; the edits are saved as a recovery\n"
	"file beside the checkpoint).\n"
	"\n"
	"Environment: TMPDIR (staging and recovery files when the checkpoint's\n"
	"directory cannot take them), CKPT_CRYPTO_THREADS=N (threads that\n"
	"decrypt and encrypt; default: one per CPU, at most 8), XDG_RUNTIME_DIR\n"
	"(the status socket for 'ckpt umount' goes to $XDG_RUNTIME_DIR/ckptfs;\n"
	"default /run/ckptfs for root, /tmp/ckptfs-UID for others).\n"
	"\n"
	"FUSE options:\n";

/* --help: our options, the signals and exit status, then libfuse's. */
static void usage(const char *prog)
{
	printf("usage: %s [options] CHECKPOINT MOUNTPOINT\n", prog);
	fputs(usage_text, stdout);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* Parses the command line into o and opts.  1: mount; 0: done (help or
 * version printed); -1: bad usage (said so). */
static int parse_args(struct fuse_args *args, struct options *o,
		      struct fuse_cmdline_opts *opts, const char *prog)
{
	if (fuse_opt_parse(args, o, option_spec, opt_proc) != 0 ||
	    fuse_parse_cmdline(args, opts) != 0)
		return -1;
	if (o->bad_glob) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	if (opts->show_help) {
		usage(prog);
		return 0;
	}
	if (opts->show_version) {
		ckpt_print_version("ckptfs", fuse_pkgversion());
		fuse_lowlevel_version(); /* the kernel interface, fusermount3 */
		return 0;
	}
	if (o->format && !ckpt_format_known(o->format, strlen(o->format))) {
		fprintf(stderr, "%s: unknown format '%s' (known: %s)\n", prog,
			o->format, ckpt_format_names());
		return -1;
	}
	if (!o->checkpoint || !opts->mountpoint) {
		fprintf(stderr,
			"usage: %s [options] CHECKPOINT MOUNTPOINT\n"
			"       %s --help for the options\n",
			prog, prog);
		return -1;
	}
	return 1;
}

/* ---- start-up ---------------------------------------------------------- */

/* A mount point /dev/fd/N is a /dev/fuse descriptor that another
 * program has mounted (mount.fuse3 -o drop_privileges does that) with
 * its own options: without default_permissions the kernel would not
 * enforce the checkpoint's modes.  Refused: 0, or -1 after saying so. */
static int check_mountpoint(const char *mnt)
{
	unsigned fd;
	int end = 0;

	if (sscanf(mnt, "/dev/fd/%u%n", &fd, &end) != 1 || mnt[end])
		return 0;
	say(LOG_ERR,
	    "%s is a FUSE descriptor that another program mounted (as "
	    "mount.fuse3 -o drop_privileges does): ckptfs mounts by itself, "
	    "so that the kernel enforces the checkpoint's file modes "
	    "(default_permissions); umount the dead mount it left and "
	    "mount without drop_privileges",
	    mnt);
	return -1;
}

/* Started by mount.fuse3 (mount(8), /etc/fstab), ckptfs has mount's
 * standard input and no descriptor meant for it: keyfd= and keyfile=-
 * are refused there.  0, or -1 after saying so. */
static int check_helper_key(const struct options *o, int argc, char *argv[])
{
	const char *what = NULL;

	if (o->keyfd >= 0)
		what = "keyfd=";
	else if (o->keyfile && !strcmp(o->keyfile, "-"))
		what = "keyfile=-";
	if (!what || !started_by_mount_helper(argc, argv))
		return 0;
	say(LOG_ERR,
	    "%s cannot be used from mount(8) or /etc/fstab: mount.fuse3 "
	    "started ckptfs, and there the key can only come from a file; "
	    "give it as keyfile=PATH",
	    what);
	return -1;
}

/* Reads the key named by the options into *key (NULL: none). */
static int load_key(const struct options *o, struct ckpt_key **key)
{
	struct ckpt_keyopt ko = {
		.mode = o->enc_mode, .keyfile = o->keyfile, .keyfd = o->keyfd};
	char text[1024];

	if (ckpt_keyopt_load(&ko, CKPT_FRONT_MOUNT, key, text, sizeof(text)) ==
	    CKPT_KEYOPT_OK)
		return 0;
	say(LOG_ERR, "%s", text);
	return -1;
}

/* Tells the user what the open tree is like: warnings about the source,
 * why it is read-only. */
static void report_tree(const struct ckptfs *fs, const struct options *o)
{
	char text[PATH_MAX + 256];

	if (ckpt_keyopt_legacy_warning(ckpt_tree_source_stats(fs->tree),
				       o->checkpoint, CKPT_FRONT_MOUNT, text,
				       sizeof(text)))
		say(LOG_WARNING, "%s", text);
	if (ckpt_tree_warning(fs->tree))
		say(LOG_WARNING, "warning: %s", ckpt_tree_warning(fs->tree));
	if (o->ninclude || o->nexclude)
		say(LOG_NOTICE,
		    "%zu of the %zu parameters of %s are hidden (-o include, "
		    "-o exclude); commits keep them as they are",
		    ckpt_tree_hidden_count(fs->tree),
		    ckpt_tree_count(fs->tree) +
			    ckpt_tree_hidden_count(fs->tree),
		    o->checkpoint);
	if (!o->ro && ckpt_tree_read_only(fs->tree))
		say(LOG_NOTICE, "mounting %s read-only: %s", o->checkpoint,
		    ckpt_tree_read_only(fs->tree));
}

/* ckpt_tree_opts warn: what a commit wants the user to know. */
static void warn_commit(void *ctx, const char *msg)
{
	(void)ctx;
	logmsg(LOG_WARNING, "warning: %s", msg);
}

/* The open policy: opens the checkpoint as the options say; one whose
 * crc_num trailer does not match only with -o ignore_crc, then without
 * the check and read-only.  Says why on failure. */
static int load(struct ckptfs *fs, const struct options *o,
		const struct ckpt_key *key)
{
	struct ckpt_tree_opts to = {.output = o->output,
				    .staging_dir = o->staging,
				    .scratch = o->scratch,
				    .create = o->create,
				    .read_only = o->ro,
				    .no_reflink = o->no_reflink,
				    .crc = o->crc ? CKPT_CRC_ADD
						  : CKPT_CRC_KEEP,
				    .open.key = key,
				    .open.format = o->format,
				    .out_format = o->format,
				    .include = (const char *const *)o->include,
				    .exclude = (const char *const *)o->exclude,
				    .progress = ctl_progress,
				    .progress_ctx = fs,
				    .warn = warn_commit};
	struct ckpt_error err;
	char text[sizeof(err.msg) + 200];
	ckpt_err e;

	e = ckpt_tree_open(o->checkpoint, &to, &fs->tree, &err);
	if (e == CKPT_ERR_CRC && o->ignore_crc) {
		say(LOG_WARNING, "warning: %s",
		    ckpt_error_text(&err, CKPT_FRONT_MOUNT, text,
				    sizeof(text)));
		say(LOG_WARNING, "mounting it read-only because of -o "
				 "ignore_crc");
		to.open.skip_crc = true;
		to.read_only = true;
		e = ckpt_tree_open(o->checkpoint, &to, &fs->tree, &err);
	}
	if (e) {
		say(LOG_ERR, "%s",
		    ckpt_error_text(&err, CKPT_FRONT_MOUNT, text,
				    sizeof(text)));
		if (e == CKPT_ERR_CRC)
			say(LOG_ERR, "-o ignore_crc mounts it read-only "
				     "anyway");
		say(LOG_ERR, "not mounted; 'ckpt verify %s' checks the file",
		    o->checkpoint);
		return -1;
	}
	report_tree(fs, o);
	fs->mount_ns = now_ns();
	return 0;
}

/* Prepares the status directory (refusing one that others could reach). */
static int prepare_status(struct ckptfs *fs)
{
	char msg[PATH_MAX + 256];

	if (ckpt_status_prepare(&fs->status, msg, sizeof(msg)) == 0)
		return 0;
	say(LOG_ERR, "%s", msg);
	say(LOG_ERR, "not mounted: 'ckpt umount' reports through a socket "
		     "in that directory");
	return -1;
}

/* Adds the mount options ckptfs always sets. */
static int add_mount_args(const struct ckptfs *fs, struct fuse_args *args,
			  const struct options *o)
{
	char fsname[PATH_MAX + 16];

	snprintf(fsname, sizeof(fsname), "-ofsname=ckptfs:%s", o->checkpoint);
	if (ckpt_tree_read_only(fs->tree) && !o->ro &&
	    fuse_opt_add_arg(args, "-oro"))
		return -1;
	return fuse_opt_add_arg(args, "-odefault_permissions") ||
			       fuse_opt_add_arg(args, "-osubtype=ckptfs") ||
			       fuse_opt_add_arg(args, fsname)
		       ? -1
		       : 0;
}

/* The line for the status clients: how the commit at unmount ended. */
static const char *outcome(const struct ckptfs *fs)
{
	if (!fs->final_failed)
		return CKPT_STATUS_OK;
	return fs->final_error ? fs->final_error : "commit at unmount failed";
}

/* ckptfs [options] CHECKPOINT MOUNTPOINT; see the top of this file. */
int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = {0};
	struct options o = {.keyfd = -1};
	struct ckptfs fs = {.lock = PTHREAD_MUTEX_INITIALIZER,
			    .npy_lock = PTHREAD_MUTEX_INITIALIZER};
	struct ckpt_key *key = NULL;
	int ret = 1, r;

	r = parse_args(&args, &o, &opts, argv[0]);
	if (r <= 0) {
		ret = r < 0;
		goto out;
	}
	fs.mountpoint = opts.mountpoint;
	fs.max_read = o.max_read;
	fs.npy = o.npy;
	openlog("ckptfs", LOG_PID, LOG_USER);
	if ((o.log && log_open_file(o.log) != 0) ||
	    check_mountpoint(opts.mountpoint) != 0 ||
	    check_helper_key(&o, argc, argv) != 0 || load_key(&o, &key) != 0 ||
	    load(&fs, &o, key) != 0 || (o.tree && tv_start(&fs) != 0) ||
	    prepare_status(&fs) != 0 || add_mount_args(&fs, &args, &o) != 0)
		goto out;
	ret = serve(&fs, &args, &opts);
out:
	ckpt_status_finish(fs.status, outcome(&fs));
	free(fs.final_error);
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	free(o.checkpoint);
	free(o.output);
	free(o.staging);
	free(o.scratch);
	free(o.log);
	free(o.format);
	free(o.enc_mode);
	free(o.keyfile);
	free_globs(o.include);
	free_globs(o.exclude);
	tv_free(&fs);
	ckpt_tree_close(fs.tree);
	ckpt_key_free(key);
	log_close();
	return ret;
}
