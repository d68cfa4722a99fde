/*
 * version.c - what --version prints, the same way in both front ends: the
 * program's version and the libraries it runs with (for bug reports).
 */
#include <stdio.h>

#include "ckpt_common.h"

void ckpt_print_version(const char *program, const char *libfuse)
{
	printf("%s %s\n", program, CKPT_VERSION);
	printf("libfuse: %s\n",
	       libfuse ? libfuse
		       : "not linked (ckpt unmounts with fusermount3)");
	printf("crypto: %s\n", ckpt_crypto_version());
	printf("json: jansson %s (safetensors headers)\n", ckpt_json_version());
	printf("crc32: %s\n", ckpt_crc32_impl());
	printf("protobuf-c: not linked (ckptfs reads and writes the protobuf "
	       "wire format itself)\n");
	fflush(stdout);
}
