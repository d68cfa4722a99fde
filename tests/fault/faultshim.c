/*
 * faultshim.c - an LD_PRELOAD library that makes chosen file system calls
 * fail, for the fault-injection tests (tests/integration/test_faults.py).
 *
 * Wrapped calls and the name each one is counted under:
 *
 *   write                      write
 *   pwrite, pwrite64           pwrite
 *   copy_file_range            copy_file_range   (the output descriptor)
 *   fsync / fdatasync          fsync / fdatasync
 *   ftruncate, ftruncate64     ftruncate
 *   fchmod                     fchmod
 *   rename / renameat / renameat2 / linkat      under their own names
 *   open, open64, __open_2, __open64_2          open    } only with O_CREAT
 *   openat, openat64, __openat_2, __openat64_2  openat  } or O_TMPFILE
 *   memfd_create               memfd_create
 *   ioctl(FICLONE)             ficlone           (the output descriptor;
 *                                                 other ioctls pass)
 *
 * A call on a descriptor is counted (and can fail) only when the descriptor
 * is a regular file or a directory above 2: FUSE device traffic
 * (/dev/fuse), pipes, sockets and the standard streams (the daemon's log)
 * are passed through untouched and uncounted.  Path calls always count.
 *
 * Control: CKPT_FAULT_FILE names a text file that the test rewrites at any
 * time.  Each intercepted call stats it; when its inode, size, mtime or
 * ctime changed, it is read again and every counter restarts from zero (so
 * "the 3rd fsync" means the 3rd since the file last changed; write a new
 * file and rename it over the old one, so that two versions written within
 * one clock tick still differ in their inode).  Lines:
 *
 *   KIND N ERR     the N-th call of KIND fails with ERR
 *   KIND N+ ERR    the N-th and every later call of KIND fail
 *   KIND * ERR     every call of KIND fails
 *   any ...        the same, counting all wrapped calls together
 *   seq TOKEN      a label, echoed in the statistics (tests write a new
 *                  serial number with every version, so that the statistics
 *                  say which version they count from)
 *   # ...          a comment
 *
 * KIND is one of the names above; ERR is an errno name (EIO, ENOSPC,
 * EDQUOT, EFBIG, EROFS, EINTR, ...) or a number, or SHORT: the call is
 * made for half of the requested length (write, pwrite, copy_file_range
 * only; others then pass; on an O_DIRECT descriptor rounded down to whole
 * 4 KiB pages).  A missing or empty file injects nothing.
 *
 * O_DIRECT: a pwrite on a descriptor opened (or fcntl'ed) O_DIRECT whose
 * buffer, offset or length is not a multiple of 4096 fails with EINVAL, as
 * on ext4, also where the file system would accept it (tmpfs, on which
 * the tests run, checks nothing).  The statistics count the pwrites on
 * O_DIRECT descriptors apart ("direct", below).
 *
 * Statistics: when CKPT_FAULT_STATS names a file, every counted call
 * rewrites it (write to PATH.tmp, rename: readers never see half a file):
 *
 *   gen G              how many versions of the control file were seen
 *   seq TOKEN          the label of the version counted from (or -)
 *   pid P
 *   count KIND N       calls of KIND since the control file last changed
 *   fired KIND N ERR   a fault that was injected (the N-th call of KIND)
 *   direct N M         of the pwrites on O_DIRECT descriptors, N went
 *                      through and M were refused as misaligned
 *   trace KIND N PATH  with CKPT_FAULT_TRACE=1: the last 64 counted calls
 *                      and the file each one was about
 *   end G
 *
 * Thread-safe (one mutex).  The library's own I/O goes to the real
 * functions and is never counted.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif
#ifndef __O_TMPFILE
#define __O_TMPFILE 020000000
#endif

#define EXPORT __attribute__((visibility("default")))

enum kind {
	K_WRITE,
	K_PWRITE,
	K_COPY_FILE_RANGE,
	K_FSYNC,
	K_FDATASYNC,
	K_FTRUNCATE,
	K_FCHMOD,
	K_RENAME,
	K_RENAMEAT,
	K_RENAMEAT2,
	K_LINKAT,
	K_OPEN,
	K_OPENAT,
	K_MEMFD_CREATE,
	K_FICLONE,
	K_COUNT,
	K_ANY = K_COUNT
};

static const char *const kind_names[K_COUNT + 1] = {
	"write",     "pwrite",	     "copy_file_range", "fsync",
	"fdatasync", "ftruncate",    "fchmod",		"rename",
	"renameat",  "renameat2",    "linkat",		"open",
	"openat",    "memfd_create", "ficlone",		"any"};

#define ERR_SHORT (-1)
#define MAX_RULES 64
#define MAX_FIRED 64
#define TRACE_LEN 64

struct rule {
	int kind; /* enum kind, K_ANY for all */
	unsigned long from;
	int open_end; /* N+ or * */
	int err;      /* errno, or ERR_SHORT */
};

struct trace {
	int kind;
	unsigned long n;
	char what[160];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static __thread int busy; /* inside the shim: pass everything through */

static const char *ctl_path, *stats_path;
static int tracing;
static struct stat ctl_seen;
static int ctl_seen_valid; /* ctl_seen describes an existing file */
static unsigned long gen;
static char seq[64] = "-";
static struct rule rules[MAX_RULES];
static int nrules;
static unsigned long counts[K_COUNT + 1];
static unsigned long ndirect, nmisaligned; /* pwrites on O_DIRECT fds */
static char fired[MAX_FIRED][64];
static int nfired;
static struct trace traces[TRACE_LEN];
static unsigned long ntraces;

/* the real functions */
static ssize_t (*r_write)(int, const void *, size_t);
static ssize_t (*r_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*r_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*r_copy_file_range)(int, loff_t *, int, loff_t *, size_t,
				    unsigned int);
static int (*r_fsync)(int);
static int (*r_fdatasync)(int);
static int (*r_ftruncate)(int, off_t);
static int (*r_ftruncate64)(int, off64_t);
static int (*r_fchmod)(int, mode_t);
static int (*r_rename)(const char *, const char *);
static int (*r_renameat)(int, const char *, int, const char *);
static int (*r_renameat2)(int, const char *, int, const char *, unsigned int);
static int (*r_linkat)(int, const char *, int, const char *, int);
static int (*r_open)(const char *, int, ...);
static int (*r_open64)(const char *, int, ...);
static int (*r___open_2)(const char *, int);
static int (*r___open64_2)(const char *, int);
static int (*r_openat)(int, const char *, int, ...);
static int (*r_openat64)(int, const char *, int, ...);
static int (*r___openat_2)(int, const char *, int);
static int (*r___openat64_2)(int, const char *, int);
static int (*r_memfd_create)(const char *, unsigned int);
static int (*r_ioctl)(int, unsigned long, ...);

#define RESOLVE(name) (r_##name = (__typeof__(r_##name))dlsym(RTLD_NEXT, #name))

static void resolve_all(void)
{
	busy++;
	RESOLVE(write);
	RESOLVE(pwrite);
	RESOLVE(pwrite64);
	RESOLVE(copy_file_range);
	RESOLVE(fsync);
	RESOLVE(fdatasync);
	RESOLVE(ftruncate);
	RESOLVE(ftruncate64);
	RESOLVE(fchmod);
	RESOLVE(rename);
	RESOLVE(renameat);
	RESOLVE(renameat2);
	RESOLVE(linkat);
	RESOLVE(open);
	RESOLVE(open64);
	RESOLVE(__open_2);
	RESOLVE(__open64_2);
	RESOLVE(openat);
	RESOLVE(openat64);
	RESOLVE(__openat_2);
	RESOLVE(__openat64_2);
	RESOLVE(memfd_create);
	RESOLVE(ioctl);
	ctl_path = getenv("CKPT_FAULT_FILE");
	stats_path = getenv("CKPT_FAULT_STATS");
	tracing = getenv("CKPT_FAULT_TRACE") && *getenv("CKPT_FAULT_TRACE") &&
		  strcmp(getenv("CKPT_FAULT_TRACE"), "0") != 0;
	if (ctl_path && !*ctl_path)
		ctl_path = NULL;
	if (stats_path && !*stats_path)
		stats_path = NULL;
	busy--;
}

static void init(void)
{
	pthread_once(&once, resolve_all);
}

__attribute__((constructor)) static void shim_ctor(void)
{
	init();
}

/* ---- control file ------------------------------------------------------ */

static const struct {
	const char *name;
	int value;
} errnos[] = {
	{"EIO", EIO},
	{"ENOSPC", ENOSPC},
	{"EDQUOT", EDQUOT},
	{"EFBIG", EFBIG},
	{"EROFS", EROFS},
	{"EINTR", EINTR},
	{"EAGAIN", EAGAIN},
	{"EPERM", EPERM},
	{"EACCES", EACCES},
	{"ENOMEM", ENOMEM},
	{"EEXIST", EEXIST},
	{"EXDEV", EXDEV},
	{"EINVAL", EINVAL},
	{"ENOSYS", ENOSYS},
	{"EOPNOTSUPP", EOPNOTSUPP},
	{"EBADF", EBADF},
	{"EMFILE", EMFILE},
	{"ENFILE", ENFILE},
	{"ENOENT", ENOENT},
	{"ETIMEDOUT", ETIMEDOUT},
};

static int parse_err(const char *s)
{
	char *end;
	long v;

	if (strcmp(s, "SHORT") == 0)
		return ERR_SHORT;
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (strcmp(s, errnos[i].name) == 0)
			return errnos[i].value;
	v = strtol(s, &end, 10);
	if (*s && !*end && v > 0 && v < 4096)
		return (int)v;
	return 0;
}

static const char *err_name(int e)
{
	static __thread char buf[16];

	if (e == ERR_SHORT)
		return "SHORT";
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (errnos[i].value == e)
			return errnos[i].name;
	snprintf(buf, sizeof(buf), "%d", e);
	return buf;
}

static int parse_kind(const char *s)
{
	for (int k = 0; k <= K_COUNT; k++)
		if (strcmp(s, kind_names[k]) == 0)
			return k;
	return -1;
}

static void parse_rules(char *text)
{
	char *save = NULL;

	nrules = 0;
	snprintf(seq, sizeof(seq), "-");
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char k[64], n[32], e[32];
		struct rule r = {0};
		char *end;

		if (sscanf(line, " %63s %31s", k, n) == 2 &&
		    strcmp(k, "seq") == 0) {
			snprintf(seq, sizeof(seq), "%s", n);
			continue;
		}
		if (sscanf(line, " %63s %31s %31s", k, n, e) != 3 ||
		    k[0] == '#')
			continue;
		r.kind = parse_kind(k);
		r.err = parse_err(e);
		if (r.kind < 0 || r.err == 0)
			continue;
		if (strcmp(n, "*") == 0) {
			r.from = 1;
			r.open_end = 1;
		} else {
			r.from = strtoul(n, &end, 10);
			if (*end == '+') {
				r.open_end = 1;
				end++;
			}
			if (*end || r.from == 0)
				continue;
		}
		if (nrules < MAX_RULES)
			rules[nrules++] = r;
	}
}

/* Re-reads the control file if it changed; called with mu held. */
static void refresh(void)
{
	struct stat st;
	int exists;

	if (!ctl_path)
		return;
	exists = stat(ctl_path, &st) == 0;
	if (exists == ctl_seen_valid &&
	    (!exists ||
	     (st.st_ino == ctl_seen.st_ino && st.st_dev == ctl_seen.st_dev &&
	      st.st_size == ctl_seen.st_size &&
	      st.st_mtim.tv_sec == ctl_seen.st_mtim.tv_sec &&
	      st.st_mtim.tv_nsec == ctl_seen.st_mtim.tv_nsec &&
	      st.st_ctim.tv_sec == ctl_seen.st_ctim.tv_sec &&
	      st.st_ctim.tv_nsec == ctl_seen.st_ctim.tv_nsec)))
		return;
	ctl_seen_valid = exists;
	if (exists)
		ctl_seen = st;
	gen++;
	memset(counts, 0, sizeof(counts));
	ndirect = nmisaligned = 0;
	nfired = 0;
	ntraces = 0;
	nrules = 0;
	snprintf(seq, sizeof(seq), "-");
	if (exists && st.st_size > 0 && st.st_size < 65536) {
		int fd = r_open(ctl_path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			char *buf = malloc((size_t)st.st_size + 1);
			ssize_t n = buf ? read(fd, buf, (size_t)st.st_size)
					: -1;
			if (n >= 0) {
				buf[n] = '\0';
				parse_rules(buf);
			}
			free(buf);
			close(fd);
		}
	}
}

/* ---- statistics -------------------------------------------------------- */

static void write_stats(void)
{
	char tmp[PATH_MAX], *buf;
	size_t cap = 16384, len = 0;
	int fd;

	if (!stats_path || snprintf(tmp, sizeof(tmp), "%s.tmp", stats_path) >=
				   (int)sizeof(tmp))
		return;
	buf = malloc(cap);
	if (!buf)
		return;
#define ADD(...)                                                      \
	do {                                                          \
		int w_ = snprintf(buf + len, cap - len, __VA_ARGS__); \
		if (w_ > 0 && (size_t)w_ < cap - len)                 \
			len += (size_t)w_;                            \
	} while (0)
	ADD("gen %lu\nseq %s\npid %d\n", gen, seq, (int)getpid());
	for (int k = 0; k <= K_COUNT; k++)
		ADD("count %s %lu\n", kind_names[k], counts[k]);
	ADD("direct %lu %lu\n", ndirect, nmisaligned);
	for (int i = 0; i < nfired; i++)
		ADD("fired %s\n", fired[i]);
	if (tracing) {
		unsigned long first = ntraces > TRACE_LEN ? ntraces - TRACE_LEN
							  : 0;
		for (unsigned long i = first; i < ntraces; i++) {
			const struct trace *t = &traces[i % TRACE_LEN];
			ADD("trace %s %lu %s\n", kind_names[t->kind], t->n,
			    t->what);
		}
	}
	ADD("end %lu\n", gen);
#undef ADD
	fd = r_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		size_t done = 0;
		while (done < len) {
			ssize_t w = r_write(fd, buf + done, len - done);
			if (w <= 0)
				break;
			done += (size_t)w;
		}
		close(fd);
		if (done == len)
			r_rename(tmp, stats_path);
	}
	free(buf);
}

/* ---- the decision ------------------------------------------------------ */

/* Is fd worth counting: a regular file or a directory, not 0-2? */
static int fd_counts(int fd)
{
	struct stat st;

	if (fd <= 2 || fstat(fd, &st) != 0)
		return 0;
	return S_ISREG(st.st_mode) || S_ISDIR(st.st_mode);
}

static void describe_fd(int fd, char *out, size_t size)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, out, size - 1);
	out[n > 0 ? n : 0] = '\0';
}

/* Counts one call of kind k and returns the error to inject (0: none,
 * ERR_SHORT: do half).  fd >= 0: a descriptor call (filtered), else a path
 * call about `what`. */
static int decide(int k, int fd, const char *what)
{
	int inject = 0;
	unsigned long n, nany;

	if (busy)
		return 0;
	init();
	busy++;
	if (fd >= 0 && !fd_counts(fd)) {
		busy--;
		return 0;
	}
	pthread_mutex_lock(&mu);
	refresh();
	n = ++counts[k];
	nany = ++counts[K_ANY];
	for (int i = 0; i < nrules && !inject; i++) {
		const struct rule *r = &rules[i];
		unsigned long c = r->kind == K_ANY ? nany
				  : r->kind == k   ? n
						   : 0;
		if (c && (c == r->from || (r->open_end && c > r->from)))
			inject = r->err;
	}
	if (inject && nfired < MAX_FIRED)
		snprintf(fired[nfired++], sizeof(fired[0]), "%s %lu %s",
			 kind_names[k], n, err_name(inject));
	if (tracing) {
		struct trace *t = &traces[ntraces++ % TRACE_LEN];
		t->kind = k;
		t->n = n;
		if (fd >= 0)
			describe_fd(fd, t->what, sizeof(t->what));
		else
			snprintf(t->what, sizeof(t->what), "%s",
				 what ? what : "?");
	}
	write_stats();
	pthread_mutex_unlock(&mu);
	busy--;
	return inject;
}

static size_t half(size_t n)
{
	return n > 1 ? n / 2 : n;
}

/* The half of an n-byte pwrite on fd that is made for SHORT: on an
 * O_DIRECT descriptor a whole number of 4 KiB pages (as a device's short
 * direct write is whole sectors), so that the rest stays aligned. */
static size_t half_pwrite(int fd, size_t n)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && (fl & O_DIRECT) && n >= 8192)
		return n / 2 / 4096 * 4096;
	return half(n);
}

/* Whether a pwrite would break the O_DIRECT alignment rules of ext4;
 * counts the pwrites on O_DIRECT descriptors (shown at the next call). */
static int misaligned_direct(int fd, const void *buf, size_t n, off64_t off)
{
	int fl = fcntl(fd, F_GETFL);
	int bad;

	if (fl < 0 || !(fl & O_DIRECT))
		return 0;
	bad = (((uintptr_t)buf | (uint64_t)n | (uint64_t)off) & 4095u) != 0;
	if (!fd_counts(fd))
		return bad;
	pthread_mutex_lock(&mu);
	if (bad)
		nmisaligned++;
	else
		ndirect++;
	pthread_mutex_unlock(&mu);
	return bad;
}

/* ---- wrappers ---------------------------------------------------------- */

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	int e = decide(K_WRITE, fd, NULL);

	if (e > 0) {
		errno = e;
		return -1;
	}
	return r_write(fd, buf, e == ERR_SHORT ? half(n) : n);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	int e = decide(K_PWRITE, fd, NULL);

	if (e > 0 || misaligned_direct(fd, buf, n, off)) {
		errno = e > 0 ? e : EINVAL;
		return -1;
	}
	return r_pwrite(fd, buf, e == ERR_SHORT ? half_pwrite(fd, n) : n, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	int e = decide(K_PWRITE, fd, NULL);

	if (e > 0 || misaligned_direct(fd, buf, n, off)) {
		errno = e > 0 ? e : EINVAL;
		return -1;
	}
	return r_pwrite64(fd, buf, e == ERR_SHORT ? half_pwrite(fd, n) : n,
			  off);
}

EXPORT ssize_t copy_file_range(int in, loff_t *in_off, int out, loff_t *out_off,
			       size_t n, unsigned int flags)
{
	int e = decide(K_COPY_FILE_RANGE, out, NULL);

	if (e > 0) {
		errno = e;
		return -1;
	}
	return r_copy_file_range(in, in_off, out, out_off,
				 e == ERR_SHORT ? half(n) : n, flags);
}

#define FD_WRAPPER(ret, name, K, params, args, fd) \
	EXPORT ret name params                     \
	{                                          \
		int e = decide(K, fd, NULL);       \
		if (e > 0) {                       \
			errno = e;                 \
			return -1;                 \
		}                                  \
		return r_##name args;              \
	}

FD_WRAPPER(int, fsync, K_FSYNC, (int fd), (fd), fd)
FD_WRAPPER(int, fdatasync, K_FDATASYNC, (int fd), (fd), fd)
FD_WRAPPER(int, ftruncate, K_FTRUNCATE, (int fd, off_t len), (fd, len), fd)
FD_WRAPPER(int, ftruncate64, K_FTRUNCATE, (int fd, off64_t len), (fd, len), fd)
FD_WRAPPER(int, fchmod, K_FCHMOD, (int fd, mode_t mode), (fd, mode), fd)

#define PATH_WRAPPER(name, K, params, args, what) \
	EXPORT int name params                    \
	{                                         \
		int e = decide(K, -1, what);      \
		if (e > 0) {                      \
			errno = e;                \
			return -1;                \
		}                                 \
		return r_##name args;             \
	}

PATH_WRAPPER(rename, K_RENAME, (const char *a, const char *b), (a, b), b)
PATH_WRAPPER(renameat, K_RENAMEAT,
	     (int da, const char *a, int db, const char *b), (da, a, db, b), b)
PATH_WRAPPER(renameat2, K_RENAMEAT2,
	     (int da, const char *a, int db, const char *b, unsigned int flags),
	     (da, a, db, b, flags), b)
PATH_WRAPPER(linkat, K_LINKAT,
	     (int da, const char *a, int db, const char *b, int flags),
	     (da, a, db, b, flags), b)
PATH_WRAPPER(memfd_create, K_MEMFD_CREATE,
	     (const char *name, unsigned int flags), (name, flags), name)

static int creates(int flags)
{
	return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return creates(flags) ? (mode_t)va_arg(ap, int) : 0;
}

/* An open call: count it only when it may create a file. */
static int open_decision(int k, int flags, const char *path)
{
	int e;

	if (!creates(flags))
		return 0;
	e = decide(k, -1, path);
	return e > 0 ? e : 0;
}

#define OPEN_WRAPPER(name)                                      \
	EXPORT int name(const char *path, int flags, ...)       \
	{                                                       \
		va_list ap;                                     \
		mode_t mode;                                    \
		int e;                                          \
		va_start(ap, flags);                            \
		mode = mode_arg(flags, ap);                     \
		va_end(ap);                                     \
		if (!r_##name)                                  \
			init();                                 \
		if ((e = open_decision(K_OPEN, flags, path))) { \
			errno = e;                              \
			return -1;                              \
		}                                               \
		return r_##name(path, flags, mode);             \
	}

#define OPENAT_WRAPPER(name)                                         \
	EXPORT int name(int dirfd, const char *path, int flags, ...) \
	{                                                            \
		va_list ap;                                          \
		mode_t mode;                                         \
		int e;                                               \
		va_start(ap, flags);                                 \
		mode = mode_arg(flags, ap);                          \
		va_end(ap);                                          \
		if (!r_##name)                                       \
			init();                                      \
		if ((e = open_decision(K_OPENAT, flags, path))) {    \
			errno = e;                                   \
			return -1;                                   \
		}                                                    \
		return r_##name(dirfd, path, flags, mode);           \
	}

/* the fortified entry points (glibc declares them only with
 * _FORTIFY_SOURCE) */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

EXPORT int __open_2(const char *path, int flags)
{
	int e;

	if (!r___open_2 || !r___openat_2)
		init();
	if ((e = open_decision(K_OPEN, flags, path))) {
		errno = e;
		return -1;
	}
	return r___open_2(path, flags);
}

EXPORT int __open64_2(const char *path, int flags)
{
	int e;

	if (!r___open_2 || !r___openat_2)
		init();
	if ((e = open_decision(K_OPEN, flags, path))) {
		errno = e;
		return -1;
	}
	return r___open64_2(path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	int e;

	if (!r___open_2 || !r___openat_2)
		init();
	if ((e = open_decision(K_OPENAT, flags, path))) {
		errno = e;
		return -1;
	}
	return r___openat_2(dirfd, path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	int e;

	if (!r___open_2 || !r___openat_2)
		init();
	if ((e = open_decision(K_OPENAT, flags, path))) {
		errno = e;
		return -1;
	}
	return r___openat64_2(dirfd, path, flags);
}

/* ioctl: only FICLONE is counted (and can fail); every other request
 * passes with its one argument. */
EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int e;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	init();
	if (req == FICLONE && (e = decide(K_FICLONE, fd, NULL)) > 0) {
		errno = e;
		return -1;
	}
	return r_ioctl(fd, req, arg);
}
