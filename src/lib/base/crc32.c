/*
 * crc32.c - CRC-32 (IEEE 802.3, reflected 0xEDB88320), as zlib.crc32 and
 * binascii.crc32: the crc_num trailer, the crc_num of safetensors, the CRC
 * of a commit.
 *
 * Built with ISA-L (CKPT_HAVE_ISAL, the default), ckpt_crc32 is ISA-L's
 * crc32_gzip_refl: carry-less multiply (PCLMULQDQ, VPCLMULQDQ on x86, PMULL
 * on arm64), picked by ISA-L for the CPU at run time.  Its seed is zlib's:
 * the previous CRC, inverted on the way in and out inside, so chunks chain
 * the same way.  The portable slice-by-8 code below is the fallback built
 * with -DCKPT_ISAL=OFF, and the reference the unit tests hold ISA-L to.
 * Neither allocates; both are safe to call from any thread.
 */
#include <pthread.h>
#include <string.h>

#ifdef CKPT_HAVE_ISAL
#include <isa-l/crc.h>
#endif

#include "base/base.h"

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void make_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^
				      table[0][table[t - 1][i] & 0xff];
}

uint32_t ckpt_crc32_portable(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&table_once, make_table);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo, hi;
		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
		lo ^= crc; /* little-endian hosts only, like MindSpore */
		crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
		      table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
		      table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
		      table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#ifdef CKPT_HAVE_ISAL
uint32_t ckpt_crc32(uint32_t crc, const void *buf, size_t len)
{
	/* (buf may be NULL when len is 0, as with zlib) */
	return len ? crc32_gzip_refl(crc, buf, len) : crc;
}

const char *ckpt_crc32_impl(void)
{
	return "ISA-L " CKPT_ISAL_VERSION " (crc32_gzip_refl)";
}
#else
uint32_t ckpt_crc32(uint32_t crc, const void *buf, size_t len)
{
	return ckpt_crc32_portable(crc, buf, len);
}

const char *ckpt_crc32_impl(void)
{
	return "portable slice-by-8 (built without ISA-L)";
}
#endif
