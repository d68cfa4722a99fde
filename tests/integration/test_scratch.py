#!/usr/bin/python3
"""Scratch files and the editors and tools that use them (issue 13, spec
section 4).

Scratch files (default globs `.*`, `#*#`, `*~`, `sed??????`; `-o scratch=`
replaces the list) behave as files while they exist, are never written
into a checkpoint, do not make the mount dirty, and their fsync commits
nothing.  A file renamed over a parameter, or created after the parameter
was deleted or renamed to a scratch name, takes the parameter's place and
(with no explicit dtype/shape of its own, and a byte count that fits) its
dtype and shape.

Each editor / tool test runs the real program on fc1.weight of a fresh
LeNet (Float32 [120,400], 192000 bytes of random floats), commits, and
checks the checkpoint with the reference reader: the same names in the
same order with the same dtypes and shapes (and the same 'ckpt ls -l'),
only the intended bytes changed, no scratch name committed; the file must
be exactly what MindSpore >= 2.3 writes for that (W.check_ckpt).

Tools: vim (Debian package vim), rsync (rsync), GNU sed and tar; a
missing tool fails the test.
"""

import collections
import os
import sys
import tarfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import scratchutil as S  # noqa: E402
import ckref  # noqa: E402

# one name per default glob, as the tools make them
SCRATCH_NAMES = [".fc1.weight.swp", ".fc1.weight.swx", ".#fc1.weight",
                 "#fc1.weight#", "fc1.weight~", "sedAb12Cd",
                 ".fc1.weight.AbC123", ".hidden"]
# close to the globs, but not matching: ordinary parameters
NOT_SCRATCH = ["sed12345", "sed1234567", "x#", "#x", "x~y", "a.swp",
               "w.tmp"]
SAFE = set(range(0x80, 0x100)) | set(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
C_ENV = dict(os.environ, LC_ALL="C", LANG="C")


def f32(*v):
    return np.array(v, dtype="<f4").tobytes()


def pick_pattern(data):
    """A 2-byte sequence that occurs a few times in data, made of bytes
    that are literal in vim and sed regexes (no NUL, no newline, no ASCII
    punctuation); replacing it by b'AB' changes some bytes and keeps the
    length, and gives the same result per line (vim, sed) as on the whole
    buffer (bytes.replace)."""
    c = collections.Counter(data[i:i + 2] for i in range(len(data) - 1))
    for p, n in sorted(c.items()):
        if p[0] in SAFE and p[1] in SAFE and 1 <= n <= 8 and \
                data.count(p) == n and p != b"AB":
            return p
    raise AssertionError("no usable byte pattern in the data")


class ScratchBase(S.LenetCase):

    def setUp(self):
        super().setUp()
        self.ls_before = self.ckpt_ls(self.src)

    def ckpt_ls(self, path):
        r = M.ckpt("ls", "-l", path)
        self.assertEqual(r.rc, 0, r.describe())
        return r.text

    def check(self, want, label, path=None):
        """The checkpoint holds exactly want (names, order, dtypes, shapes,
        bytes; MindSpore >= 2.3 bytes)."""
        path = path or self.src
        W.check_ckpt(self, path, want, label=label)
        names = [p.name for p in ckref.load(path)]
        self.assertEqual(names, [p["name"] for p in want], label)

    def check_same_layout(self, label):
        """Same 'ckpt ls -l' as the original checkpoint."""
        self.assertEqual(self.ckpt_ls(self.src), self.ls_before,
                         label + ": 'ckpt ls -l' differs from the original")

    def data(self, name):
        return W.find(self.base, name)["data"]


class TestScratchFiles(ScratchBase):

    def test_swap_file_fsync_commits_nothing(self):
        m = self.mount()
        before = W.file_state(self.src)
        ones = np.ones(10, dtype="<f4").tobytes()
        m.step(lambda: W.pwrite_file(m.p("fc3.bias"), ones, 0), "write")
        for name in SCRATCH_NAMES:
            with self.subTest(name=name):
                def body():
                    fd = os.open(os.path.join(m.mnt, name),
                                 os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                    try:
                        os.write(fd, b"swap\0" * 800)
                        try:
                            os.fsync(fd)
                        except OSError as e:
                            return e.errno
                        return 0
                    finally:
                        os.close(fd)
                e = m.step(body, "create+write+fsync " + name)
                self.assertEqual(W.errno_name(e), "success",
                                 "fsync of scratch file %s" % name)
                # a pending edit exists: still nothing may be committed
                self.assertUntouched(before, what="fsync of " + name)
        # the pending edit is committed by fsync of a parameter, without
        # the scratch files
        self.assertCommitOK(m, m.p("fc3.bias"))
        want = W.replace(self.base, "fc3.bias", data=ones)
        self.check(want, "after fsync of fc3.bias")
        for name in SCRATCH_NAMES:
            m.step(lambda: os.unlink(os.path.join(m.mnt, name)), "unlink")
        self.assertUmountOK(m)
        self.check(want, "after unmount")

    def test_scratch_alone_leaves_checkpoint_untouched(self):
        before = W.file_state(self.src)
        m = self.mount()
        for name in SCRATCH_NAMES:
            p = os.path.join(m.mnt, name)
            m.step(lambda: W.write_file(p, b"\x01" * 100), "create " + name)
            m.step(lambda: os.unlink(p), "unlink " + name)
        self.assertUmountOK(m)
        self.assertUntouched(before, what="create+write+unlink of scratch "
                             "files, then ckpt umount")
        # scratch files still there at unmount: not written either
        m = self.mount()
        for name in SCRATCH_NAMES:
            m.step(lambda: W.write_file(os.path.join(m.mnt, name),
                                        b"\x02" * 64), "create " + name)
        self.assertCommitOK(m)
        self.assertUntouched(before, what="fsync of the root with only "
                             "scratch files")
        self.assertUmountOK(m)
        self.assertUntouched(before, what="unmount with scratch files left")

    def test_scratch_files_behave_as_files(self):
        m = self.mount()
        p = os.path.join(m.mnt, ".fc2.weight.swp")
        q = os.path.join(m.mnt, "fc2.weight~")

        def body():
            W.write_file(p, b"abcdefgh")
            W.pwrite_file(p, b"XY", 2)
            with open(p, "ab") as f:
                f.write(b"tail")
            return (W.read_bytes(p), os.stat(p).st_size,
                    W.getx(p, "user.dtype"), W.getx(p, "user.shape"),
                    sorted(os.listdir(m.mnt)))
        data, size, dt, shape, names = m.step(body, "scratch file I/O")
        self.assertEqual(data, b"abXYefghtail")
        self.assertEqual(size, 12)
        self.assertEqual((dt, shape), ("UInt8", "[12]"))
        self.assertIn(".fc2.weight.swp", names, "scratch files are listed")
        m.step(lambda: os.truncate(p, 5), "truncate")
        m.step(lambda: os.rename(p, q), "rename scratch -> scratch")
        self.assertEqual(m.step(lambda: W.read_bytes(q), "read"), b"abXYe")
        self.assertEqual(W.getx(q, "user.shape"), "[5]")
        self.assertFalse(os.path.exists(p))
        # a real edit, committed: the scratch file stays out
        m.step(lambda: os.unlink(m.p("fc3.bias")), "unlink fc3.bias")
        self.assertCommitOK(m)
        want = W.remove(self.base, "fc3.bias")
        self.check(want, "commit with a scratch file present")
        # it still exists and works after the commit
        self.assertEqual(m.step(lambda: W.read_bytes(q), "read"), b"abXYe")
        self.assertUmountOK(m)
        self.check(want, "after unmount")

    def test_names_close_to_the_globs_are_parameters(self):
        m = self.mount()
        for n in NOT_SCRATCH + SCRATCH_NAMES:
            m.step(lambda: W.write_file(os.path.join(m.mnt, n),
                                        n.encode()), "create " + n)
        self.assertCommitOK(m)
        want = self.base + [W.param(n, "UInt8", (len(n),), n.encode())
                            for n in NOT_SCRATCH]
        self.check(want, "only the names that match no glob are committed")
        self.assertUmountOK(m)
        self.check(want, "after unmount")

    def test_custom_scratch_list(self):
        # -o scratch=GLOB[:GLOB...] replaces the list: .* and *~ are
        # ordinary names then
        m = self.mount("-o", "scratch=*.tmp:*.bak")
        for n, d in (("x.tmp", b"tmp"), ("w.bak", b"bak"),
                     (".hidden", b"hid"), ("y~", b"tilde")):
            m.step(lambda: W.write_file(os.path.join(m.mnt, n), d),
                   "create " + n)
        before = W.file_state(self.src)
        self.assertEqual(m.commit(os.path.join(m.mnt, "x.tmp")), 0)
        self.assertUntouched(before, what="fsync of a scratch file x.tmp")
        self.assertCommitOK(m)
        want = self.base + [W.param(".hidden", "UInt8", (3,), b"hid"),
                            W.param("y~", "UInt8", (5,), b"tilde")]
        self.check(want, "-o scratch=*.tmp:*.bak")
        self.assertUmountOK(m)
        self.check(want, "after unmount")
        # -o scratch= (empty): no scratch names at all
        m = self.mount("-o", "scratch=")
        m.step(lambda: W.write_file(os.path.join(m.mnt, ".x.swp"), b"sw"),
               "create .x.swp")
        self.assertCommitOK(m, os.path.join(m.mnt, ".x.swp"))
        want = want + [W.param(".x.swp", "UInt8", (2,), b"sw")]
        self.check(want, "-o scratch= (empty list)")
        self.assertUmountOK(m)

    def test_original_parameters_with_scratch_like_names(self):
        # a checkpoint whose own parameters are named like scratch files:
        # they are parameters under their original names
        params = [W.param(".x", "Float32", (2,), f32(1, 2)),
                  W.param("a", "Float32", (3,), f32(3, 4, 5)),
                  W.param("w~", "Int32", (2,), np.array([7, 8], "<i4")),
                  W.param("#c#", "UInt8", (2,), b"\x01\x02"),
                  W.param("sed123456", "Float32", (1,), f32(6)),
                  W.param(".y.swp", "Float32", (1,), f32(7)),
                  W.param("b", "Float32", (1,), f32(8))]
        src = os.path.join(self.dir, "dots.ckpt")
        ckref.write(src, params)
        m = self.mount(source=src)
        self.assertEqual(m.names(), [p["name"] for p in params])
        m.step(lambda: W.pwrite_file(m.p(".x"), f32(-1), 4), "write .x")
        m.step(lambda: W.pwrite_file(m.p("w~"), np.array(
            [9], "<i4").tobytes(), 0), "write w~")
        self.assertCommitOK(m, m.p(".x"))
        want = W.replace(params, ".x", data=f32(1, -1))
        want = W.replace(want, "w~", data=np.array([9, 8], "<i4"))
        self.check(want, "parameters named like scratch files", path=src)
        # fsync of such a parameter did commit (checked above); renaming
        # parameter 'a' to 'a~' makes it scratch: it is not written
        m.step(lambda: os.rename(m.p("a"), os.path.join(m.mnt, "a~")),
               "rename a -> a~")
        self.assertCommitOK(m)
        want = W.remove(want, "a")
        self.check(want, "a renamed to a~ (scratch)", path=src)
        # renamed away and back (even through a scratch name) it is the
        # parameter again, and so is a deleted one created again
        m.step(lambda: (os.rename(m.p(".x"), m.p(".x.bak")),
                        os.rename(m.p(".x.bak"), m.p(".x")),
                        os.rename(m.p("sed123456"), m.p("tmp")),
                        os.rename(m.p("tmp"), m.p("sed123456"))),
               "rename .x and sed123456 away and back")
        data = W.read_bytes(m.p(".y.swp"))
        m.step(lambda: (os.unlink(m.p(".y.swp")),
                        W.write_file(m.p(".y.swp"), data)),
               "rm .y.swp and write it again")
        self.assertCommitOK(m)
        self.check(want, "renamed back, deleted and created again", path=src)
        self.assertUmountOK(m)
        self.check(want, "after unmount", path=src)


class TestRenameOver(ScratchBase):
    """Rename over a parameter and delete-then-create, in Python."""

    def new_fc1(self):
        a = np.frombuffer(self.data("fc1.weight"), "<f4").reshape(120, 400)
        a = a.copy()
        a[3, 5:9] = [1.5, -2.5, 3.5, 0.0]
        return a

    def test_tofile_tmp_then_os_replace(self):
        m = self.mount()
        a = self.new_fc1()
        tmp = os.path.join(m.mnt, "fc1.weight.tmp")

        def body():
            a.tofile(tmp)
            os.replace(tmp, m.p("fc1.weight"))
            return m.names()
        names = m.step(body, "tofile + os.replace")
        self.assertEqual(names, [p["name"] for p in self.base],
                         "the replaced parameter keeps its place")
        self.assertCommitOK(m)
        want = W.replace(self.base, "fc1.weight", data=a.tobytes())
        self.check(want, "a.tofile(w.tmp); os.replace(w.tmp, w)")
        self.check_same_layout("os.replace")
        self.assertUmountOK(m)
        self.check(want, "after unmount")

    def test_rm_then_cp(self):
        m = self.mount()
        a = self.new_fc1()
        x = os.path.join(self.dir, "x.bin")
        a.tofile(x)
        r = m.run(["sh", "-c", 'rm "$1" && cp "$2" "$1"', "sh",
                   m.p("fc1.weight"), x])
        self.assertEqual(r.rc, 0, r.describe())
        self.assertCommitOK(m)
        want = W.replace(self.base, "fc1.weight", data=a.tobytes())
        self.check(want, "rm w; cp x w")
        self.check_same_layout("rm; cp")
        self.assertUmountOK(m)
        self.check(want, "after unmount")

    def test_rm_several_then_recreate_keeps_order(self):
        # the places of deleted parameters move with the order: deleting
        # three and writing them back (in order, as cp backup/* does, and
        # in reverse) gives the same layout
        m = self.mount()
        names = ["conv1.weight", "fc1.bias", "fc3.bias"]
        saved = {n: self.data(n) for n in names}
        for order in (names, list(reversed(names))):
            m.step(lambda: [os.unlink(m.p(n)) for n in names], "rm three")
            for n in order:
                m.step(lambda n=n: W.write_file(m.p(n), saved[n]),
                       "write " + n)
            self.assertCommitOK(m)
            self.check(self.base, "rm three, written back: %s" % order)
            self.check_same_layout("rm several; recreate")
        self.assertUmountOK(m)

    def test_size_that_does_not_fit_is_uint8_in_place(self):
        m = self.mount()
        odd = b"\x01\x02\x03\x04\x05\x06\x07"
        m.step(lambda: (W.write_file(os.path.join(m.mnt, "t.tmp"), odd),
                        os.replace(os.path.join(m.mnt, "t.tmp"),
                                   m.p("fc1.weight"))), "replace")
        # Assumption: "fits them" means the byte count is exactly what the
        # replaced dtype and shape need; 400 bytes are a whole number of
        # Float32 elements but do not fit [84,120]: UInt8 [400].
        four = f32(*range(100))
        x = os.path.join(self.dir, "x.bin")
        W.write_file(x, four)
        r = m.run(["sh", "-c", 'rm "$1" && cp "$2" "$1"', "sh",
                   m.p("fc2.weight"), x])
        self.assertEqual(r.rc, 0, r.describe())
        self.assertCommitOK(m)
        want = W.replace(self.base, "fc1.weight", dtype="UInt8",
                         shape=(7,), data=odd)
        want = W.replace(want, "fc2.weight", dtype="UInt8", shape=(400,),
                         data=four)
        self.check(want, "sizes that do not fit: UInt8 [n] in place")
        self.assertUmountOK(m)
        self.check(want, "after unmount")

    def test_explicit_xattrs_of_the_tmp_file_win(self):
        m = self.mount()
        h = (np.arange(240 * 400) % 7).astype("<f2")   # 192000 bytes too
        tmp = os.path.join(m.mnt, "fc1.weight.tmp")

        def body():
            h.tofile(tmp)
            W.set_meta(tmp, "Float16", "[240,400]")
            os.replace(tmp, m.p("fc1.weight"))
            return (W.getx(m.p("fc1.weight"), "user.dtype"),
                    W.getx(m.p("fc1.weight"), "user.shape"))
        got = m.step(body, "tofile + setxattr + os.replace")
        self.assertEqual(got, ("Float16", "[240,400]"))
        self.assertCommitOK(m)
        want = W.replace(self.base, "fc1.weight", dtype="Float16",
                         shape=(240, 400), data=h.tobytes())
        self.check(want, "explicit dtype/shape of the renamed file")
        self.assertUmountOK(m)
        self.check(want, "after unmount")


class TestTools(ScratchBase):
    """The real editors and tools on fc1.weight."""

    def intended(self, name="fc1.weight"):
        data = self.data(name)
        pat = pick_pattern(data)
        new = data.replace(pat, b"AB")
        self.assertNotEqual(new, data)
        self.assertEqual(len(new), len(data))
        return pat, new

    def finish(self, m, want, label):
        """Our own commit, the checks, ckpt umount, the checks again."""
        self.assertCommitOK(m, what=label + ": fsync")
        self.check(want, label + ", committed")
        self.check_same_layout(label)
        names = m.names()
        self.assertEqual(names, [p["name"] for p in want], label +
                         ": mount listing (no scratch file left)")
        self.assertUmountOK(m)
        self.check(want, label + ", after ckpt umount")
        self.check_same_layout(label + " after ckpt umount")

    # -- vim --------------------------------------------------------------

    def vim(self, m, path, *cmds, swap=False):
        S.require_tool(self, "vim")
        argv = ["vim", "-b", "-es", "-u", "NONE", "-i", "NONE"]
        if not swap:
            argv.append("-n")
        for c in cmds:
            argv += ["-c", c]
        r = m.run(argv + [path], env=C_ENV)
        self.assertEqual(r.rc, 0, "vim: " + r.describe())
        return r

    def sub_cmd(self, pat):
        return "%%s/\\%%x%02x\\%%x%02x/AB/g" % (pat[0], pat[1])

    def run_vim_case(self, settings, swap=False):
        pat, new = self.intended()
        m = self.mount()
        swapname = os.path.join(self.dir, "swapname")
        # backupskip= : the mount is under /tmp, which vim's default
        # 'backupskip' excludes from backups; the point is to let vim make
        # its backup (fc1.weight~, by rename with backupcopy=no, by copy
        # with the -u NONE default backupcopy=yes) in the mount
        cmds = ["set backupskip= " + settings if settings else
                "set backupskip=",
                "call writefile([swapname('%')], '" + swapname + "')",
                self.sub_cmd(pat), "wq"]
        self.vim(m, m.p("fc1.weight"), *cmds, swap=swap)
        want = W.replace(self.base, "fc1.weight", data=new)
        # vim fsyncs the file it wrote: that commit is already complete
        self.check(want, "after vim's own fsync (%s)" % (settings or
                                                         "default"))
        return m, want, W.read_bytes(swapname).decode().strip()

    def test_vim_backupcopy_no(self):
        m, want, _ = self.run_vim_case("backupcopy=no")
        self.finish(m, want, "vim backupcopy=no")

    def test_vim_default_settings(self):
        m, want, _ = self.run_vim_case("")
        self.finish(m, want, "vim (default backupcopy)")

    def test_vim_backupcopy_auto(self):
        # the default of a nocompatible vim: decides by itself (it tries a
        # test file named 4913 in the directory)
        m, want, _ = self.run_vim_case("backupcopy=auto")
        self.finish(m, want, "vim backupcopy=auto")

    def test_vim_with_swap_file(self):
        m, want, swap = self.run_vim_case("backupcopy=no", swap=True)
        self.assertEqual(swap, os.path.join(m.mnt, ".fc1.weight.swp"),
                         "vim's swap file was not in the mount")
        self.finish(m, want, "vim with a swap file")

    def test_vim_preserve_then_quit_commits_nothing(self):
        # :preserve writes and fsyncs the swap file; :q! drops the change
        pat, _ = self.intended()
        before = W.file_state(self.src)
        m = self.mount()
        swapname = os.path.join(self.dir, "swapname")
        self.vim(m, m.p("fc1.weight"),
                 "call writefile([swapname('%')], '" + swapname + "')",
                 self.sub_cmd(pat), "preserve", "q!", swap=True)
        self.assertEqual(W.read_bytes(swapname).decode().strip(),
                         os.path.join(m.mnt, ".fc1.weight.swp"))
        self.assertUntouched(before, what="vim :preserve (fsync of its swap "
                             "file) then :q!")
        self.assertEqual(m.names(), [p["name"] for p in self.base])
        self.assertUmountOK(m)
        self.assertUntouched(before, what="unmount after vim :q!")

    # -- sed, rsync, tar ----------------------------------------------------

    def test_sed_in_place(self):
        pat, new = self.intended()
        m = self.mount()
        r = m.run(["sed", "-i", "s/\\x%02x\\x%02x/AB/g" % (pat[0], pat[1]),
                   m.p("fc1.weight")], env=C_ENV)
        self.assertEqual(r.rc, 0, "sed -i: " + r.describe())
        self.assertEqual(m.step(lambda: W.read_bytes(m.p("fc1.weight")),
                                "read"), new, "sed's result in the mount")
        self.finish(m, W.replace(self.base, "fc1.weight", data=new),
                    "sed -i")

    def test_rsync_without_xattrs(self):
        S.require_tool(self, "rsync")
        pat, new = self.intended()
        srcdir = os.path.join(self.dir, "rsync_src")
        os.mkdir(srcdir)
        W.write_file(os.path.join(srcdir, "fc1.weight"), new)
        b = bytearray(self.data("fc3.bias"))
        b[0:4] = f32(42)
        W.write_file(os.path.join(srcdir, "fc3.bias"), bytes(b))
        # rsync's quick check skips a file of the same size and mtime: the
        # sources are dated 2001, the files in the mount are not
        for n in ("fc1.weight", "fc3.bias"):
            os.utime(os.path.join(srcdir, n), (1e9, 1e9))
        m = self.mount()
        r = m.run(["rsync", "-a", srcdir + "/", m.mnt + "/"])
        self.assertEqual(r.rc, 0, "rsync -a: " + r.describe())
        want = W.replace(self.base, "fc1.weight", data=new)
        want = W.replace(want, "fc3.bias", data=bytes(b))
        self.finish(m, want, "rsync -a")

    def test_tar_extract_over_parameters(self):
        pat, new = self.intended()
        b = bytearray(self.data("fc2.bias"))
        b[8:12] = f32(-7)
        tdir = os.path.join(self.dir, "tar_src")
        os.mkdir(tdir)
        W.write_file(os.path.join(tdir, "fc1.weight"), new)
        W.write_file(os.path.join(tdir, "fc2.bias"), bytes(b))
        archive = os.path.join(self.dir, "p.tar")
        with tarfile.open(archive, "w") as t:
            t.add(os.path.join(tdir, "fc1.weight"), "fc1.weight")
            t.add(os.path.join(tdir, "fc2.bias"), "fc2.bias")
        m = self.mount()
        r = m.run(["tar", "-xf", archive, "-C", m.mnt])
        self.assertEqual(r.rc, 0, "tar -x: " + r.describe())
        want = W.replace(self.base, "fc1.weight", data=new)
        want = W.replace(want, "fc2.bias", data=bytes(b))
        self.finish(m, want, "tar -x")


if __name__ == "__main__":
    unittest.main()
