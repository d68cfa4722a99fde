#!/usr/bin/python3
"""The daemon's memory over many create+unlink cycles (issue 13 item 7).

* test_create_unlink_flat: 100,000 create+unlink cycles of a small file
  through a mount (every tenth one writes 16 bytes first) leave the
  daemon's VmRSS flat: it grows by less than 2 MB, measured from after a
  warm-up of 10,000 cycles.

Only the daemon's own memory is measured, not time, so unlike
test_memory (whose mount has a time limit) this suite runs beside the
others.  Under the sanitizers (CKPT_SANITIZED=1) 20,000 cycles run and
the limit is not asserted: ASan keeps freed blocks in quarantine.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import memutil  # noqa: E402
from test_memory import note  # noqa: E402

SANITIZED = common.SANITIZED
CYCLES = 20000 if SANITIZED else 100000
WARMUP = 2000 if SANITIZED else 10000
FLAT_KIB = 2000                     # "grows < 2 MB"


class MemoryCycles(unittest.TestCase):
    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)

    def test_create_unlink_flat(self):
        d = W.tempdir(self)
        src = os.path.join(d, "small.ckpt")
        memutil.write(src, 20)
        m = M.mount(self, src)
        data = b"0123456789abcdef"

        def cycles(first, n):
            for i in range(first, first + n):
                p = os.path.join(m.mnt, "tmp%d" % i)
                fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
                try:
                    if i % 10 == 0:
                        os.write(fd, data)
                finally:
                    os.close(fd)
                os.unlink(p)

        cycles(0, WARMUP)
        before = memutil.rss_kib(m.pid)
        t0 = time.monotonic()
        cycles(WARMUP, CYCLES)
        secs = time.monotonic() - t0
        after = memutil.rss_kib(m.pid)
        note("%d create+unlink cycles in %.1f s: daemon VmRSS %d -> %d KiB "
             "(%+d KiB, %.0f bytes per cycle)"
             % (CYCLES, secs, before, after, after - before,
                (after - before) * 1024.0 / CYCLES))
        self.assertEqual(sorted(os.listdir(m.mnt)),
                         sorted(common.escape_name(memutil.name(i))
                                for i in range(20)),
                         "the mount after the cycles")
        if SANITIZED:
            return  # ASan keeps freed blocks in quarantine (see the top)
        self.assertLess(after - before, FLAT_KIB,
                        "%d create+unlink cycles grew the daemon's VmRSS by "
                        "%d KiB (from %d KiB after %d warm-up cycles); it "
                        "must stay flat (< 2 MB)"
                        % (CYCLES, after - before, before, WARMUP))


if __name__ == "__main__":
    unittest.main()
