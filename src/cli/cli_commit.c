/*
 * cli_commit.c - ckpt commit [-q] MOUNTPOINT: commit the edits of a
 * ckptfs mount without unmounting it, and the commit with a progress
 * display that 'ckpt umount' shares (cli_commit).
 *
 * The commit is the fsync of the mount root (ckpt_status_commit in
 * src/common/status_client.c); it returns once the new checkpoint is
 * durable.  While the display is on, a second thread runs that fsync and
 * the calling thread reads the root's user.ckptfs.progress every
 * POLL_MS until the fsync's thread says it is done (a pipe it closes),
 * so the end is seen at once.  With the display off no thread is made.
 * The daemon answers user.ckptfs.progress while the commit runs (not with
 * ckptfs -s, whose one thread is busy committing: then nothing is shown).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "ckpt_common.h"
#include "cli.h"

#define POLL_MS 100

/* The fsync of a commit, run by a thread. */
struct job {
	const char *mnt;
	char *msg;
	size_t size;
	enum ckpt_commit_result cr;
	int done_fd; /* closed when the commit has returned */
};

static void *run_commit(void *arg)
{
	struct job *j = arg;

	j->cr = ckpt_status_commit(j->mnt, j->msg, j->size);
	close(j->done_fd);
	return NULL;
}

/* Shows the progress of mnt's commit until done_fd ends; *seen is the
 * last total the mount told (0: none). */
static void watch(const char *mnt, int done_fd, struct ckpt_progress *p,
		  uint64_t *seen)
{
	struct pollfd pf = {.fd = done_fd, .events = POLLIN};
	uint64_t done, total;
	int n;

	for (;;) {
		if (ckpt_status_progress(mnt, &done, &total) == 0 && total) {
			*seen = total;
			ckpt_progress_update(p, done, total);
		}
		n = poll(&pf, 1, POLL_MS);
		if (n > 0 || (n < 0 && errno != EINTR))
			return;
	}
}

enum ckpt_commit_result cli_commit(const char *mnt, bool quiet, char *msg,
				   size_t size)
{
	struct job j = {.mnt = mnt, .msg = msg, .size = size};
	struct ckpt_progress p;
	uint64_t seen = 0;
	pthread_t th;
	int fds[2];

	ckpt_progress_start(&p, quiet);
	if (!p.on || pipe2(fds, O_CLOEXEC) != 0)
		return ckpt_status_commit(mnt, msg, size);
	j.done_fd = fds[1];
	if (pthread_create(&th, NULL, run_commit, &j) != 0) {
		close(fds[0]);
		close(fds[1]);
		return ckpt_status_commit(mnt, msg, size);
	}
	watch(mnt, fds[0], &p, &seen);
	pthread_join(th, NULL);
	close(fds[0]);
	if (j.cr == CKPT_COMMIT_DONE && seen)
		ckpt_progress_update(&p, seen, seen);
	ckpt_progress_end(&p);
	return j.cr;
}

/* 0 if mnt is served by a running ckptfs daemon, else 1 after a
 * message (nothing is unmounted here: 'ckpt umount' removes a stale
 * mount). */
static int check_daemon(const char *mnt)
{
	pid_t pid;

	switch (ckpt_status_daemon(mnt, &pid)) {
	case CKPT_MOUNT_SERVED:
		return 0;
	case CKPT_MOUNT_STALE:
		fprintf(stderr,
			"ckpt: the ckptfs daemon of %s is gone (it crashed or "
			"was killed): nothing can be committed; the checkpoint "
			"holds what the last successful commit wrote, and "
			"later edits are lost; 'ckpt umount %s' removes the "
			"stale mount point\n",
			mnt, mnt);
		return 1;
	case CKPT_MOUNT_FOREIGN:
		break;
	}
	fprintf(stderr, "ckpt: %s is not a ckptfs mount point\n", mnt);
	return 1;
}

/* commit [-q] MNT: commit, wait until durable, stay mounted. */
int cmd_commit(struct cli *c, int argc, char **argv)
{
	char msg[2048];
	enum ckpt_commit_result cr;
	const char *mnt;

	if (argc != 1)
		return -1;
	mnt = argv[0];
	if (check_daemon(mnt))
		return 1;
	cr = cli_commit(mnt, c->quiet, msg, sizeof(msg));
	if (cr == CKPT_COMMIT_DONE)
		return 0;
	fprintf(stderr, "ckpt: commit of %s failed: %s\n", mnt, msg);
	if (cr == CKPT_COMMIT_FAILED)
		fprintf(stderr,
			"ckpt: the edits are still in the mount: fix the "
			"problem and run 'ckpt commit %s' again\n",
			mnt);
	return 1;
}
