/*
 * ckpt_keyopt.h - the key options both front ends take (keyopt.c): an
 * encryption mode with a key file or an inherited descriptor, as ckptfs
 * spells them (-o enc_mode=, keyfile=, keyfd=) and ckpt does (--enc-mode,
 * --keyfile, --keyfd), and the warning both give about a checkpoint in
 * the unauthenticated legacy encryption layout.
 */
#ifndef CKPT_KEYOPT_H
#define CKPT_KEYOPT_H

#include <stdbool.h>
#include <stddef.h>

#include "ckpt.h"
#include "ckpt_hint.h"

/* The key options as given; NULL and -1 where absent. */
struct ckpt_keyopt {
	const char *mode;    /* "AES-GCM", "AES-CBC", "SM4-CBC" */
	const char *keyfile; /* a path; "-" is standard input */
	int keyfd;	     /* an inherited descriptor */
};

enum ckpt_keyopt_result {
	CKPT_KEYOPT_OK,	    /* *out is the key, or NULL if none was given */
	CKPT_KEYOPT_FAILED, /* the key could not be read (a message) */
	CKPT_KEYOPT_USAGE,  /* the options do not make a key (a message) */
};

/* Loads the key o names into *out (NULL if o names none) with
 * ckpt_key_load.  On failure writes the message, as front spells it, into
 * msg (size bytes) and says whether the options themselves are wrong (an
 * incomplete set, or both a file and a descriptor) or the key could not
 * be read. */
enum ckpt_keyopt_result ckpt_keyopt_load(const struct ckpt_keyopt *o,
					 enum ckpt_front front,
					 struct ckpt_key **out, char *msg,
					 size_t size);

/* If st (NULL: no file) describes a checkpoint in the MindSpore 1.3-1.6
 * encryption layout, which nothing authenticates: true, with the warning
 * for path as front words it in buf (size bytes).  Else false. */
bool ckpt_keyopt_legacy_warning(const struct ckpt_stats *st, const char *path,
				enum ckpt_front front, char *buf, size_t size);

#endif /* CKPT_KEYOPT_H */
