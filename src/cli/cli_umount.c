/*
 * cli_umount.c - ckpt umount [-q] [--force] MOUNTPOINT: commit the edits
 * of a ckptfs mount, unmount it and wait until its daemon has finished.
 *
 * Owns what the user sees of it: the messages, the order of the steps
 * and the exit status.  The protocol with the daemon (the root's control
 * values, the commit by fsync, the status socket and who may serve it)
 * is in src/common/status_client.c, the commit with its progress display
 * in cli_commit.c; unmounting is fusermount3's.  Never unmounts a mount
 * whose commit failed unless unmounting is what saves the edits (the
 * checkpoint changed underneath), and never trusts a status socket that
 * another process serves.  Single-threaded but for the commit.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt_common.h"
#include "cli.h"

/* Runs fusermount3 -u (lazy: -uz) MOUNTPOINT; returns its exit status. */
static int fusermount_u(const char *mnt, bool lazy)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execlp("fusermount3", "fusermount3", lazy ? "-uz" : "-u", "--",
		       mnt, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The pid of mnt's daemon, or 0 after a message (not a ckptfs mount, or a
 * dead daemon's mount, which is then removed). */
static pid_t daemon_pid(const char *mnt)
{
	pid_t pid;

	switch (ckpt_status_daemon(mnt, &pid)) {
	case CKPT_MOUNT_SERVED:
		return pid;
	case CKPT_MOUNT_STALE:
		fprintf(stderr,
			"ckpt: the ckptfs daemon of %s is gone (it "
			"crashed or was killed): the checkpoint holds what the "
			"last successful commit (fsync) wrote, and later edits "
			"are lost; removing the stale mount point\n",
			mnt);
		if (fusermount_u(mnt, true) != 0)
			fprintf(stderr, "ckpt: fusermount3 -uz %s failed\n",
				mnt);
		return 0;
	case CKPT_MOUNT_FOREIGN:
		break;
	}
	fprintf(stderr, "ckpt: %s is not a ckptfs mount point\n", mnt);
	return 0;
}

/* Connects to the status socket of daemon pid of mnt.  The descriptor;
 * -1 if there is none to use (warned: the outcome of the commit at
 * unmount cannot be reported); -2 if the socket is not the daemon's
 * (said). */
static int open_status(const char *mnt, pid_t pid)
{
	char msg[PATH_MAX + 256];
	int fd = ckpt_status_open(mnt, pid, msg, sizeof(msg));

	if (fd == CKPT_STATUS_NO_SOCKET) {
		fprintf(stderr,
			"ckpt: warning: the daemon of %s has no status "
			"socket: the outcome of its commit at unmount cannot be "
			"reported (see its log)\n",
			mnt);
		return -1;
	}
	if (fd == CKPT_STATUS_UNTRUSTED) {
		fprintf(stderr,
			"ckpt: %s; not trusting it: nothing was "
			"unmounted\n",
			msg);
		return -2;
	}
	if (fd < 0)
		fprintf(stderr,
			"ckpt: warning: %s: the outcome of the commit "
			"at unmount cannot be reported (see the daemon's "
			"log)\n",
			msg);
	return fd < 0 ? -1 : fd;
}

/* Makes the next commit replace whatever file the path holds now. */
static int force_commit(const char *mnt)
{
	if (ckpt_status_force(mnt) == 0)
		return 0;
	fprintf(stderr,
		"ckpt: cannot force the commit of %s: %s; nothing "
		"was unmounted\n",
		mnt, strerror(errno));
	return -1;
}

/* Commits every edit of mnt (with progress unless quiet).  On failure
 * says why and whether the mount stays (fix it, run again) or unmounting
 * saves a recovery file (the checkpoint was replaced or modified
 * underneath). */
static enum ckpt_commit_result commit_mount(const char *mnt, bool quiet)
{
	char msg[2048];
	enum ckpt_commit_result cr = cli_commit(mnt, quiet, msg, sizeof(msg));

	if (cr == CKPT_COMMIT_DONE)
		return cr;
	fprintf(stderr, "ckpt: commit of %s failed: %s\n", mnt, msg);
	if (cr == CKPT_COMMIT_CHANGED)
		fprintf(stderr, "ckpt: unmounting: the edits are saved as a "
				"recovery file\n");
	else
		fprintf(stderr,
			"ckpt: nothing was unmounted; the edits are "
			"still in the mount: fix the problem and run 'ckpt "
			"umount %s' again\n",
			mnt);
	return cr;
}

/* Reads the daemon's last line from status socket sfd (-1: none) and
 * reports it.  0 if the commit at unmount succeeded (or cannot be
 * known), 1 otherwise. */
static int report_outcome(int sfd, pid_t pid)
{
	char line[8192];

	if (sfd < 0)
		return 0;
	if (!ckpt_status_read(sfd, line, sizeof(line))) {
		fprintf(stderr,
			"ckpt: the ckptfs daemon (pid %d) ended without "
			"reporting the outcome of its commit at unmount (it "
			"crashed or was killed): edits made after the last "
			"commit may be lost; see its log\n",
			(int)pid);
		return 1;
	}
	if (strcmp(line, CKPT_STATUS_OK) == 0)
		return 0;
	fprintf(stderr, "ckpt: %s\n", line);
	return 1;
}

/* Waits until the process behind pidfd (-1: none) has exited. */
static void wait_exit(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	if (pidfd < 0)
		return;
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

/* umount [-q] [--force] MNT: connect to the daemon's status socket,
 * commit (fsync, with progress), unmount, read the outcome of the
 * daemon's last commit, wait for it to exit. */
int cmd_umount(struct cli *c, int argc, char **argv)
{
	enum ckpt_commit_result cr;
	int sfd, pidfd, ret = 1;
	const char *mnt;
	pid_t pid;

	if (argc != 1)
		return -1;
	mnt = argv[0];
	pid = daemon_pid(mnt);
	if (!pid)
		return 1;
	sfd = open_status(mnt, pid);
	if (sfd == -2)
		return 1;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (c->force && force_commit(mnt) != 0)
		goto out;
	cr = commit_mount(mnt, c->quiet);
	if (cr == CKPT_COMMIT_FAILED)
		goto out;
	if (fusermount_u(mnt, false) != 0) {
		fprintf(stderr,
			"ckpt: fusermount3 -u %s failed%s; if it is busy, "
			"a process has a file open or its working directory "
			"in it ('fuser -vm %s' lists them): end it and run "
			"'ckpt umount %s' again\n",
			mnt,
			cr == CKPT_COMMIT_DONE ? "; the edits are committed"
					       : "",
			mnt, mnt);
		goto out;
	}
	ret = report_outcome(sfd, pid) || cr != CKPT_COMMIT_DONE;
	wait_exit(pidfd);
out:
	if (sfd >= 0)
		close(sfd);
	if (pidfd >= 0)
		close(pidfd);
	return ret;
}
