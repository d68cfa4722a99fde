/*
 * keyopt.c - the key options of both front ends (see ckpt_common.h).
 *
 * Owns: turning the options into a key through ckpt_key_load (which is
 * the one place that checks them and reads the key), the front ends'
 * exit-status distinction between bad usage and a key that cannot be
 * read, and the wording of the legacy-layout warning.  No state, no
 * locks.  Never prints and never exits: the messages go into the
 * caller's buffer and the front end decides where they go.
 */
#include <stdio.h>

#include "ckpt_common.h"

/* True if o names a mode that parses and at least one source of the key:
 * with one source, what ckpt_key_load accepts.  Only classifies a
 * failure of ckpt_key_load (bad usage or not); never a gate before it. */
static bool complete(const struct ckpt_keyopt *o)
{
	enum ckpt_enc_mode m;

	return o->mode && ckpt_enc_mode_parse(o->mode, &m) &&
	       (o->keyfile || o->keyfd >= 0);
}

enum ckpt_keyopt_result ckpt_keyopt_load(const struct ckpt_keyopt *o,
					 enum ckpt_front front,
					 struct ckpt_key **out, char *msg,
					 size_t size)
{
	struct ckpt_error err;

	if (ckpt_key_load(o->mode, o->keyfile, o->keyfd, out, &err) == CKPT_OK)
		return CKPT_KEYOPT_OK;
	if (!complete(o) && front == CKPT_FRONT_CLI) {
		/* ckpt names every option the key needs */
		snprintf(msg, size,
			 "a key needs --enc-mode (AES-GCM, AES-CBC "
			 "or SM4-CBC) and --keyfile or --keyfd");
		return CKPT_KEYOPT_USAGE;
	}
	ckpt_error_text(&err, front, msg, size);
	return !complete(o) || (o->keyfile && o->keyfd >= 0)
		       ? CKPT_KEYOPT_USAGE
		       : CKPT_KEYOPT_FAILED;
}

bool ckpt_keyopt_legacy_warning(const struct ckpt_stats *st, const char *path,
				enum ckpt_front front, char *buf, size_t size)
{
	if (!st || !st->enc_legacy)
		return false;
	snprintf(buf, size,
		 "warning: %s uses the MindSpore 1.3-1.6 "
		 "encryption layout, which is not authenticated%s",
		 path,
		 front == CKPT_FRONT_MOUNT
			 ? ": nothing vouches for its integrity"
			 : "");
	return true;
}
