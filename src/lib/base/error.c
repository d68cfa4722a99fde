/*
 * error.c - error codes, messages, and the mapping to errno.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "base/base.h"

const char *ckpt_strerror(ckpt_err code)
{
	switch (code) {
	case CKPT_OK:
		return "success";
	case CKPT_ERR_IO:
		return "I/O error";
	case CKPT_ERR_NOMEM:
		return "out of memory";
	case CKPT_ERR_CORRUPT:
		return "not a valid checkpoint";
	case CKPT_ERR_CRC:
		return "CRC mismatch";
	case CKPT_ERR_UNSUPPORTED:
		return "unsupported checkpoint feature";
	case CKPT_ERR_NOTFOUND:
		return "no such parameter";
	case CKPT_ERR_INVAL:
		return "invalid argument";
	case CKPT_ERR_READONLY:
		return "read-only checkpoint";
	case CKPT_ERR_PERM:
		return "operation not permitted";
	case CKPT_ERR_EXISTS:
		return "name exists";
	case CKPT_ERR_CHANGED:
		return "checkpoint changed underneath";
	case CKPT_ERR_BUSY:
		return "checkpoint in use by another writer";
	case CKPT_ERR_ISDIR:
		return "is a directory";
	case CKPT_ERR_NOTEMPTY:
		return "directory not empty";
	}
	return "unknown error";
}

int ckpt_errno(const struct ckpt_error *err)
{
	switch (err->code) {
	case CKPT_OK:
		return 0;
	case CKPT_ERR_IO:
		return err->sys_errno ? err->sys_errno : EIO;
	case CKPT_ERR_NOMEM:
		return ENOMEM;
	case CKPT_ERR_CORRUPT:
		return EIO;
	case CKPT_ERR_CRC:
		return EIO;
	case CKPT_ERR_UNSUPPORTED:
		return ENOTSUP;
	case CKPT_ERR_NOTFOUND:
		return ENOENT;
	case CKPT_ERR_INVAL:
		return EINVAL;
	case CKPT_ERR_READONLY:
		return EROFS;
	case CKPT_ERR_PERM:
		return EPERM;
	case CKPT_ERR_EXISTS:
		return EEXIST;
	case CKPT_ERR_CHANGED:
		return EIO;
	case CKPT_ERR_BUSY:
		return EBUSY;
	case CKPT_ERR_ISDIR:
		return EISDIR;
	case CKPT_ERR_NOTEMPTY:
		return ENOTEMPTY;
	}
	return EIO;
}

void ckpt_set_hint(struct ckpt_error *err, enum ckpt_hint hint, int mode)
{
	if (err) {
		err->hint = hint;
		err->hint_mode = mode;
	}
}

ckpt_err ckpt_fail(struct ckpt_error *err, ckpt_err code, uint64_t offset,
		   const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->sys_errno = code == CKPT_ERR_IO ? saved : 0;
	err->offset = offset;
	/* a CRC mismatch can always be read past (read-only) */
	err->hint = code == CKPT_ERR_CRC ? CKPT_HINT_IGNORE_CRC
					 : CKPT_HINT_NONE;
	err->hint_mode = 0;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	errno = saved;
	return code;
}
