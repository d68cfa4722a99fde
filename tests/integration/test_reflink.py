#!/usr/bin/python3
"""Reflink-aware commits: on XFS the new file starts as a clone of the old.

An XFS file system on a loop device (a sparse 1 GiB image: mkfs.xfs,
mount -o loop; unmounted and detached at the end, also after a failure)
holds copies of a 256 MiB checkpoint (64 Float32 parameters of 4 MiB), of
32 MiB one (32 x 1 MiB), of a small one with a crc_num trailer and of a safetensors file.  The same
edits are committed there and on a copy in /dev/shm (or, without room
there, in $TMPDIR: no clones, the direct or the page-cache writer), and

  * the two results are byte-identical (cmp), and the reference readers
    (ckref, stref) load them;
  * where the edit keeps the unchanged records at their offsets (a
    same-size put, an appended parameter, the last one deleted, a rename
    to a name of the same length) almost every block of the new file is
    shared (filefrag -v: the "shared" flag), and so is nothing with
    --no-reflink / -o no_reflink;
  * a 4 KiB write through a mount + fsync shares all but the edited
    parameter's blocks, and the old file, kept by a hard link and a
    descriptor held open, is byte for byte what it was (a clone must
    never write into the blocks it shares); in a checkpoint of one 64 MiB
    parameter, the edited parameter's untouched blocks are shared too
    (its staging file starts as shared blocks, and so does the commit);
  * test_crash (kill -9 during commits, 4 trials, 2 of safetensors), test_random_ops (2,000
    operations per format) and the commit fault tests of test_faults
    (plain, crc) pass with their checkpoints on the image
    (CKPT_TEST_FS_DIR; with CKPT_LONG their own counts, and all of
    TestCommitFaults).

Skipped, saying why, without root, mkfs.xfs (xfsprogs), a loop device or
filefrag.  Quick: ~25 s.

Run:  /usr/bin/python3 -m unittest -v test_reflink   (in tests/integration)
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402
import stref  # noqa: E402

NPARAMS = 64
SHAPE = (1024, 1024)   # 4 MiB of Float32
MID = (512, 512)       # 1 MiB: the 32 parameters of the edit cases
ONE = (4096, 4096)     # 64 MiB: the one parameter of one.ckpt
SLICED = (1536, 4096)   # 24 MiB of Float32 in slices of SLICE bytes, as
SLICE = 8 << 20         # MindSpore stores a parameter over 512 MiB
IMAGE_SIZE = 1 << 30


def sh(*cmd):
    return subprocess.run(list(cmd), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def shared_fraction(path):
    """Blocks of path in extents flagged shared, over all its blocks
    (filefrag -v)."""
    r = sh("filefrag", "-v", path)
    if r.returncode != 0:
        raise AssertionError("filefrag -v %s: %s" % (path, r.stderr))
    total = shared = 0
    for line in r.stdout.decode().splitlines():
        m = re.match(r"\s*\d+:\s+\d+\.\.\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+):"
                     r"(.*)$", line)
        if m:
            n = int(m.group(1))
            total += n
            shared += n if "shared" in m.group(2) else 0
    return shared / total if total else 0.0


def why_no_xfs():
    """None if an XFS image can be made and mounted here, else why not."""
    if os.geteuid() != 0:
        return "needs root (mount -o loop)"
    for tool in ("mkfs.xfs", "losetup", "filefrag"):
        if not shutil.which(tool):
            return "no %s (install xfsprogs, util-linux, e2fsprogs: " \
                "scripts/install-deps.sh)" % tool
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control)"
    return None


class XfsImage:
    """A sparse image with XFS, mounted with -o loop under a new
    directory; close() unmounts it and detaches the loop device."""

    def __init__(self, size=IMAGE_SIZE):
        self.top = tempfile.mkdtemp(prefix="ckptfs_xfs_")
        self.img = os.path.join(self.top, "xfs.img")
        self.mnt = os.path.join(self.top, "mnt")
        os.mkdir(self.mnt)
        with open(self.img, "wb") as f:
            f.truncate(size)
        r = sh("mkfs.xfs", "-q", self.img)
        if r.returncode == 0:
            r = sh("mount", "-o", "loop", self.img, self.mnt)
        self.error = None if r.returncode == 0 else \
            r.stderr.decode(errors="replace").strip()

    def close(self):
        if M.is_mounted(self.mnt):
            r = sh("umount", self.mnt)
            if r.returncode != 0:
                sh("umount", "-l", self.mnt)
        for dev in sh("losetup", "-j", self.img).stdout.decode().split():
            if dev.startswith("/dev/loop") and dev.endswith(":"):
                sh("losetup", "-d", dev[:-1])
        shutil.rmtree(self.top, ignore_errors=True)


def make_params(n, seed, shape=SHAPE):
    rng = np.random.default_rng(seed)
    return [W.param("layer%02d.weight" % i, "Float32", shape,
                    rng.standard_normal(shape, dtype=np.float32))
            for i in range(n)]


def plain_dir():
    """Where the copies that commit without clones go: /dev/shm (tmpfs:
    fsync is free) when it has room, else the tests' $TMPDIR."""
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize > 2 << 30:
            return "/dev/shm"
    except OSError:
        pass
    return None


class Shared:
    """What the whole module uses: one XFS image and master copies of the
    test files there and on the tests' own disk (setUpModule)."""
    xfs = disk = quarter = params = None


def setUpModule():
    why = why_no_xfs()
    if why:
        raise unittest.SkipTest(why)
    image = XfsImage()
    unittest.addModuleCleanup(image.close)
    if image.error:
        raise unittest.SkipTest("cannot make an XFS image: %s" % image.error)
    S = Shared
    S.xfs = image.mnt
    S.disk = tempfile.mkdtemp(prefix="ckptfs_reflink_", dir=plain_dir())
    unittest.addModuleCleanup(shutil.rmtree, S.disk, True)
    S.params = make_params(NPARAMS, 1)
    master("big.ckpt", lambda p: ckref.write(p, S.params))
    master("mid.ckpt", lambda p: ckref.write(p, make_params(32, 5, MID)))
    master("one.ckpt", lambda p: ckref.write(p, make_params(1, 7, ONE)))
    master("sliced.ckpt", lambda p: ckref.write(
        p, make_params(1, 8, SLICED), slice_size=SLICE))
    master("crc.ckpt", lambda p: ckref.write(
        p, make_params(8, 2, (512, 512)), crc=True))
    master("model.safetensors", lambda p: stref.write(
        p, [(q["name"], "F32", q["shape"], q["data"])
            for q in make_params(16, 3, (512, 512))]))
    S.quarter = os.path.join(S.disk, "quarter.bin")
    with open(S.quarter, "wb") as f:
        f.write(np.random.default_rng(5).bytes(1 << 20))


def master(name, write):
    """Writes master.NAME on the disk and copies it to XFS."""
    path = os.path.join(Shared.disk, "master." + name)
    write(path)
    cp = sh("cp", path, os.path.join(Shared.xfs, "master." + name))
    assert cp.returncode == 0, cp.stderr


class ReflinkBase(unittest.TestCase):
    def setUp(self):
        self.xfs, self.disk = Shared.xfs, Shared.disk
        self.params = Shared.params
        self.quarter = Shared.quarter

    def copies(self, name, tag):
        """Fresh copies of master name: on XFS (a clone of the XFS
        master, made with cp --reflink=always) and on the disk."""
        out = []
        for d, how in ((self.xfs, "always"), (self.disk, "auto")):
            p = os.path.join(d, "%s.%s" % (tag, name))
            r = sh("cp", "--reflink=" + how,
                   os.path.join(d, "master." + name), p)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.addCleanup(os.unlink, p)
            out.append(p)
        return out

    def edit(self, path, lines, *opts):
        r = M.ckpt("edit", *opts, path,
                   stdin_data=("\n".join(lines) + "\n").encode())
        self.assertEqual(r.rc, 0, r.describe())

    def check_same(self, a, b):
        r = sh("cmp", a, b)
        self.assertEqual(r.returncode, 0, "the clone commit differs from "
                         "the plain one: %s" % r.stdout.decode())


class TestSameOffsets(ReflinkBase):
    """Edits that keep the unchanged records where they were."""

    CASES = {
        "same_size": ["put layer10.weight %s dtype=Float32 shape=[512,512]"],
        "append": ["put extra.bias %s dtype=Float32 shape=[262144]"],
        "delete_last": ["rm layer31.weight"],
        "rename_same_length": ["mv layer05.weight renamed.weight"],
    }

    def run_case(self, key, *opts):
        x, d = self.copies("mid.ckpt", key)
        lines = [ln.replace("%s", self.quarter) for ln in self.CASES[key]]
        self.edit(x, lines, *opts)
        self.edit(d, lines)
        self.check_same(x, d)
        got = {p.name: p for p in ckref.load(x)}
        self.assertEqual(len(got), 32 + (1 if key == "append" else
                                              -1 if key == "delete_last"
                                              else 0))
        return shared_fraction(x)

    def test_same_size_put(self):
        self.assertGreater(self.run_case("same_size"), 0.95)

    def test_append(self):
        self.assertGreater(self.run_case("append"), 0.95)

    def test_delete_last(self):
        self.assertGreater(self.run_case("delete_last"), 0.95)

    def test_rename_same_length(self):
        self.assertGreater(self.run_case("rename_same_length"), 0.95)

    def test_no_reflink_writes_everything(self):
        self.assertEqual(self.run_case("same_size", "--no-reflink"), 0.0)

    def test_crc_trailer(self):
        x, d = self.copies("crc.ckpt", "crc")
        line = "put layer03.weight %s dtype=Float32 shape=[512,512]" % \
            self.quarter
        self.edit(x, [line])
        self.edit(d, [line])
        self.check_same(x, d)
        r = M.ckpt("verify", x)
        self.assertEqual(r.rc, 0, r.describe())
        self.assertGreater(shared_fraction(x), 0.8)

    def test_safetensors_same_size(self):
        x, d = self.copies("model.safetensors", "st")
        line = "put layer07.weight %s" % self.quarter
        self.edit(x, [line])
        self.edit(d, [line])
        self.check_same(x, d)
        self.assertTrue(stref.is_valid(x))
        self.assertGreater(shared_fraction(x), 0.85)


class TestShiftedOffsets(ReflinkBase):
    """Edits that move records: what a clone cannot keep is copied."""

    def same_as_plain(self, name, lines, tag):
        x, d = self.copies(name, tag)
        self.edit(x, lines)
        self.edit(d, lines)
        self.check_same(x, d)
        return x

    def test_delete_first(self):
        x = self.same_as_plain("mid.ckpt", ["rm layer00.weight"], "rm0")
        self.assertEqual(len(ckref.load(x)), 31)

    def test_retype(self):
        x = self.same_as_plain("mid.ckpt", ["set layer04.weight dtype=Int32"],
                               "retype")
        self.assertEqual(ckref.load_dict(x)["layer04.weight"].dtype, "Int32")

    def test_rename_longer(self):
        x = self.same_as_plain("mid.ckpt", ["mv layer02.weight "
                                            "a.much.longer.name.weight"],
                               "mvlong")
        self.assertIn("a.much.longer.name.weight", ckref.load_dict(x))

    def test_safetensors_delete(self):
        x = self.same_as_plain("model.safetensors", ["rm layer00.weight"],
                               "strm")
        self.assertTrue(stref.is_valid(x))

    def test_shift_by_whole_blocks_is_shared(self):
        """Deleting a first record of exactly 8 KiB moves the others by two
        blocks: their whole blocks are still shared."""
        first = None
        for n in range(8192, 8000, -1):
            p = W.param("pad", "UInt8", (n,), bytes(n))
            if len(ckref.dumps([p])) == 8192:
                first = p
                break
        self.assertIsNotNone(first)
        path = os.path.join(self.disk, "master.shift.ckpt")
        ckref.write(path, [first] + make_params(16, 6, MID))
        self.addCleanup(os.unlink, path)
        xm = os.path.join(self.xfs, "master.shift.ckpt")
        shutil.copyfile(path, xm)
        self.addCleanup(os.unlink, xm)
        x = self.same_as_plain("shift.ckpt", ["rm pad"], "shift")
        self.assertGreater(shared_fraction(x), 0.95)


class TestMountEdit(ReflinkBase):
    """The common surgery: 4 KiB written through a mount, fsync."""

    def write_4k(self, path, *opts, name="layer20.weight", off=1 << 20,
                 probe=None):
        """Mounts path, writes 4 KiB of 0x7f at off into name, fsyncs
        (the commit) and unmounts; probe(mount), if given, runs between
        the write and the fsync, and its result is returned."""
        m = M.mount(self, path, *opts)
        got = None
        fd = os.open(m.p(name), os.O_WRONLY)
        try:
            self.assertEqual(os.pwrite(fd, b"\x7f" * 4096, off), 4096)
            if probe:
                got = probe(m)
            os.fsync(fd)
        finally:
            os.close(fd)
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        return got

    def test_4k_edit_shares_and_keeps_the_old_file(self):
        x, d = self.copies("big.ckpt", "m4k")
        old = x + ".old"
        os.link(x, old)
        self.addCleanup(os.unlink, old)
        before = sha(old)
        held = os.open(old, os.O_RDONLY)
        self.addCleanup(os.close, held)
        self.write_4k(x)
        self.write_4k(d)
        self.check_same(x, d)
        self.assertNotEqual(sha(x), before)
        self.assertEqual(sha(old), before, "the old file changed")
        self.assertEqual(sha("/proc/self/fd/%d" % held), before)
        got = ckref.load_dict(x)
        data = bytearray(self.params[20]["data"])
        data[1 << 20:(1 << 20) + 4096] = b"\x7f" * 4096
        self.assertEqual(got["layer20.weight"].data, bytes(data))
        frac = shared_fraction(x)
        self.assertGreater(frac, (NPARAMS - 1.5) / NPARAMS)

    def test_4k_edit_of_a_big_parameter_shares_its_other_blocks(self):
        x, d = self.copies("one.ckpt", "m4k1")
        for p in (x, d):
            self.write_4k(p, name="layer00.weight", off=5 << 20)
        self.check_same(x, d)
        self.assert_4k_written(x, make_params(1, 7, ONE)[0], 5 << 20)
        frac = shared_fraction(x)
        self.assertGreater(frac, 0.99, "a 4 KiB edit of a 64 MiB parameter "
                           "copied its untouched blocks")

    def test_4k_edit_of_a_sliced_parameter_stages_shared_blocks(self):
        """A parameter stored in slices (records of SLICE bytes, each
        after its own header, so at different offsets modulo the block
        size) is staged with each slice aligned as in the source: the
        staging file of a 4 KiB edit shares all but a few blocks. (The
        commit writes the parameter again in one record here, our encoder
        slicing at 512 MiB only: bench/run measures a 1 GiB parameter.)"""
        x, d = self.copies("sliced.ckpt", "slc")
        self.assertEqual(len(list(ckref.iter_records(
            make_params(1, 8, SLICED), SLICE))), 3, "records")
        frac = self.write_4k(x, name="layer00.weight", off=9 << 20,
                             probe=lambda m: shared_fraction(
                                 self.staging_file(m)))
        self.write_4k(d, name="layer00.weight", off=9 << 20)
        self.assertGreater(frac, 0.99, "the staging copy of a sliced "
                           "parameter copied blocks of its later slices")
        self.check_same(x, d)
        self.assert_4k_written(x, make_params(1, 8, SLICED)[0], 9 << 20)

    def assert_4k_written(self, path, param, off):
        """ckref reads param from path with write_4k's bytes at off."""
        data = bytearray(param["data"])
        data[off:off + 4096] = b"\x7f" * 4096
        self.assertEqual(ckref.load_dict(path)[param["name"]].data,
                         bytes(data))

    def staging_file(self, m):
        """/proc path of the daemon's one staging file (an unnamed file
        in the checkpoint's directory on the image)."""
        found = []
        d = "/proc/%d/fd" % m.pid
        for fd in os.listdir(d):
            try:
                link = os.readlink(os.path.join(d, fd))
            except OSError:
                continue
            if link.startswith(self.xfs + "/#") or \
                    ".ckptfs-stage-" in link:
                found.append(os.path.join(d, fd))
        self.assertEqual(len(found), 1, "staging files: %s" % found)
        return found[0]

    def test_mount_option_no_reflink(self):
        x, d = self.copies("big.ckpt", "m4kn")
        self.write_4k(x, "-o", "no_reflink")
        self.write_4k(d)
        self.check_same(x, d)
        self.assertEqual(shared_fraction(x), 0.0)


class TestSuitesOnXfs(ReflinkBase):
    """The crash, fault and random-operation suites with their checkpoints
    on the XFS image (CKPT_TEST_FS_DIR), so that their commits go through
    the clone; small counts (CKPT_LONG: the suites' own)."""

    def run_suite(self, counts, *names):
        d = tempfile.mkdtemp(prefix="suite_", dir=self.xfs)
        self.addCleanup(shutil.rmtree, d, True)
        env = dict(os.environ, CKPT_TEST_FS_DIR=d)
        if not common.LONG:
            env.update(counts)
        r = subprocess.run([common.PYTHON, "-m", "unittest"] + list(names),
                           cwd=common.HERE, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=common.TIMEOUT * 5)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out[-6000:])
        self.assertRegex(out, r"\nOK")
        self.assertEqual(os.listdir(d), [], "left on XFS")

    # (a daemon killed with SIGKILL leaves nothing for ASan to report:
    # the plain pass runs it)
    @unittest.skipIf(common.SANITIZED, "kill -9 trials: the plain pass")
    def test_crash(self):
        self.run_suite({"CKPT_CRASH_TRIALS": "4", "CKPT_CRASH_ST_TRIALS": "2"},
                       "test_crash")

    def test_random_ops(self):
        n = "500" if common.SANITIZED else "2000"
        self.run_suite({"CKPT_RANDOM_OPS": n, "CKPT_RANDOM_ST_OPS": n},
                       "test_random_ops")

    def test_faults(self):
        names = ["test_faults.TestCommitFaults"] if common.LONG else [
            "test_faults.TestCommitFaults.test_" + t
            for t in ("plain", "crc")]
        self.run_suite({}, *names)


if __name__ == "__main__":
    unittest.main()
