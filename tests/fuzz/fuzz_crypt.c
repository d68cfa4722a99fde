/*
 * fuzz_crypt.c - libFuzzer harness: any bytes as an encrypted checkpoint.
 * The first input byte picks the mode and key length; the rest is the
 * file.  Block headers, sizes and padding are parsed and checked before
 * anything is decrypted; nothing may crash, leak or hang.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crypt/crypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t lens[] = {16, 24, 32};
	struct ckpt_key key = {0};
	struct ckpt_stats st = {0};
	struct ckpt_error err;
	int fd, out = -1;

	if (size < 1)
		return 0;
	key.mode = (enum ckpt_enc_mode)(CKPT_ENC_AES_GCM + data[0] % 3);
	key.len = key.mode == CKPT_ENC_SM4_CBC ? 16 : lens[(data[0] / 3) % 3];
	memset(key.bytes, 0x5a, key.len);
	data++;
	size--;
	fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	st.file_size = size;
	if (ckpt_decrypt_to_memfd(fd, "fuzz", &key, &out, &st, &err) == CKPT_OK)
		close(out);
	close(fd);
	return 0;
}
