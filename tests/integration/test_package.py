#!/usr/bin/python3
"""The Debian package: scripts/package.sh builds ckptfs_VERSION_ARCH.deb
(in a fresh build directory of its own); its control fields (Depends:
fuse3 and the libraries dpkg-shlibdeps found, libfuse3 among them) and
its files (the two programs, the man pages gzipped with 'gzip -9n', the
bash completion; nothing else) are checked; 'dpkg -i' installs it, the
installed /usr/bin/ckptfs mounts a real fixture whose bytes match the
reference reader, 'man -w' finds the pages, the installed 'ckpt umount'
commits an edit and unmounts, and 'dpkg -r' removes every file it
installed.  The package is removed (purged) at the end whatever happened.

Skipped, rather than clobbering anything, if a ckptfs package or a
/usr/bin/ckptfs or /usr/bin/ckpt is already there; skipped in the
sanitizer run (CKPT_SANITIZED=1): the package is a plain build of its
own, the plain run tests it.  Needs root (dpkg -i) and /dev/fuse.
"""

import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import installutil as I  # noqa: E402
import mounting as M  # noqa: E402

PKG = "ckptfs"
PROGRAMS = ("/usr/bin/ckptfs", "/usr/bin/ckpt")
FILES = PROGRAMS + ("/usr/share/man/man1/ckptfs.1.gz",
                    "/usr/share/man/man1/ckpt.1.gz",
                    "/usr/share/bash-completion/completions/ckpt")
BUILD_TIMEOUT = 600


def pkg_status():
    """dpkg's abbreviated status of the package ('ii', 'rc', ...), or ''
    when dpkg does not know it."""
    r = I.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", PKG])
    return r.stdout.strip() if r.returncode == 0 else ""


def why_skip():
    if os.environ.get("CKPT_SANITIZED") == "1":
        return ("the package is a plain build of its own: tested in the "
                "plain run")
    if not shutil.which("dpkg"):
        return "not a Debian system (no dpkg)"
    if os.geteuid() != 0:
        return "dpkg -i needs root"
    st = pkg_status()
    if st and not st.startswith(("un", "pn")):
        return ("a %s package is already on this machine (dpkg status %r): "
                "not touching it; 'dpkg --purge %s' to run this test"
                % (PKG, st, PKG))
    there = [p for p in PROGRAMS if os.path.lexists(p)]
    if there:
        return ("%s already exist (not from a package): not overwriting "
                "them" % ", ".join(there))
    return None


def purge():
    """Removes the package whatever state it is in (the test's cleanup)."""
    if pkg_status()[:2] not in ("", "un", "pn"):
        I.run(["dpkg", "--purge", PKG], timeout=300)


class PackageTest(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        reason = why_skip()
        if reason:
            raise unittest.SkipTest(reason)
        cls.out = tempfile.mkdtemp(prefix="ckptfs_deb_")
        t0 = time.monotonic()
        r = I.run([I.PACKAGE_SH, cls.out], timeout=BUILD_TIMEOUT)
        cls.build_seconds = time.monotonic() - t0
        cls.build = r
        lines = r.stdout.strip().splitlines()
        cls.deb = lines[-1] if r.returncode == 0 and lines else None
        print("\npackage.sh: %.1f s" % cls.build_seconds, file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        purge()
        shutil.rmtree(cls.out, True)

    def setUp(self):
        if not self.deb:
            self.fail("scripts/package.sh failed (exit %d):\n%s%s"
                      % (self.build.returncode, self.build.stdout,
                         self.build.stderr))
        common.require_bin(self, common.CKPT_BIN)

    def version(self):
        return I.version_of(common.CKPT_BIN)

    def field(self, name):
        r = I.run(["dpkg-deb", "-f", self.deb, name])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    # ---- the .deb itself

    def test_file_name(self):
        arch = I.run(["dpkg", "--print-architecture"]).stdout.strip()
        self.assertEqual(os.path.basename(self.deb),
                         "%s_%s_%s.deb" % (PKG, self.version(), arch))
        self.assertEqual(os.path.dirname(self.deb), self.out)
        self.assertEqual(os.listdir(self.out), [os.path.basename(self.deb)],
                         "package.sh left other files in its output")

    def test_control_fields(self):
        self.assertEqual(self.field("Package"), PKG)
        self.assertEqual(self.field("Version"), self.version())
        depends = [re.split(r"[\s(]", d.strip())[0]
                   for d in self.field("Depends").split(",")]
        self.assertIn("fuse3", depends)
        self.assertTrue(any(re.match(r"libfuse3-\d+$", d) for d in depends),
                        "no libfuse3 in Depends: %s" % depends)
        for lib in ("libc6", "libssl", "libjansson", "libisal"):
            self.assertTrue(any(d.startswith(lib) for d in depends),
                            "no %s in Depends: %s" % (lib, depends))
        self.assertRegex(self.field("Maintainer"),
                         r"^[^<>]+ <[^<>@]+@[^<>]+>$")
        self.assertEqual(self.field("Section"), "utils")
        self.assertEqual(self.field("Priority"), "optional")
        desc = self.field("Description").splitlines()
        self.assertGreater(len(desc), 3, "no long description")
        self.assertLessEqual(max(len(line) for line in desc), 80)

    def test_contents(self):
        data = fsys_tarfile(self.deb)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            infos = {os.path.normpath(m.name.lstrip(".")): m
                     for m in tar.getmembers()}
            regular = sorted(p for p, m in infos.items() if m.isfile())
            self.assertEqual(regular, sorted(FILES))
            for p, m in infos.items():
                self.assertEqual((m.uname, m.gname), ("root", "root"), p)
                self.assertFalse(m.mode & 0o7022, "%s: mode %o" % (p, m.mode))
                if m.isfile():
                    want = 0o755 if p in PROGRAMS else 0o644
                    self.assertEqual(m.mode & 0o777, want, p)
            for p in FILES:
                if not p.endswith(".gz"):
                    continue
                raw = tar.extractfile(infos[p]).read()
                # gzip -9n: no file name (FLG.FNAME), no time stamp
                self.assertEqual(raw[:3], b"\x1f\x8b\x08", p)
                self.assertFalse(raw[3] & 0x08, "%s holds a file name" % p)
                self.assertEqual(raw[4:8], b"\0\0\0\0", "%s: mtime" % p)
                name = os.path.basename(p)[:-3]
                with open(os.path.join(I.MAN_DIR, name), "rb") as f:
                    self.assertEqual(gzip.decompress(raw), f.read(), p)

    # ---- installed

    def test_install_mount_remove(self):
        self.addCleanup(purge)
        t0 = time.monotonic()
        r = I.run(["dpkg", "-i", self.deb], timeout=300)
        print("dpkg -i: %.1f s" % (time.monotonic() - t0), file=sys.stderr)
        self.assertEqual(r.returncode, 0, "dpkg -i failed:\n%s%s"
                         % (r.stdout, r.stderr))
        self.assertEqual(pkg_status(), "ii")
        listed = I.run(["dpkg", "-L", PKG]).stdout.split("\n")
        listed = [p for p in listed if p and not os.path.isdir(p)]
        self.assertEqual(sorted(listed), sorted(FILES))
        r = I.run(["/usr/bin/ckptfs", "--version"])
        self.assertIn("ckptfs %s" % self.version(), r.stdout)

        for page in ("ckptfs", "ckpt"):
            r = I.run(["man", "-w", page])
            self.assertEqual(r.stdout.strip(),
                             "/usr/share/man/man1/%s.1.gz" % page, r.stderr)
        self.mount_edit_umount()

        t0 = time.monotonic()
        r = I.run(["dpkg", "-r", PKG], timeout=300)
        print("dpkg -r: %.1f s" % (time.monotonic() - t0), file=sys.stderr)
        self.assertEqual(r.returncode, 0, "dpkg -r failed:\n%s%s"
                         % (r.stdout, r.stderr))
        left = [p for p in listed if os.path.lexists(p)]
        self.assertEqual(left, [], "dpkg -r left files behind")
        self.assertFalse(pkg_status().startswith("i"), pkg_status())

    def mount_edit_umount(self):
        """The installed ckptfs mounts a fixture (the daemon is
        /usr/bin/ckptfs; every byte as the reference reads it), the
        installed ckpt umount commits a deletion and unmounts."""
        src = common.private_copy(self, pick_fixture())
        params = common.tensors_of(common.ref(src))
        with mock.patch.object(common, "CKPTFS_BIN", PROGRAMS[0]):
            m = M.mount(self, src)
        self.assertEqual(os.readlink("/proc/%d/exe" % m.pid), PROGRAMS[0])
        self.assertEqual(sorted(m.names()),
                         sorted({p.split("/")[0] for p, _ in params}))
        for shown, t in params:
            with open(os.path.join(m.mnt, shown), "rb") as f:
                self.assertEqual(f.read(), t.data, shown)
        gone = params[0][0]
        os.unlink(os.path.join(m.mnt, gone))
        r = m.run([PROGRAMS[1], "umount", m.mnt])
        self.assertEqual(r.rc, 0, r.describe())
        self.assertFalse(m.mounted())
        m.wait_exit()
        # (common.ref caches by path: read the new file afresh)
        after = [p for p, _ in common.tensors_of(common.ckref.load(src))]
        self.assertEqual(after, [p for p, _ in params[1:]])


def pick_fixture():
    """The smallest real fixture with at least two plain tensors."""
    ok = [f for f in common.real_files()
          if sum(1 for p in common.ref(f) if p.kind == "tensor") >= 2 and
          all(p.kind == "tensor" for p in common.ref(f))]
    return min(ok, key=os.path.getsize)


def fsys_tarfile(deb):
    """The bytes of the package's data archive (dpkg-deb --fsys-tarfile)."""
    r = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise AssertionError("dpkg-deb --fsys-tarfile: %s" % r.stderr)
    return r.stdout


if __name__ == "__main__":
    unittest.main()
