/*
 * place.c - the files underneath a tree, held so that nobody can swap them.
 *
 * A path is resolved once, at open, into a directory descriptor and a
 * final name (struct ckpt_place); every later operation is relative to the
 * descriptor, so renaming or replacing a directory of the path by a
 * symlink cannot redirect a commit, and a mount over the checkpoint's own
 * directory never resolves a path through itself.  A symlink at the final
 * name is followed only if the caller owns it.
 *
 * The file a commit will replace is kept open and its identity remembered
 * (struct ckpt_ident); a read-write tree holds an OFD write lock on it, so
 * a second writer is refused.  Names of temporary files carry random
 * characters, so nobody can reserve them in advance.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"

void ckpt_ident_of(const struct stat *st, struct ckpt_ident *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
}

bool ckpt_ident_same_file(const struct ckpt_ident *id, const struct stat *st)
{
	return id->dev == st->st_dev && id->ino == st->st_ino;
}

bool ckpt_ident_same(const struct ckpt_ident *id, const struct stat *st)
{
	return ckpt_ident_same_file(id, st) && id->size == st->st_size &&
	       id->mtime.tv_sec == st->st_mtim.tv_sec &&
	       id->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

void ckpt_random_name(char *buf, size_t size, const char *prefix,
		      const char *suffix)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	unsigned char r[8];
	char rnd[sizeof(r) + 1];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		uint64_t x = (uint64_t)getpid() * 2654435761u ^
			     (uint64_t)(uintptr_t)buf ^ (uint64_t)clock();
		memcpy(r, &x, sizeof(r));
	}
	for (size_t i = 0; i < sizeof(r); i++)
		rnd[i] = digits[r[i] % 36];
	rnd[sizeof(r)] = '\0';
	snprintf(buf, size, "%s%s%s", prefix, rnd, suffix);
}

/* ---- places ------------------------------------------------------------ */

/* Splits path into a directory (opened into pl->dirfd) and a final name. */
static ckpt_err split_open(const char *path, struct ckpt_place *pl,
			   struct ckpt_error *err)
{
	char *d = strdup(path), *b = strdup(path), *rd = NULL, *dir;
	const char *base;
	ckpt_err r = CKPT_OK;

	if (!d || !b) {
		r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
		goto out;
	}
	base = basename(b);
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..") ||
	    path[strlen(path) - 1] == '/') {
		r = ckpt_fail(err, CKPT_ERR_INVAL, 0, "%s: not a file name",
			      path);
		goto out;
	}
	dir = dirname(d); /* may be a static "." rather than d */
	pl->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rd = pl->dirfd >= 0 ? realpath(dir, NULL) : NULL;
	free(pl->base);
	free(pl->path);
	pl->path = NULL;
	pl->base = strdup(base);
	if (rd && pl->base &&
	    asprintf(&pl->path, "%s/%s", strcmp(rd, "/") ? rd : "", base) < 0)
		pl->path = NULL;
	if (pl->dirfd < 0 || !rd)
		r = ckpt_fail(err,
			      errno == ENOMEM ? CKPT_ERR_NOMEM : CKPT_ERR_IO, 0,
			      "%s: cannot open its directory: %s", path,
			      strerror(errno));
	else if (!pl->base || !pl->path)
		r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
out:
	free(d);
	free(b);
	free(rd);
	return r;
}

/* The path a symlink at pl's final name leads to (malloc'd), or NULL. */
static char *link_target(const struct ckpt_place *pl)
{
	char buf[4096], *out = NULL;
	ssize_t n = readlinkat(pl->dirfd, pl->base, buf, sizeof(buf) - 1);
	int dlen = (int)(strrchr(pl->path, '/') - pl->path);

	if (n <= 0 || n == (ssize_t)sizeof(buf) - 1)
		return NULL;
	buf[n] = '\0';
	if (buf[0] == '/')
		return strdup(buf);
	if (asprintf(&out, "%.*s/%s", dlen, pl->path, buf) < 0)
		return NULL;
	return out;
}

ckpt_err ckpt_place_open(const char *path, struct ckpt_place *pl,
			 struct ckpt_error *err)
{
	struct stat st;
	ckpt_err r;

	pl->dirfd = -1;
	pl->base = pl->path = NULL;
	r = split_open(path, pl, err);
	/* each link of a chain must be the caller's; at most 8 of them */
	for (int hops = 0; !r; hops++) {
		char *next;
		if (fstatat(pl->dirfd, pl->base, &st, AT_SYMLINK_NOFOLLOW) !=
			    0 ||
		    !S_ISLNK(st.st_mode))
			return CKPT_OK;
		if (st.st_uid != geteuid())
			return ckpt_fail(err, CKPT_ERR_PERM, 0,
					 "%s is a symbolic link owned by "
					 "another user (uid %u): refusing to "
					 "follow it; give the path of the file "
					 "itself",
					 pl->path, (unsigned)st.st_uid);
		next = hops < 8 ? link_target(pl) : NULL;
		if (!next)
			return ckpt_fail(err, CKPT_ERR_IO, 0,
					 "%s: a symbolic link that cannot be "
					 "followed (unreadable, or too many "
					 "links)",
					 pl->path);
		close(pl->dirfd);
		pl->dirfd = -1;
		r = split_open(next, pl, err);
		free(next);
	}
	return r;
}

void ckpt_place_close(struct ckpt_place *pl)
{
	if (pl->dirfd >= 0)
		close(pl->dirfd);
	free(pl->base);
	free(pl->path);
	pl->dirfd = -1;
	pl->base = pl->path = NULL;
}

int ckpt_place_dup(const struct ckpt_place *pl, struct ckpt_place *out)
{
	out->dirfd = fcntl(pl->dirfd, F_DUPFD_CLOEXEC, 0);
	out->base = strdup(pl->base);
	out->path = strdup(pl->path);
	if (out->dirfd >= 0 && out->base && out->path)
		return 0;
	ckpt_place_close(out);
	return -1;
}

/* ---- locks and strays -------------------------------------------------- */

ckpt_err ckpt_lock_writer(int fd, const char *path, struct ckpt_error *err)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return CKPT_OK;
	if (errno == EAGAIN || errno == EACCES) {
		ckpt_fail(err, CKPT_ERR_BUSY, 0,
			  "%s is being edited by "
			  "another ckptfs mount or ckpt command (it holds the "
			  "write lock): unmount that one first",
			  path);
		ckpt_set_hint(err, CKPT_HINT_READ_ONLY, 0);
		return CKPT_ERR_BUSY;
	}
	return ckpt_fail(err, CKPT_ERR_IO, 0, "%s: cannot lock it: %s", path,
			 strerror(errno));
}

void ckpt_remove_strays(const struct ckpt_place *pl)
{
	size_t n = strlen(pl->base) + 16;
	char *prefix = malloc(n);
	int fd = fcntl(pl->dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct stat st;

	if (!d && fd >= 0)
		close(fd);
	if (!prefix || !d)
		goto out;
	snprintf(prefix, n, CKPT_TMP_PREFIX, pl->base);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)) &&
		    fstatat(pl->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
			    0 &&
		    S_ISREG(st.st_mode) && st.st_uid == geteuid())
			unlinkat(pl->dirfd, de->d_name, 0);
out:
	if (d)
		closedir(d);
	free(prefix);
}
