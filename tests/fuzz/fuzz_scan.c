/*
 * fuzz_scan.c - libFuzzer harness: any bytes as a checkpoint.
 * Opens them through ckpt_open_fd (scan, index, CRC) and reads every
 * tensor in full and at an odd offset.  Nothing may crash, leak or hang.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(struct ckpt_file *f, const struct ckpt_tensor *t)
{
	struct ckpt_error err;
	uint8_t buf[4096];
	size_t n;

	for (uint64_t off = 0; off < t->size; off += sizeof(buf))
		if (ckpt_tensor_read(f, t, buf, sizeof(buf), off, &n, &err) ||
		    n == 0)
			abort(); /* the index promised these bytes */
	if (t->size > 1)
		ckpt_tensor_read(f, t, buf, 3, t->size / 2 - 1, &n, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	struct ckpt_file *f;
	struct ckpt_error err;

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	if (ckpt_open_fd(fd, "fuzz", NULL, &f, &err) != CKPT_OK)
		return 0;
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		if (ckpt_find(f, p->fname) < 0)
			abort();
		if (p->kind == CKPT_PARAM_TENSOR)
			read_all(f, &p->tensor);
		else
			for (int k = 0; k < CKPT_MAP_NTENSORS; k++)
				read_all(f, &p->map[k]);
	}
	ckpt_close(f);
	return 0;
}
