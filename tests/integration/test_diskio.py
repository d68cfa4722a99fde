#!/usr/bin/python3
"""What the page cache and the disk see of writes and commits through a
ckptfs mount: a write-only truncating open skips the page cache, a commit
leaves the new checkpoint (written with O_DIRECT) out of it, and
rewriting every tensor then committing writes one checkpoint's worth to
the disk, not two (staging files are dropped, never written out).

These read the block device's write counter and the page cache of the
file system the tests run on, which other suites would change: the suite
runs alone (RUN_SERIAL in tests/CMakeLists.txt).  The rest of the
write-back tests are test_writeback, whose base class these use.
"""

import os
import subprocess
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wbutil as W  # noqa: E402
import ckref  # noqa: E402
from test_writeback import WritebackBase  # noqa: E402


class TestDiskAndCache(WritebackBase):
    def test_truncating_write_skips_page_cache(self):
        rel = tuple(int(x) for x in
                    os.uname().release.split("-")[0].split(".")[:2])
        if rel < (6, 6):
            self.skipTest("direct writes need Linux >= 6.6 (FUSE 7.39)")
        m = self.mount()
        resident = {}
        for name, flags in (("fc1.weight", os.O_WRONLY | os.O_TRUNC),
                            ("fc2.weight", os.O_RDWR | os.O_TRUNC)):
            p = m.p(name)
            n = os.path.getsize(p)
            fd = os.open(p, flags)
            try:
                os.write(fd, bytes([7]) * n)
            finally:
                os.close(fd)
            resident[name] = W.resident_pages(p, n)
        self.assertEqual(resident["fc1.weight"], 0,
                         "a write-only truncating open filled the cache")
        self.assertGreater(resident["fc2.weight"], 0,
                           "read-write opens keep the page cache")

    def big_ckpt(self, rng):
        """16 Float32 parameters of 4 MiB of random bytes from rng, written
        as big.ckpt in the test's directory: (params, path)."""
        n = 4 << 20
        params = [W.param("p%02d" % i, "Float32", (n // 4,), rng.bytes(n))
                  for i in range(16)]
        src = os.path.join(self.dir, "big.ckpt")
        ckref.write(src, params)
        return params, src

    def test_commit_leaves_the_page_cache_alone(self):
        """A plain commit writes the new checkpoint with O_DIRECT, all but
        its last 16 MiB (src/lib/dio.c): committing a 64 MiB checkpoint
        leaves at most a quarter of it in the page cache."""
        rng = np.random.default_rng(23)
        params, src = self.big_ckpt(rng)
        fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE",
                                 "--target", self.dir],
                                stdout=subprocess.PIPE, text=True).stdout
        if fstype.strip() in ("tmpfs", "ramfs", ""):
            self.skipTest("%s is not on a disk (%r): all of it is page "
                          "cache" % (self.dir, fstype.strip()))
        try:
            fd = os.open(self.dir + "/.probe", os.O_CREAT | os.O_WRONLY |
                         os.O_DIRECT, 0o600)
            os.close(fd)
            os.unlink(self.dir + "/.probe")
        except OSError:
            self.skipTest("%s has no O_DIRECT" % self.dir)
        m = self.mount(source=src)
        W.pwrite_file(m.p("p03"), bytes(4096), 8192)
        self.assertCommitOK(m)
        pages = W.resident_pages(src)
        total = (os.path.getsize(src) + 4095) // 4096
        self.assertLessEqual(pages, total // 4, "the commit left %d of %d "
                             "pages of the new checkpoint in the page cache"
                             % (pages, total))
        want = W.replace(params, "p03", data=params[3]["data"][:8192] +
                         bytes(4096) + params[3]["data"][12288:])
        W.check_ckpt(self, src, want)

    def test_bulk_rewrite_writes_the_disk_once(self):
        """Staged bytes are dropped after a commit, not written to the disk
        (ext4 writes out a file truncated to 0 bytes when it is closed, so
        staging files must never be): rewriting every tensor and committing
        writes about one checkpoint's worth to the disk, not two."""
        st = os.stat(self.dir)
        stat = "/sys/dev/block/%d:%d/stat" % (os.major(st.st_dev),
                                              os.minor(st.st_dev))
        if not os.path.exists(stat):
            self.skipTest("%s is not on a block device" % self.dir)

        def written():
            with open(stat) as f:
                return int(f.read().split()[6]) * 512

        rng = np.random.default_rng(5)
        params, src = self.big_ckpt(rng)
        n = 4 << 20
        m = self.mount(source=src)
        new = [W.param(p["name"], "Float32", (n // 4,), rng.bytes(n))
               for p in params]
        os.sync()
        before = written()
        for p in new:
            W.write_file(m.p(p["name"]), p["data"])
        self.assertCommitOK(m)
        disk = written() - before
        size = os.path.getsize(src)
        self.assertLess(disk, 1.5 * size, "rewriting and committing a "
                        "%d-byte checkpoint wrote %d bytes to the disk"
                        % (size, disk))
        W.check_ckpt(self, src, new)


if __name__ == "__main__":
    unittest.main()
