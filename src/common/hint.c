/*
 * hint.c - a library error as the user reads it: what is wrong (the
 * library's message) and what to do about it, in the words of the program
 * that reports it.  No state, no locks.  Never calls into the library
 * beyond the mode names, and never prints: the text goes into the
 * caller's buffer.
 */
#include <stdio.h>

#include "ckpt_common.h"

/* The remedy for hint, for a mode name m, as front spells it. */
static void remedy(enum ckpt_hint hint, const char *m, enum ckpt_front front,
		   char *buf, size_t size)
{
	bool mnt = front == CKPT_FRONT_MOUNT;

	switch (hint) {
	case CKPT_HINT_NONE:
		*buf = '\0';
		break;
	case CKPT_HINT_READ_ONLY:
		snprintf(buf, size,
			 mnt ? "; or mount this one read-only with "
			       "-o ro"
			     : "; a read-only mount (ckptfs -o ro) "
			       "can still read it");
		break;
	case CKPT_HINT_FORCE:
		snprintf(buf, size,
			 "; unmount to save the edits as a recovery "
			 "file beside it, or force the commit over it (ckpt "
			 "umount --force)");
		break;
	case CKPT_HINT_FIX_SHAPE:
		snprintf(buf, size,
			 mnt ? " (setfattr -n user.shape / user.dtype)"
			     : " (ckpt set --shape S / --dtype T, or "
			       "setfattr -n user.shape / user.dtype on a "
			       "mount)");
		break;
	case CKPT_HINT_GIVE_KEY:
		snprintf(buf, size,
			 mnt ? "; give the key: enc_mode=%s with "
			       "keyfile=PATH or keyfd=N"
			     : "; give the key: --enc-mode %s with "
			       "--keyfile PATH or --keyfd N",
			 m);
		break;
	case CKPT_HINT_USE_MODE:
		snprintf(buf, size,
			 mnt ? ": use enc_mode=%s" : ": use --enc-mode %s", m);
		break;
	case CKPT_HINT_IGNORE_CRC: /* ckptfs says it on a line of its own */
		snprintf(buf, size,
			 mnt ? "" : "; --ignore-crc opens it anyway");
		break;
	case CKPT_HINT_ONE_KEY:
		snprintf(buf, size,
			 mnt ? " (keyfile= or keyfd=): give one of "
			       "them"
			     : " (--keyfile or --keyfd): give one "
			       "of them");
		break;
	}
}

const char *ckpt_error_text(const struct ckpt_error *err, enum ckpt_front front,
			    char *buf, size_t size)
{
	char tail[200];

	remedy(err->hint,
	       ckpt_enc_mode_name((enum ckpt_enc_mode)err->hint_mode), front,
	       tail, sizeof(tail));
	snprintf(buf, size, "%s%s", err->msg, tail);
	return buf;
}
