/*
 * crcfile.c - the CRC-32 of a range of a file, computed over a mapping of
 * it: no copy, so a checkpoint in the page cache is checked at the speed
 * of the CRC (reading it into a buffer first costs as much again).
 *
 * A mapping turns a file that shrinks underneath (another process
 * rewriting it in place) or a disk error into SIGBUS on the access.  That
 * must never kill the program, so the CRC runs under a guard: while any
 * thread is in ckpt_crc32_fd, a SIGBUS handler is installed (by the first
 * in, put back by the last out, so a handler installed meanwhile by the
 * program is not lost for long); it jumps back out of the CRC when the
 * fault lies in the window this thread is summing (a thread-local
 * record), and the range is reported as unreadable like a short pread.
 * A SIGBUS anywhere else is handed to the handler that was there before,
 * or gets the default action.  The CRC code holds no lock and allocates
 * nothing, so leaving it by siglongjmp is safe.
 *
 * Where a file cannot be mapped (ENODEV: some FUSE and proc files), and
 * for ranges under 1 MiB, the range is read through a buffer instead.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"

#define WINDOW (64u << 20) /* bytes mapped at a time */
#define CHUNK (1u << 20)   /* buffer of the fallback */
/* Ranges shorter than this are read through a buffer: for a small tensor
 * (safetensors' crc_num sums every tensor apart) mmap, munmap and the
 * signal handler cost more than the copy. */
#define MAP_MIN CHUNK

struct guard {
	sigjmp_buf jump;
	const char *lo, *hi; /* the window being summed */
	const char *fault;   /* where the SIGBUS struck */
};

static __thread struct guard *volatile active;
static pthread_mutex_t users_lock = PTHREAD_MUTEX_INITIALIZER;
static int users;		  /* threads in ckpt_crc32_fd */
static struct sigaction previous; /* the handler before the first user */

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	struct guard *g = active;
	const char *addr = si->si_addr;

	if (g && addr >= g->lo && addr < g->hi) {
		g->fault = addr;
		siglongjmp(g->jump, 1);
	}
	if (previous.sa_flags & SA_SIGINFO) {
		previous.sa_sigaction(sig, si, uctx);
		return;
	}
	if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	/* the default action: the faulting access runs again and kills */
	signal(SIGBUS, SIG_DFL);
}

/* Installs the handler for the first user; 0, or -1 with errno. */
static int guard_enter(void)
{
	struct sigaction sa;
	int r = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	pthread_mutex_lock(&users_lock);
	if (users == 0 && sigaction(SIGBUS, &sa, &previous) != 0)
		r = -1;
	else
		users++;
	pthread_mutex_unlock(&users_lock);
	return r;
}

/* Puts the previous handler back after the last user. */
static void guard_leave(void)
{
	pthread_mutex_lock(&users_lock);
	if (--users == 0)
		sigaction(SIGBUS, &previous, NULL);
	pthread_mutex_unlock(&users_lock);
}

/* CRC of len bytes at map (a window of the file): 0, or -1 with *at set
 * to the offset in the window where reading them raised SIGBUS. */
static int sum_window(const char *map, size_t len, uint32_t *crc, size_t *at)
{
	struct guard g = {.lo = map, .hi = map + len};
	uint32_t c = *crc;

	if (sigsetjmp(g.jump, 1)) {
		active = NULL;
		*at = (size_t)(g.fault - map);
		return -1;
	}
	active = &g;
	c = ckpt_crc32(c, map, len);
	active = NULL;
	*crc = c;
	return 0;
}

/* The fallback: the range read through a buffer. */
static int crc_by_pread(int fd, uint64_t off, uint64_t len, uint32_t *crc,
			uint64_t *bad)
{
	size_t size = len < CHUNK ? (size_t)len : CHUNK;
	uint8_t *buf = malloc(size ? size : 1);
	uint64_t end = off + len;

	if (!buf)
		return -1; /* ENOMEM */
	while (off < end) {
		size_t n = end - off < size ? (size_t)(end - off) : size;
		ssize_t got = ckpt_pread_full(fd, buf, n, off);

		if (got != (ssize_t)n) {
			if (got >= 0)
				errno = EIO;
			*bad = off + (got > 0 ? (uint64_t)got : 0);
			free(buf);
			return -1;
		}
		*crc = ckpt_crc32(*crc, buf, n);
		off += n;
	}
	free(buf);
	return 0;
}

/* The range summed over mappings of WINDOW bytes, under the guard. */
static int crc_by_mmap(int fd, uint64_t off, uint64_t len, uint32_t *crc,
		       uint64_t *bad)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), end = off + len;

	while (off < end) {
		uint64_t base = off & ~(page - 1);
		size_t skip = (size_t)(off - base);
		size_t n = end - off < WINDOW - skip ? (size_t)(end - off)
						     : WINDOW - skip;
		char *map = mmap(NULL, skip + n, PROT_READ, MAP_SHARED, fd,
				 (off_t)base);
		size_t at;
		int r;

		if (map == MAP_FAILED) {
			if (errno == ENODEV || errno == EACCES)
				return crc_by_pread(fd, off, end - off, crc,
						    bad);
			*bad = off;
			return -1;
		}
		madvise(map, skip + n, MADV_SEQUENTIAL);
		r = sum_window(map + skip, n, crc, &at);
		munmap(map, skip + n);
		if (r != 0) {
			*bad = off + at;
			errno = EIO;
			return -1;
		}
		off += n;
	}
	return 0;
}

int ckpt_crc32_fd(int fd, uint64_t off, uint64_t len, uint32_t *crc,
		  uint64_t *bad)
{
	int r;

	*bad = off;
	if (len == 0)
		return 0;
	if (len < MAP_MIN || guard_enter() != 0)
		return crc_by_pread(fd, off, len, crc, bad);
	r = crc_by_mmap(fd, off, len, crc, bad);
	guard_leave();
	return r;
}
