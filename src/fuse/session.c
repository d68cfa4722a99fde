/*
 * session.c - the FUSE session of ckptfs: mounting, daemonizing, the
 * signals that end the session, the loop, unmounting (see ckptfs.h).
 *
 * The session runs until the file system is unmounted or one of SIGTERM,
 * SIGINT, SIGHUP (libfuse's handlers), SIGQUIT, SIGUSR1, SIGUSR2 or
 * SIGALRM (ours) ends it; SIGPIPE is ignored.  Then the daemon unmounts
 * and libfuse calls op_destroy, which commits (control.c).  Once the
 * session has ended, every signal that would end it is ignored, so that
 * the commit at unmount runs to its end.
 *
 * Locking: the signal handler only sets a flag, ends the session and
 * passes the signal on to the main thread (async-signal-safe calls);
 * the rest runs in the main thread.  Never calls into the tree.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "ckptfs.h"

/* In the final process: binds the status socket; without it 'ckpt
 * umount' still commits and unmounts but cannot report the outcome. */
static void start_status(struct ckptfs *fs)
{
	char msg[PATH_MAX + 256];

	if (ckpt_status_start(fs->status, msg, sizeof(msg)) != 0)
		logmsg(LOG_WARNING,
		       "%s: 'ckpt umount' cannot report the "
		       "commit at unmount",
		       msg);
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
	for (size_t i = 0; i < sizeof(all_signals) / sizeof(*all_signals); i++)
		signal(all_signals[i], SIG_IGN);
	fuse_remove_signal_handlers(se); /* leaves SIG_IGN alone ... */
	signal(SIGPIPE, SIG_IGN);	 /* ... except this one */
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

int serve(struct ckptfs *fs, struct fuse_args *args,
	  const struct fuse_cmdline_opts *opts)
{
	struct fuse_session *se;
	bool ok = false;

	se = fuse_session_new(args, &ckptfs_ops, sizeof(ckptfs_ops), fs);
	if (!se)
		return 1;
	fs->se = se;
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
