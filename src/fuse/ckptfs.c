/*
 * ckptfs.c - mount a MindSpore checkpoint as a directory (low-level FUSE):
 * the command line, start-up, signals, the session and the exit status.
 * The requests themselves are in ops.c (its top explains the design).
 *
 * Life of a mount.  Before mounting: the options are parsed, the -o log=
 * file is opened, the key read, the checkpoint opened as a tree and the
 * status directory prepared, so that every refusal reaches the user's
 * terminal.  Then the session is mounted and, without -f, daemonized; in
 * the final process the status socket is bound.  The session runs until
 * the file system is unmounted or one of SIGTERM, SIGINT, SIGHUP (libfuse's
 * handlers), SIGQUIT, SIGUSR1, SIGUSR2 or SIGALRM (ours) ends it; SIGPIPE is
 * ignored.  Then the daemon unmounts, libfuse calls op_destroy, which
 * commits (or saves a recovery file), the status clients get the outcome,
 * and the exit status is 0 after a successful commit or with nothing to
 * commit, 1 when that commit (or the session) failed.
 */
#include "ckptfs.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* ---- command line ------------------------------------------------------ */

struct options {
	char *checkpoint;
	int nonopts;
	char *output;
	char *staging;
	char *scratch;
	char *log;
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
	OPT("scratch=%s", scratch),
	OPT("log=%s", log),
	OPT("create", create),
	OPT("crc", crc),
	OPT("ignore_crc", ignore_crc),
	OPT("enc_mode=%s", enc_mode),
	OPT("keyfile=%s", keyfile),
	{"keyfd=%d", offsetof(struct options, keyfd), 0},
	FUSE_OPT_KEY("ro", 1),
	FUSE_OPT_END,
};

/* Takes -o ro and -o max_read (also passed on to libfuse) and the first
 * non-option (the checkpoint); keeps everything else for libfuse. */
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

/* --help: our options, the signals and exit status, then libfuse's. */
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
	       "                           (keyfile= and keyfd= exclude each "
	       "other)\n"
	       "    -o scratch=GLOB[:GLOB...]\n"
	       "                           names of scratch files, never "
	       "committed\n"
	       "                           (default: .*:#*#:*~:sed??????; "
	       "empty: none)\n"
	       "    -o log=PATH            append every message, timestamped, "
	       "to PATH\n"
	       "                           (created 0600; not a symbolic "
	       "link)\n"
	       "\n"
	       "Messages go to stderr (with -f), to syslog, and to the log= "
	       "file.\n"
	       "SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM "
	       "unmount\n"
	       "and commit; SIGPIPE is ignored.  Exit status (with -f): 0 "
	       "after a\n"
	       "successful commit at unmount or with nothing to commit, 1 if "
	       "that\n"
	       "commit failed (the reason is logged; the edits are saved as a "
	       "recovery\n"
	       "file beside the checkpoint).\n"
	       "\n"
	       "Environment: TMPDIR (staging and recovery files when the "
	       "checkpoint's\n"
	       "directory cannot take them), CKPT_CRYPTO_THREADS=N "
	       "(threads that\n"
	       "decrypt and encrypt; default: one per CPU, at most 8), "
	       "XDG_RUNTIME_DIR\n"
	       "(the status socket for 'ckpt umount' goes to "
	       "$XDG_RUNTIME_DIR/ckptfs;\n"
	       "default /run/ckptfs for root, /tmp/ckptfs-UID for others).\n"
	       "\n"
	       "FUSE options:\n",
	       prog);
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
	if (opts->show_help) {
		usage(prog);
		return 0;
	}
	if (opts->show_version) {
		printf("ckptfs %s\n", CKPT_VERSION);
		fuse_lowlevel_version();
		return 0;
	}
	if (!o->checkpoint || !opts->mountpoint) {
		fprintf(stderr, "usage: %s [options] CHECKPOINT MOUNTPOINT\n"
			"       %s --help for the options\n", prog, prog);
		return -1;
	}
	return 1;
}

/* ---- start-up ---------------------------------------------------------- */

/* Reads the key named by the options into *key (NULL: none). */
static int load_key(const struct options *o, struct ckpt_key **key)
{
	struct ckpt_error err;
	char text[1024];

	if (ckpt_key_load(o->enc_mode, o->keyfile, o->keyfd, key, &err)) {
		say(LOG_ERR, "%s", ckpt_error_text(&err, CKPT_FRONT_MOUNT, text,
						   sizeof(text)));
		return -1;
	}
	return 0;
}

/* Tells the user what the open tree is like: warnings about the source,
 * why it is read-only. */
static void report_tree(const struct ckptfs *fs, const struct options *o)
{
	const struct ckpt_stats *st = ckpt_tree_source_stats(fs->tree);

	if (st && st->enc_legacy)
		say(LOG_WARNING, "warning: %s uses the MindSpore 1.3-1.6 "
		    "encryption layout, which is not authenticated: nothing "
		    "vouches for its integrity", o->checkpoint);
	if (ckpt_tree_warning(fs->tree))
		say(LOG_WARNING, "warning: %s", ckpt_tree_warning(fs->tree));
	if (!o->ro && ckpt_tree_read_only(fs->tree))
		say(LOG_NOTICE, "mounting %s read-only: %s", o->checkpoint,
		    ckpt_tree_read_only(fs->tree));
}

/* Opens the checkpoint; says why on failure. */
static int load(struct ckptfs *fs, const struct options *o,
		const struct ckpt_key *key)
{
	struct ckpt_tree_opts to = {.output = o->output,
				    .staging_dir = o->staging,
				    .scratch = o->scratch,
				    .create = o->create,
				    .read_only = o->ro,
				    .crc = o->crc ? CKPT_CRC_ADD : CKPT_CRC_KEEP,
				    .open.key = key};
	struct ckpt_error err;
	char text[1024];
	struct timespec now;
	ckpt_err e;

	e = ckpt_tree_open(o->checkpoint, &to, &fs->tree, &err);
	if (e == CKPT_ERR_CRC && o->ignore_crc) {
		say(LOG_WARNING, "warning: %s", err.msg);
		say(LOG_WARNING, "mounting it read-only because of -o "
		    "ignore_crc");
		to.open.skip_crc = true;
		to.read_only = true;
		e = ckpt_tree_open(o->checkpoint, &to, &fs->tree, &err);
	}
	if (e) {
		say(LOG_ERR, "%s", ckpt_error_text(&err, CKPT_FRONT_MOUNT, text,
						   sizeof(text)));
		if (e == CKPT_ERR_CRC)
			say(LOG_ERR, "-o ignore_crc mounts it read-only "
			    "anyway");
		say(LOG_ERR, "not mounted; 'ckpt verify %s' checks the file",
		    o->checkpoint);
		return -1;
	}
	report_tree(fs, o);
	clock_gettime(CLOCK_REALTIME, &now);
	fs->mount_ns = (uint64_t)now.tv_sec * 1000000000u +
		       (uint64_t)now.tv_nsec;
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

/* In the final process: binds the status socket; without it 'ckpt
 * umount' still commits and unmounts but cannot report the outcome. */
static void start_status(struct ckptfs *fs)
{
	char msg[PATH_MAX + 256];

	if (ckpt_status_start(fs->status, msg, sizeof(msg)) != 0)
		logmsg(LOG_WARNING, "%s: 'ckpt umount' cannot report the "
		       "commit at unmount", msg);
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
	       fuse_opt_add_arg(args, fsname) ? -1 : 0;
}

/* ---- signals ----------------------------------------------------------- */

/* The signals that end the session besides libfuse's SIGTERM, SIGINT and
 * SIGHUP. */
static const int own_signals[] = {SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};
static const int all_signals[] = {SIGTERM, SIGINT,  SIGHUP, SIGQUIT,
				  SIGUSR1, SIGUSR2, SIGALRM};

static struct fuse_session *signal_session;
static pthread_t main_thread;
static volatile sig_atomic_t got_signal; /* one of own_signals, or 0 */

/* Ends the session, as libfuse's handler does.  libfuse's worker threads
 * block only SIGTERM, SIGINT, SIGHUP and SIGQUIT, so a worker may catch
 * one of ours: it passes the signal on to the main thread, which waits
 * for the workers and must wake up to stop them. */
static void on_signal(int sig)
{
	int saved = errno;

	got_signal = sig;
	fuse_session_exit(signal_session);
	if (!pthread_equal(pthread_self(), main_thread))
		pthread_kill(main_thread, sig);
	errno = saved;
}

/* Installs libfuse's handlers (SIGTERM, SIGINT, SIGHUP; SIGPIPE ignored)
 * and ours.  Like libfuse, a signal ignored when we started (nohup, a
 * script's '&') stays ignored. */
static int install_signals(struct fuse_session *se)
{
	struct sigaction sa = {.sa_handler = on_signal}, old;

	signal_session = se;
	main_thread = pthread_self();
	if (fuse_set_signal_handlers(se) != 0)
		return -1;
	sigemptyset(&sa.sa_mask); /* no SA_RESTART: reads must see EINTR */
	for (size_t i = 0; i < sizeof(own_signals) / sizeof(*own_signals);
	     i++) {
		if (sigaction(own_signals[i], NULL, &old) != 0 ||
		    (old.sa_handler == SIG_DFL &&
		     sigaction(own_signals[i], &sa, NULL) != 0)) {
			perror("ckptfs: cannot set a signal handler");
			return -1;
		}
	}
	return 0;
}

/* Once the session has ended: every signal that would end it is ignored
 * from now on, so the commit at unmount runs to its end; libfuse's
 * handlers are removed before the session is freed. */
static void stop_signals(struct fuse_session *se)
{
	for (size_t i = 0; i < sizeof(all_signals) / sizeof(*all_signals);
	     i++)
		signal(all_signals[i], SIG_IGN);
	fuse_remove_signal_handlers(se); /* leaves SIG_IGN alone ... */
	signal(SIGPIPE, SIG_IGN);        /* ... except this one */
}

/* ---- the session ------------------------------------------------------- */

/* Runs the session loop (-s: in this thread only).  0 when unmounted, a
 * signal number when libfuse's handler ended it (libfuse 3.14 returns
 * that), < 0 when it failed. */
static int run_loop(struct fuse_session *se,
		    const struct fuse_cmdline_opts *opts)
{
	struct fuse_loop_config *cfg;
	int r;

	if (opts->singlethread)
		return fuse_session_loop(se);
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)opts->clone_fd);
	fuse_loop_cfg_set_max_threads(cfg, opts->max_threads);
	r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r;
}

/* Logs how the loop ended (its result r); false if it failed. */
static bool loop_ended(int r)
{
	int sig = r > 0 ? r : got_signal;

	if (r < 0) {
		logmsg(LOG_ERR, "the FUSE session failed: %s", strerror(-r));
		return false;
	}
	if (sig)
		logmsg(LOG_INFO, "SIG%s received: unmounting",
		       sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	return true;
}

/* Mounts, serves until unmounted or signalled, unmounts and commits
 * (op_destroy).  The exit status: 0 if all of that worked. */
static int serve(struct ckptfs *fs, struct fuse_args *args,
		 const struct fuse_cmdline_opts *opts)
{
	struct fuse_session *se;
	bool ok = false;

	se = fuse_session_new(args, &ckptfs_ops, sizeof(ckptfs_ops), fs);
	if (!se)
		return 1;
	if (install_signals(se) != 0)
		goto out;
	if (fuse_session_mount(se, opts->mountpoint) != 0)
		goto out;
	fuse_daemonize(opts->foreground);
	log_detach(opts->foreground);
	start_status(fs);
	ok = loop_ended(run_loop(se, opts));
	fuse_session_unmount(se);
out:
	stop_signals(se);
	fuse_session_destroy(se); /* op_destroy: the commit at unmount */
	return ok && !fs->final_failed ? 0 : 1;
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
	struct ckptfs fs = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct ckpt_key *key = NULL;
	int ret = 1, r;

	r = parse_args(&args, &o, &opts, argv[0]);
	if (r <= 0) {
		ret = r < 0;
		goto out;
	}
	fs.mountpoint = opts.mountpoint;
	fs.max_read = o.max_read;
	openlog("ckptfs", LOG_PID, LOG_USER);
	if ((o.log && log_open_file(o.log) != 0) || load_key(&o, &key) != 0 ||
	    load(&fs, &o, key) != 0 || prepare_status(&fs) != 0 ||
	    add_mount_args(&fs, &args, &o) != 0)
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
	free(o.enc_mode);
	free(o.keyfile);
	ckpt_tree_close(fs.tree);
	ckpt_key_free(key);
	log_close();
	return ret;
}
