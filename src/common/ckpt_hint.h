/*
 * ckpt_hint.h - the remedies both front ends suggest after a library
 * failure, each in its own spelling (hint.c).
 *
 * The library says what is wrong and sets err->hint; what to type about
 * it depends on the program: "-o ro" for ckptfs, "--enc-mode" for ckpt.
 */
#ifndef CKPT_HINT_H
#define CKPT_HINT_H

#include <stddef.h>

#include "ckpt.h"

enum ckpt_front {
	CKPT_FRONT_MOUNT, /* ckptfs and its -o options */
	CKPT_FRONT_CLI,	  /* ckpt and its --options */
};

/* err->msg followed by the remedy for err->hint as front spells it,
 * written into buf (size bytes, cut if need be); returns buf. */
const char *ckpt_error_text(const struct ckpt_error *err, enum ckpt_front front,
			    char *buf, size_t size);

#endif /* CKPT_HINT_H */
