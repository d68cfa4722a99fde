#!/usr/bin/python3
"""Security of parameter names: nothing a checkpoint stores as a name may
make an entry of the mount resolve outside it, vanish, collide with
another or be changed by a commit.

The checkpoint holds parameters named with '/', '..', '.', the empty
name, NUL bytes, control characters (\\n, \\t, \\r, \\x01, ESC), bytes that
are not UTF-8, names that collide after a naive escaping ('a/b', 'a%2Fb',
'a%252Fb', '.', '%2E', ...), and long names (255, 256, 1024 and 4000
bytes, and names that cross 255 bytes only once escaped), plus a map
parameter with such a name.  Records are framed by hand around tensors
serialized by the protobuf runtime, because the runtime refuses to set a
string field to bytes that are not UTF-8 (the framing is checked against
ckref.dumps for the UTF-8 names).

Checks:
  * os.listdir(b"mnt") shows exactly the escaped name of every parameter
    whose escaped name has at most 255 bytes, each once; no name holds '/'
    or is '.'/'..'; every entry is a regular file (a directory for the
    map) whose realpath is directly inside the mount; bytes, user.dtype
    and user.shape match the reference reader; map tensors too; longer
    names are not listed, their lookups fail with ENAMETOOLONG, and
    'ckpt ls' still shows them.
  * an unmount that commits after an unrelated edit keeps every parameter
    (also the ones that are not listed) byte-identical: the new file is
    exactly the old one with the edited record re-encoded.
  * creating 'a%zz', 'x%', 'x%2', '%2f' (lowercase), '%41' (needless
    escape), 'a%2E' fails with EINVAL, as does renaming to such a name;
    'x%2Fy', 'p%25q', 'nul%00z', '%2E' create the parameters 'x/y', 'p%q',
    'nul\\0z' and '.' (checked with the reference reader after unmount).
  * the mount is private by default: /proc/self/mountinfo shows no
    allow_other, and default_permissions; another user cannot list it.
    (A mount with -o allow_other does show allow_other, so the check is
    not vacuous.)
  * 'ckpt ls' prints one line per tensor: a name with a newline or a
    terminal escape sequence must not be printed raw (else one parameter
    reads as two, or rewrites the terminal).
"""

import errno
import os
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402
from wire import raw_record as record  # noqa: E402

NAME_MAX = 255


def esc(name):
    """The file name ckptfs must show for the raw name (bytes)."""
    if name == b"":
        return b"%"
    if name in (b".", b".."):
        return b"%2E" * len(name)
    out = bytearray()
    for c in name:
        if c in (0x25, 0x2F, 0x7F) or c < 0x20:  # %, /, control chars
            out += b"%%%02X" % c
        else:
            out.append(c)
    return bytes(out)


def f32(*vals):
    return struct.pack("<%df" % len(vals), *vals)


# (raw name, why) -- every one a separate parameter
ODD = [
    (b"a/b", "slash"),
    (b"a%2Fb", "what a naive escape of a/b gives"),
    (b"a%252Fb", "what a naive double escape gives"),
    (b"a%", "trailing percent"),
    (b"%", "the empty name's file name, as a name"),
    (b"%%", "two percents"),
    (b"%2E", "what '.' is shown as"),
    (b"%2E%2E", "what '..' is shown as"),
    (b"%00", "what NUL is shown as"),
    (b"%zz", "invalid escape, as a stored name"),
    (b"/", "a lone slash"),
    (b"//", "two slashes"),
    (b"/abs/path", "absolute path"),
    (b"a/", "trailing slash"),
    (b"../escape", "parent traversal"),
    (b"../../../../etc/passwd", "deep traversal"),
    (b"x/../../y", "traversal in the middle"),
    (b"./x", "dot slash"),
    (b"..", "dot dot"),
    (b".", "dot"),
    (b"...", "three dots"),
    (b"", "empty"),
    (b"nul\x00byte", "NUL inside"),
    (b"\x00", "a lone NUL"),
    (b"\x00\x00", "two NULs"),
    (b"line\nbreak", "newline"),
    (b"\n", "a lone newline"),
    (b"tab\there", "tab"),
    (b"cr\rhere", "carriage return"),
    (b"ctl\x01\x02\x7f", "control bytes"),
    (b"\x1b[31mred\x1b[0m", "terminal escape sequence"),
    (b"caf\xe9", "latin-1, not UTF-8"),
    (b"\xff\xfe", "not UTF-8 at all"),
    (b"\xc3\x28", "invalid UTF-8 sequence"),
    (b"bad\x80utf8/slash", "not UTF-8, with a slash"),
    (b"utf8 \xc3\xa9\xe2\x82\xac", "valid UTF-8"),
    (b" leading and trailing ", "spaces"),
    (b"-rf", "looks like an option"),
    (b"*?[]\\~$", "shell characters"),
    (b"x" * 255, "255 bytes"),
    (b"y" * 256, "256 bytes"),
    (b"z" * 1024, "1024 bytes"),
    (b"w" * 4000, "4000 bytes"),
    (b"s" * 252 + b"/", "255 bytes once escaped"),
    (b"t" * 253 + b"/", "256 bytes once escaped"),
    (b"/" * 85, "85 slashes: 255 bytes escaped"),
    (b"/" * 86, "86 slashes: 258 bytes escaped"),
    (b"%" * 85, "85 percents: 255 bytes escaped"),
    (b"\x00" * 86, "86 NULs: 258 bytes escaped"),
]

MAP_NAME = b"../map/..//x"


class NamesBase(unittest.TestCase):
    """Builds the checkpoint once per test (it is small)."""

    def build(self):
        d = W.tempdir(self, "ckptfs_names_")
        self.dir = d
        self.path = os.path.join(d, "names.ckpt")
        params = [(b"plain", "Float32", (4,), f32(1, 2, 3, 4))]
        for i, (name, _) in enumerate(ODD):
            params.append((name, "Float32", (2,), f32(i, -i - 0.5)))
        self.params = params
        body = b"".join(record(*p) for p in params[:1])
        # a map parameter with a hostile name (framed by ckref: UTF-8)
        k = ckref.Param("keys", "int64", (2,), struct.pack("<2q", 7, 9))
        v = ckref.Param("values", "float32", (2, 2), f32(1, 2, 3, 4))
        s = ckref.Param("status", "int32", (2,), struct.pack("<2i", 0, 1))
        mapp = dict(name=MAP_NAME.decode(), kind="map", map=[k, v, s])
        self.map_record = b"".join(ckref.iter_records([mapp]))
        body += self.map_record
        body += b"".join(record(*p) for p in params[1:])
        self.body = body
        with open(self.path, "wb") as f:
            f.write(body)
        # the framing is what ckref (and MindSpore) write, for UTF-8 names
        for name, dt, shape, data in params:
            try:
                sname = name.decode("utf-8")
            except UnicodeDecodeError:
                continue
            want = ckref.dumps([dict(name=sname, dtype=dt, shape=shape,
                                     data=data)])
            self.assertEqual(record(name, dt, shape, data), want,
                             "record framing for %r" % name)
        return self.path

    def ref(self, path):
        try:
            return ckref.load(path)
        except ckref.CheckpointError as e:
            self.fail("the reference reader rejects %s: %s" % (path, e))

    @staticmethod
    def raw(p):
        return p.name.encode("utf-8", "surrogateescape")


class TestNames(NamesBase):

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.build()
        got = [self.raw(p) for p in self.ref(self.path)]
        want = [b"plain", MAP_NAME] + [n for n, _ in ODD]
        self.assertEqual(got, want, "the reference reads the names back")

    def test_listing_and_contents(self):
        m = M.mount(self, self.path)
        mnt = os.fsencode(m.mnt)
        real_mnt = os.path.realpath(mnt)
        listed = os.listdir(mnt)
        self.assertEqual(len(listed), len(set(listed)),
                         "a name is listed twice: %r" % sorted(
                             n for n in listed if listed.count(n) > 1))
        for n in listed:
            self.assertNotIn(b"/", n)
            self.assertNotIn(b"\0", n)
            self.assertNotIn(n, (b".", b".."))
        ref = self.ref(self.path)
        want, hidden = set(), []
        for p in ref:
            raw = self.raw(p)
            e = esc(raw)
            self.assertEqual(e, os.fsencode(ckref.escape_name(p.name)),
                             "escape of %r (test vs ckref)" % raw)
            if len(e) <= NAME_MAX:
                want.add(e)
            else:
                hidden.append((raw, e))
        self.assertEqual(sorted(set(listed) - want), [],
                         "listed but not expected")
        self.assertEqual(sorted(want - set(listed)), [],
                         "expected but not listed")
        self.assertEqual(len(hidden), 6, "test setup: names over 255 "
                         "bytes once escaped")
        # every entry stays inside the mount and shows the right data
        for p in ref:
            raw = self.raw(p)
            e = esc(raw)
            path = os.path.join(mnt, e)
            if len(e) > NAME_MAX:
                # the kernel passes lookups of up to ~4 KiB to the daemon;
                # finding the parameter by its full name is fine, as long as
                # it is the right one
                try:
                    st = os.lstat(path)
                except OSError as ex:
                    self.assertIn(ex.errno, (errno.ENAMETOOLONG,
                                             errno.ENOENT))
                    continue
                self.assertTrue(os.path.stat.S_ISREG(st.st_mode))
                self.assertEqual(W.read_bytes(path), p.data,
                                 "data of the %d-byte name" % len(e))
                continue
            rp = os.path.realpath(path)
            self.assertEqual(os.path.dirname(rp), real_mnt,
                             "%r resolves to %r, outside the mount" % (e, rp))
            self.assertEqual(os.path.basename(rp), e)
            st = os.lstat(path)
            if p.kind == "map":
                self.assertTrue(os.path.stat.S_ISDIR(st.st_mode), e)
                self.assertEqual(sorted(os.listdir(path)),
                                 [b"keys", b"status", b"values"])
                for sub in p.map:
                    sp = os.path.join(path, os.fsencode(sub.name))
                    self.assertEqual(os.path.dirname(os.path.realpath(sp)),
                                     rp)
                    self.assertEqual(W.read_bytes(sp), sub.data,
                                     "%r/%s" % (e, sub.name))
                continue
            self.assertTrue(os.path.stat.S_ISREG(st.st_mode),
                            "%r is not a regular file (mode %o)"
                            % (e, st.st_mode))
            self.assertEqual(st.st_size, len(p.data), e)
            self.assertEqual(W.read_bytes(path), p.data, "data of %r" % e)
            self.assertEqual(W.getx(path, "user.dtype"), p.dtype, e)
            self.assertEqual(W.getx(path, "user.shape"),
                             ckref.shape_str(p.shape), e)
        # the special names resolve to files, not to the directories
        for e in (b"%2E", b"%2E%2E", b"%", b"%2F", b"%2E%2E%2Fescape"):
            path = os.path.join(mnt, e)
            if e in want:
                self.assertTrue(os.path.stat.S_ISREG(os.lstat(path).st_mode))
        # names that are not a canonical escape find nothing
        for e in (b"%2e", b"%2e%2e", b"a%2fb", b"%zz%", b"%2", b"%41"):
            with self.assertRaises(FileNotFoundError, msg=repr(e)):
                os.lstat(os.path.join(mnt, e))
        # 'ckpt ls' shows the names the kernel cannot
        res = M.ckpt("ls", self.path)
        self.assertEqual(res.rc, 0, res.describe())
        for raw, e in hidden:
            self.assertIn(e, res.out.split(b"\n"),
                          "ckpt ls does not show the %d-byte name" % len(e))
        self.assertEqual(W.read_bytes(os.path.join(mnt, b"plain")),
                         f32(1, 2, 3, 4))
        m.unmount()
        # no edit: no write
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), self.body, "unmount without edits "
                             "changed the file")

    def test_commit_keeps_every_name(self):
        before = W.file_state(self.path)
        m = M.mount(self, self.path)
        W.pwrite_file(os.path.join(m.mnt, "plain"), f32(9, 8, 7, 6), 0)
        m.unmount()
        after = W.file_state(self.path)
        self.assertNotEqual(before[0], after[0], "no new file was written")
        want = record(b"plain", "Float32", (4,), f32(9, 8, 7, 6))
        want += self.body[len(record(*self.params[0])):]
        got = W.read_bytes(self.path)
        if got != want:
            self.fail("the committed file is not the original with the "
                      "edited record replaced (%d bytes, expected %d, first "
                      "difference at %d)" % (len(got), len(want),
                                             W.first_diff(got, want)))
        ref = self.ref(self.path)
        self.assertEqual([self.raw(p) for p in ref],
                         [b"plain", MAP_NAME] + [n for n, _ in ODD])
        self.assertEqual(ref[0].data, f32(9, 8, 7, 6))
        for p, (name, dt, shape, data) in zip(ref[2:], self.params[1:]):
            self.assertEqual((self.raw(p), p.dtype, p.shape, p.data),
                             (name, dt, shape, data))

    def test_create_and_rename_names(self):
        m = M.mount(self, self.path)
        bad = ["a%zz", "x%", "x%2", "%2f", "x%2fy", "%41", "a%2E", "%2E%2",
               "%%", "%0", "%2E%2E%2E", "%25%", "%G0"]
        for n in bad:
            with self.assertRaises(OSError, msg="create %r" % n) as cm:
                fd = os.open(os.path.join(m.mnt, n),
                             os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
                os.close(fd)
            self.assertEqual(cm.exception.errno, errno.EINVAL,
                             "create %r: %s" % (n, cm.exception))
            with self.assertRaises(OSError, msg="mknod %r" % n) as cm:
                os.mknod(os.path.join(m.mnt, n), 0o644 | 0o100000)
            self.assertEqual(cm.exception.errno, errno.EINVAL,
                             "mknod %r: %s" % (n, cm.exception))
            with self.assertRaises(OSError, msg="rename to %r" % n) as cm:
                os.rename(os.path.join(m.mnt, "plain"),
                          os.path.join(m.mnt, n))
            self.assertEqual(cm.exception.errno, errno.EINVAL,
                             "rename to %r: %s" % (n, cm.exception))
        self.assertEqual(len(os.listdir(m.mnt)),
                         1 + 1 + sum(len(esc(n)) <= NAME_MAX
                                     for n, _ in ODD),
                         "a refused create left an entry")
        good = [("x%2Fy", b"x/y"), ("p%25q", b"p%q"),
                ("nul%00z", b"nul\x00z"), ("new%2E", None),
                ("%2F..%2Fup", b"/../up"), ("%2F%2E%2E%2Fup", None)]
        made = []
        for i, (fname, raw) in enumerate(good):
            path = os.path.join(m.mnt, fname)
            if raw is None:       # not canonical: '.' is escaped only in
                # the names '.' and '..' themselves
                with self.assertRaises(OSError) as cm:
                    W.write_file(path, b"")
                self.assertEqual(cm.exception.errno, errno.EINVAL)
                continue
            W.write_file(path, f32(100 + i))
            W.set_meta(path, "float32", "[1]")
            self.assertEqual(os.path.dirname(os.path.realpath(path)),
                             os.path.realpath(m.mnt))
            made.append((raw, f32(100 + i)))
        # rename to an escaped name, and from one
        os.rename(os.path.join(m.mnt, "x%2Fy"), os.path.join(m.mnt, "x%2Fz"))
        made[0] = (b"x/z", made[0][1])
        os.rename(os.path.join(m.mnt, "a%2Fb"),
                  os.path.join(m.mnt, "a%2F..%2F..%2Fb"))
        with self.assertRaises(OSError) as cm:
            os.mkdir(os.path.join(m.mnt, "dir"))
        self.assertEqual(cm.exception.errno, errno.EPERM)
        with self.assertRaises(OSError) as cm:
            os.symlink("/etc/passwd", os.path.join(m.mnt, "link"))
        self.assertEqual(cm.exception.errno, errno.EPERM)
        m.unmount()
        ref = self.ref(self.path)
        names = [self.raw(p) for p in ref]
        self.assertNotIn(b"a/b", names)
        self.assertIn(b"a/../../b", names)
        for raw, data in made:
            self.assertIn(raw, names)
            p = ref[names.index(raw)]
            self.assertEqual((p.dtype, p.shape, p.data),
                             ("Float32", (1,), data))
        self.assertEqual(names[-len(made):], [r for r, _ in made],
                         "new parameters are appended in creation order")
        self.assertEqual(len(names), 2 + len(ODD) + len(made))

    def test_no_new_names_over_name_max(self):
        """statfs says f_namemax 255 and readdir hides longer names, so
        a longer name must not be creatable (else a parameter appears that
        no listing shows): ENAMETOOLONG for create, mknod and rename."""
        m = M.mount(self, self.path)
        self.assertEqual(os.statvfs(m.mnt).f_namemax, NAME_MAX)
        made = []
        for n in (256, 300, 1024):
            path = os.path.join(m.mnt, "q" * n)
            try:
                W.write_file(path, f32(1))
                made.append("create of a %d-byte name succeeded" % n)
            except OSError as e:
                self.assertEqual(e.errno, errno.ENAMETOOLONG, str(e))
            try:
                os.rename(os.path.join(m.mnt, "plain"),
                          os.path.join(m.mnt, "r" * n))
                made.append("rename to a %d-byte name succeeded" % n)
                os.rename(os.path.join(m.mnt, "r" * n),
                          os.path.join(m.mnt, "plain"))
            except OSError as e:
                self.assertEqual(e.errno, errno.ENAMETOOLONG, str(e))
        listed = set(os.listdir(m.mnt))
        m.unmount()
        if made:
            names = [self.raw(p) for p in self.ref(self.path)]
            hidden = [len(n) for n in names if len(esc(n)) > NAME_MAX and
                      n not in {x for x, _ in ODD}]
            self.fail("names longer than NAME_MAX are accepted although "
                      "readdir never shows them: %s; the checkpoint now "
                      "holds %d parameters that 'ls' of the mount cannot "
                      "list (name lengths %s; listing had %d entries)"
                      % ("; ".join(made), len(hidden), hidden, len(listed)))

    def test_mount_is_private(self):
        m = M.mount(self, self.path)
        opts = mount_options(m.mnt)
        self.assertIsNotNone(opts, "the mount is not in mountinfo")
        mount_opts, fstype, super_opts = opts
        self.assertEqual(fstype, "fuse.ckptfs")
        self.assertNotIn("allow_other", mount_opts.split(","))
        self.assertNotIn("allow_other", super_opts.split(","))
        self.assertIn("default_permissions", super_opts.split(","))
        # another user cannot even list it
        r = subprocess.run(
            [common.PYTHON, "-c", "import os,sys; os.listdir(sys.argv[1])",
             m.mnt], preexec_fn=drop_to_nobody, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=common.TIMEOUT)
        self.assertNotEqual(r.returncode, 0,
                            "user nobody could list a private mount")
        self.assertIn(b"PermissionError", r.stderr)
        m.unmount()
        # with -o allow_other the option shows (the check above is real)
        m2 = M.mount(self, self.path, "-o", "allow_other")
        mount_opts, fstype, super_opts = mount_options(m2.mnt)
        self.assertIn("allow_other", super_opts.split(","))
        self.assertIn("default_permissions", super_opts.split(","))
        m2.unmount()

    def test_ckpt_ls_one_line_per_tensor(self):
        res = M.ckpt("ls", self.path)
        self.assertEqual(res.rc, 0, res.describe())
        lines = res.out.split(b"\n")
        self.assertEqual(lines[-1], b"")
        lines = lines[:-1]
        ntensors = 1 + 3 + len(ODD)
        raw_ctl = [ln for ln in lines if b"\x1b" in ln or b"\r" in ln]
        if len(lines) != ntensors or raw_ctl:
            self.fail("'ckpt ls' prints %d lines for %d tensors, %d of them "
                      "with raw control characters: names holding a newline "
                      "or an escape sequence are printed as they are, so one "
                      "parameter reads as two ('line\\nbreak' shows as 'line' "
                      "and 'break') and terminal sequences reach the "
                      "terminal" % (len(lines), ntensors, len(raw_ctl)))


def drop_to_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def mount_options(mnt):
    """(per-mount options, fstype, super options) of mnt, or None."""
    real = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            parts = left.split()
            if M.unescape_mountinfo(parts[4]) != real:
                continue
            rparts = right.split()
            return parts[5], rparts[0], rparts[2] if len(rparts) > 2 else ""
    return None


if __name__ == "__main__":
    unittest.main()
