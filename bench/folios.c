/*
 * folios.c - the sizes of the page-cache folios holding a file, for
 * bench/run's group readbase (docs/performance.md): whether the kernel
 * gives a FUSE file the large folios a plain file gets.
 *
 *   folios FILE
 *
 * Maps FILE read-only (MAP_SHARED: the page cache's own pages), touches
 * every page (run it on a file already in the page cache: a page that is
 * not is read in, as any reader would), then looks up each page's frame
 * in /proc/self/pagemap and its flags in /proc/kpageflags (root only):
 * a page that is not a compound tail starts a folio.  Prints one line:
 *
 *   pages N folios M large P
 *
 * N pages of the file in M folios, P of the pages in folios larger than
 * one page.  Exit 1 (with a message) if the frames cannot be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KPF_COMPOUND_TAIL 16 /* linux/kernel-page-flags.h */
#define PM_PRESENT (1ULL << 63)
#define PM_PFN_MASK ((1ULL << 55) - 1)

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "folios: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

/* Flags of the frame behind page i of the mapping at base; false if the
 * page is not present or its frame is hidden (not root). */
static int page_flags(int pm, int kf, const volatile uint8_t *base, size_t i,
		      uint64_t *flags)
{
	uint64_t e;
	off_t at = (off_t)(((uintptr_t)base / 4096 + i) * 8);

	if (pread(pm, &e, 8, at) != 8 || !(e & PM_PRESENT) ||
	    !(e & PM_PFN_MASK))
		return 0;
	return pread(kf, flags, 8, (off_t)((e & PM_PFN_MASK) * 8)) == 8;
}

int main(int argc, char **argv)
{
	size_t pages, folios = 0, large = 0, run = 0;
	volatile const uint8_t *p;
	struct stat st;
	int fd, pm, kf;

	if (argc != 2) {
		fprintf(stderr, "usage: folios FILE\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0)
		return fail("open", argv[1]);
	pm = open("/proc/self/pagemap", O_RDONLY);
	kf = open("/proc/kpageflags", O_RDONLY);
	if (pm < 0 || kf < 0)
		return fail("open", "/proc/self/pagemap, /proc/kpageflags");
	pages = (size_t)st.st_size / 4096;
	if (!pages) {
		printf("pages 0 folios 0 large 0\n");
		return 0;
	}
	p = mmap(NULL, pages * 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return fail("mmap", argv[1]);
	for (size_t i = 0; i < pages; i++)
		(void)p[i * 4096]; /* volatile: a real read */
	for (size_t i = 0; i < pages; i++) {
		uint64_t fl;
		if (!page_flags(pm, kf, p, i, &fl)) {
			errno = EPERM;
			return fail("no frame for a page of", argv[1]);
		}
		if (!(fl >> KPF_COMPOUND_TAIL & 1)) { /* a new folio */
			large += run > 1 ? run : 0;
			folios++;
			run = 0;
		}
		run++;
	}
	large += run > 1 ? run : 0;
	printf("pages %zu folios %zu large %zu\n", pages, folios, large);
	return 0;
}
