/*
 * status.c - the daemon's side of the status channel (see ckpt_common.h):
 * the private runtime directory, the listening socket and the thread that
 * accepts 'ckpt umount' clients, and the last line they all get.  The
 * client's side is in status_client.c.
 *
 * Every path operation goes through the runtime directory's descriptor:
 * sockets are bound as /proc/self/fd/N/NAME, which is short (sun_path
 * holds 108 bytes) and cannot be redirected by renaming or replacing a
 * directory on the way.
 *
 * Locking: the listener thread alone touches the client list while it
 * runs; ckpt_status_finish stops and joins it before it touches the list.
 * Never calls into FUSE or the library, never blocks on a client (sends
 * do not wait), and trusts only peers running as us or as root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ckpt_common.h"

#define MAX_CLIENTS 32

struct ckpt_status_server {
	int dirfd;		  /* the runtime directory */
	char dir[PATH_MAX];	  /* its path */
	char name[32];		  /* PID.sock once bound, else "" */
	char path[PATH_MAX + 32]; /* dir/name once started, else "" */
	int lfd;		  /* the listening socket, -1 if none */
	int stopfd;		  /* eventfd: readable = the thread ends */
	bool running;		  /* the listener thread was started */
	pthread_t thread;
	int clients[MAX_CLIENTS];
	unsigned nclients;
};

/* ---- the runtime directory --------------------------------------------- */

/* True if path is a directory owned by uid. */
static bool dir_owned_by(const char *path, uid_t uid)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid;
}

/* Picks the runtime directory: "$XDG_RUNTIME_DIR/ckptfs" if that variable
 * names a directory owned by us, "/run/ckptfs" for root, else
 * "/tmp/ckptfs-UID"; base gets the parent, name the last component. */
static void pick_dir(char *base, size_t bsize, char *name, size_t nsize)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	uid_t uid = geteuid();

	if (xdg && xdg[0] == '/' && dir_owned_by(xdg, uid)) {
		snprintf(base, bsize, "%s", xdg);
		snprintf(name, nsize, "ckptfs");
	} else if (uid == 0 && dir_owned_by("/run", 0)) {
		snprintf(base, bsize, "/run");
		snprintf(name, nsize, "ckptfs");
	} else {
		snprintf(base, bsize, "/tmp");
		snprintf(name, nsize, "ckptfs-%u", (unsigned)uid);
	}
}

/* Checks that the open directory fd (path for messages) is ours alone:
 * owned by us, no group or other permission bits.  0, or -1 with msg. */
static int check_private(int fd, const char *path, char *msg, size_t size)
{
	struct stat st;

	if (fstat(fd, &st) != 0) {
		snprintf(msg, size, "status directory %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(msg, size,
			 "status directory %s belongs to uid %u, "
			 "not to us (uid %u): remove it",
			 path, (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(msg, size,
			 "status directory %s has mode %04o: it "
			 "must be 0700 (chmod 700 it or remove it)",
			 path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* Creates (if missing) and opens the runtime directory base/name without
 * following a symbolic link at name; stores its path in s->dir.  The
 * descriptor, or -1 with msg. */
static int open_private_dir(struct ckpt_status_server *s, const char *base,
			    const char *name, char *msg, size_t size)
{
	int bfd, fd = -1;

	if (snprintf(s->dir, sizeof(s->dir), "%s/%s", base, name) >=
	    (int)sizeof(s->dir)) {
		snprintf(msg, size, "status directory %s: path too long", base);
		return -1;
	}
	bfd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0) {
		snprintf(msg, size, "status directory %s: %s", base,
			 strerror(errno));
		return -1;
	}
	if (mkdirat(bfd, name, 0700) != 0 && errno != EEXIST) {
		snprintf(msg, size,
			 "cannot create the status directory %s: "
			 "%s",
			 s->dir, strerror(errno));
		goto out;
	}
	fd = openat(bfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, size, "status directory %s: %s", s->dir,
			 errno == ELOOP || errno == ENOTDIR
				 ? "not a directory (a symbolic link?): "
				   "remove it"
				 : strerror(errno));
	} else if (check_private(fd, s->dir, msg, size) != 0) {
		close(fd);
		fd = -1;
	}
out:
	close(bfd);
	return fd;
}

/* The pid in a socket name "PID.sock", or 0 if name is not one. */
static pid_t socket_pid(const char *name)
{
	char *end;
	long pid;

	if (name[0] < '1' || name[0] > '9')
		return 0;
	errno = 0;
	pid = strtol(name, &end, 10);
	if (errno || pid <= 0 || pid > INT_MAX || strcmp(end, ".sock") != 0)
		return 0;
	return (pid_t)pid;
}

/* Removes name from dirfd if it is a socket (never anything else). */
static void unlink_socket(int dirfd, const char *name)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(st.st_mode))
		unlinkat(dirfd, name, 0);
}

/* Removes the sockets PID.sock of processes that no longer exist. */
static void remove_stale(int dirfd)
{
	struct dirent *e;
	DIR *d;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		pid_t pid = socket_pid(e->d_name);
		if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
			unlink_socket(dirfd, e->d_name);
	}
	closedir(d);
}

int ckpt_status_prepare(struct ckpt_status_server **out, char *msg, size_t size)
{
	struct ckpt_status_server *s = calloc(1, sizeof(*s));
	char base[PATH_MAX], name[32];

	*out = NULL;
	if (!s) {
		snprintf(msg, size, "out of memory");
		return -1;
	}
	s->lfd = s->stopfd = -1;
	pick_dir(base, sizeof(base), name, sizeof(name));
	s->dirfd = open_private_dir(s, base, name, msg, size);
	if (s->dirfd < 0) {
		free(s);
		return -1;
	}
	remove_stale(s->dirfd);
	*out = s;
	return 0;
}

/* ---- the listener ------------------------------------------------------ */

/* True if the client on fd, which poll found ready, has gone (EOF or an
 * error); whatever it sent is read and ignored. */
static bool client_gone(int fd)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

/* True if the peer of fd runs as us or as root. */
static bool peer_trusted(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return false;
	return cred.uid == geteuid() || cred.uid == 0;
}

/* Accepts every pending connection (the listening socket does not
 * block); keeps at most MAX_CLIENTS trusted ones. */
static void accept_clients(struct ckpt_status_server *s)
{
	int fd;

	while ((fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0 ||
	       errno == EINTR || errno == ECONNABORTED) {
		if (fd < 0)
			continue;
		if (s->nclients < MAX_CLIENTS && peer_trusted(fd))
			s->clients[s->nclients++] = fd;
		else
			close(fd);
	}
}

/* Closes and forgets the clients whose pollfd (p[i] for clients[i])
 * says they have gone. */
static void drop_gone(struct ckpt_status_server *s, const struct pollfd *p)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < s->nclients; i++) {
		if (p[i].revents && client_gone(s->clients[i]))
			close(s->clients[i]);
		else
			s->clients[kept++] = s->clients[i];
	}
	s->nclients = kept;
}

/* The listener thread: accepts clients and drops those that hang up,
 * until stopfd becomes readable. */
static void *listener(void *arg)
{
	struct ckpt_status_server *s = arg;
	struct pollfd p[2 + MAX_CLIENTS];

	for (;;) {
		unsigned n = s->nclients;
		p[0] = (struct pollfd){.fd = s->stopfd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
		for (unsigned i = 0; i < n; i++)
			p[2 + i] = (struct pollfd){.fd = s->clients[i],
						   .events = POLLIN};
		if (poll(p, 2 + n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		drop_gone(s, p + 2);
		if (p[1].revents)
			accept_clients(s);
	}
	return NULL;
}

/* Starts the listener thread with every signal blocked in it, so that the
 * signals that end the session reach the threads that serve it.  0 or an
 * errno value. */
static int start_thread(struct ckpt_status_server *s)
{
	sigset_t all, old;
	int e;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	e = pthread_create(&s->thread, NULL, listener, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	s->running = e == 0;
	return e;
}

/* Binds and listens on dirfd/name (the name set by the caller). */
static int bind_socket(struct ckpt_status_server *s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s",
		 s->dirfd, s->name);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->lfd < 0)
		return -1;
	if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(s->lfd);
		s->lfd = -1;
		return -1;
	}
	return listen(s->lfd, 16);
}

int ckpt_status_start(struct ckpt_status_server *s, char *msg, size_t size)
{
	int e;

	snprintf(s->name, sizeof(s->name), "%d.sock", (int)getpid());
	unlink_socket(s->dirfd, s->name); /* of a dead process with our pid */
	if (bind_socket(s) != 0) {
		e = errno;
		goto fail;
	}
	s->stopfd = eventfd(0, EFD_CLOEXEC);
	if (s->stopfd < 0) {
		e = errno;
		goto fail;
	}
	e = start_thread(s);
	if (e)
		goto fail;
	snprintf(s->path, sizeof(s->path), "%s/%s", s->dir, s->name);
	return 0;
fail:
	snprintf(msg, size, "status socket %s/%s: %s", s->dir, s->name,
		 strerror(e));
	if (s->lfd >= 0) {
		close(s->lfd);
		s->lfd = -1;
		unlinkat(s->dirfd, s->name, 0);
	}
	return -1;
}

const char *ckpt_status_path(const struct ckpt_status_server *s)
{
	return s && s->path[0] ? s->path : NULL;
}

/* Sends "line\n" to fd, newlines inside line turned into spaces (best
 * effort: a client that is gone or does not read loses it). */
static void send_line(int fd, const char *line)
{
	size_t n = strlen(line);
	char *buf = malloc(n + 1);

	if (!buf)
		return;
	for (size_t i = 0; i < n; i++)
		buf[i] = line[i] == '\n' ? ' ' : line[i];
	buf[n] = '\n';
	if (send(fd, buf, n + 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client went away: nobody to tell */
	}
	free(buf);
}

void ckpt_status_finish(struct ckpt_status_server *s, const char *line)
{
	if (!s)
		return;
	if (s->running) {
		eventfd_write(s->stopfd, 1); /* cannot fail for 1 */
		pthread_join(s->thread, NULL);
	}
	if (s->lfd >= 0)
		accept_clients(s); /* connected, not accepted yet */
	for (unsigned i = 0; i < s->nclients; i++) {
		send_line(s->clients[i], line);
		close(s->clients[i]);
	}
	if (s->lfd >= 0) {
		close(s->lfd);
		unlinkat(s->dirfd, s->name, 0);
	}
	if (s->stopfd >= 0)
		close(s->stopfd);
	close(s->dirfd);
	free(s);
}
