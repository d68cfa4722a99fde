#!/usr/bin/python3
"""Crash safety of commits: kill -9 the daemon in the middle of a commit.

A checkpoint of 20 parameters x 2 MiB (Float32 [512, 1024]) is edited in one
of three ways (big rewrite + delete + rename + add + dtype/shape change;
small edits in every parameter, so everything is staged; delete only, so
everything is copied from the old file).  A reference run of each variant
measures how long the commit takes and checks its result against
ckref.dumps of the expected parameters.  Then, for CKPT_CRASH_TRIALS
(default 40; 20 under the sanitizers; 200 with scripts/test.sh --long)
trials: restore the old file, mount, make the edits, start
fsync(mount root) in a thread, kill -9 the daemon (pid from getxattr
user.ckptfs.pid) after a random delay in [0, 1.1 x commit time], lazily
unmount the dead mount and check that

  * the checkpoint is exactly the complete old or the complete new file
    (sha256), and the new one if fsync had returned success;
  * the reference reader loads it;
  * nothing is left in the directory except possibly `.NAME.ckptfs-*`
    temporaries (counted and reported, then removed).

TestCrashSafetensors does the same on a safetensors mount (a MindSpore
2.7-style file with crc_num and an Int4 marker; edits of tensors and of
user.metadata.*): the file must be exactly the old or the new serializer
output (stmodel, stref.serialize), read by both of stref's readers.
"""

import hashlib
import os
import random
import re
import sys
import threading
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402
import stmodel as SM  # noqa: E402
import stref  # noqa: E402

TRIALS = common.count("CKPT_CRASH_TRIALS", 40, 200, sanitized=20)
SEED_ENV = os.environ.get("CKPT_RANDOM_SEED")
NPARAMS = 20
SHAPE = (512, 1024)          # 2 MiB of Float32
NAME = "crash.ckpt"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def make_base():
    rng = np.random.default_rng(7)
    return [W.param("layer%02d.weight" % i, "Float32", SHAPE,
                    rng.standard_normal(SHAPE).astype("<f4"))
            for i in range(NPARAMS)]


# Each variant: apply(mount) performs the edits; expected(base) gives the
# parameters the commit must write.

def _big_data():
    return np.random.default_rng(11).standard_normal(SHAPE).astype("<f4") \
        .tobytes()


def _new_data():
    return np.arange(256 * 1024, dtype="<f4").tobytes()  # 1 MiB


def apply_mixed(m):
    W.pwrite_file(m.p("layer03.weight"), _big_data(), 0)
    os.unlink(m.p("layer07.weight"))
    os.rename(m.p("layer10.weight"), m.p("renamed10.weight"))
    W.write_file(m.p("added.weight"), _new_data())
    W.set_meta(m.p("added.weight"), "Float32", "[512, 512]")
    W.set_meta(m.p("layer12.weight"), "Float16", "1024,1024")


def expected_mixed(base):
    out = []
    for p in base:
        n = p["name"]
        if n == "layer03.weight":
            out.append(dict(p, data=_big_data()))
        elif n == "layer07.weight":
            continue
        elif n == "layer10.weight":
            out.append(dict(p, name="renamed10.weight"))
        elif n == "layer12.weight":
            out.append(dict(p, dtype="Float16", shape=(1024, 1024)))
        else:
            out.append(p)
    out.append(W.param("added.weight", "Float32", (512, 512), _new_data()))
    return out


def _small_edits():
    rng = random.Random(3)
    return [(i, rng.randrange(0, 2 * 1024 * 1024 - 4096),
             bytes(rng.getrandbits(8) for _ in range(64)) * 64)
            for i in range(NPARAMS)]


def apply_small(m):
    for i, off, data in _small_edits():
        W.pwrite_file(m.p("layer%02d.weight" % i), data, off)


def expected_small(base):
    out = [dict(p) for p in base]
    for i, off, data in _small_edits():
        b = bytearray(out[i]["data"])
        b[off:off + len(data)] = data
        out[i]["data"] = bytes(b)
    return out


def apply_delete(m):
    os.unlink(m.p("layer00.weight"))


def expected_delete(base):
    return base[1:]


VARIANTS = [("mixed", apply_mixed, expected_mixed),
            ("small-edits", apply_small, expected_small),
            ("delete-first", apply_delete, expected_delete)]

TEMP_RE = re.compile(r"^\.%s\.ckptfs-" % re.escape(NAME))


class TestCrash(unittest.TestCase):
    NAME = NAME
    TRIALS = TRIALS
    VARIANTS = VARIANTS
    TEMP_RE = TEMP_RE

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        self.dir = W.fs_dir(self, "ckptfs_crash_")
        self.path = os.path.join(self.dir, self.NAME)
        self.make_old()
        self.old_sha = sha(self.old)

    def make_old(self):
        """self.base (what the variants' expected() take) and self.old
        (the bytes of the checkpoint before each commit)."""
        self.base = make_base()
        self.old = ckref.dumps(self.base)

    def check_new(self, expected):
        """The file after a commit of the variant whose expected() this
        is."""
        W.check_ckpt(self, self.path, expected(self.base))

    def check_loadable(self, data, label):
        try:
            ckref.loads(data, self.NAME)
        except ckref.CheckpointError as e:
            self.fail("%s: reference cannot load the file: %s"
                      % (label, e))

    def restore(self):
        tmp = os.path.join(self.dir, "restore.tmp")
        W.write_file(tmp, self.old)
        os.replace(tmp, self.path)

    def strays(self):
        """Unexpected names in the directory; removes allowed temporaries
        and returns (allowed, unexpected)."""
        allowed, bad = [], []
        for n in os.listdir(self.dir):
            if n == self.NAME:
                continue
            if self.TEMP_RE.match(n):
                allowed.append(n)
                os.unlink(os.path.join(self.dir, n))
            else:
                bad.append(n)
        return allowed, bad

    def reference_run(self, apply, expected):
        """Commits one variant without a crash; returns (seconds, sha)."""
        times = []
        for _ in range(2):
            self.restore()
            m = M.mount(self, self.path)
            apply(m)
            t0 = time.monotonic()
            e = m.commit()
            times.append(time.monotonic() - t0)
            self.assertEqual(e, 0, "reference commit failed: %s"
                             % m.error())
            m.unmount()
            self.check_new(expected)
        new = W.read_bytes(self.path)
        self.assertNotEqual(sha(new), self.old_sha)
        allowed, bad = self.strays()
        self.assertEqual(allowed + bad, [], "a clean commit left files")
        return max(times), sha(new)

    def test_kill_during_commit(self):
        seed = int(SEED_ENV) if SEED_ENV else random.SystemRandom().randrange(
            1 << 31)
        rng = random.Random(seed)
        t_start = time.monotonic()
        refs = []
        for name, apply, expected in self.VARIANTS:
            secs, new_sha = self.reference_run(apply, expected)
            refs.append((name, apply, secs, new_sha))
        print("\n%s: seed %d (CKPT_RANDOM_SEED), commit times: %s"
              % (type(self).__name__, seed,
                 ", ".join("%s %.0f ms" % (r[0], r[2] * 1000)
                           for r in refs)),
              file=sys.stderr, flush=True)
        counts = {"old": 0, "new": 0, "fsync_ok": 0, "temps_left": 0}
        temps_seen = []
        for trial in range(self.TRIALS):
            name, apply, secs, new_sha = refs[trial % len(refs)]
            label = "seed %d trial %d (%s)" % (seed, trial, name)
            self.restore()
            m = M.mount(self, self.path)
            apply(m)
            box = {}

            def do_fsync():
                box["rc"] = M.fsync_path(m.mnt)
            th = threading.Thread(target=do_fsync, daemon=True)
            delay = rng.uniform(0, secs * 1.1)
            th.start()
            time.sleep(delay)
            m.kill()   # kill -9, wait for the exit, fusermount3 -uz
            th.join(30)
            self.assertFalse(th.is_alive(), "%s: fsync still blocked after "
                             "the daemon died" % label)
            self.assertFalse(m.mounted(), label)
            data = W.read_bytes(self.path)
            h = sha(data)
            if h == self.old_sha:
                counts["old"] += 1
                state = "old"
            elif h == new_sha:
                counts["new"] += 1
                state = "new"
            else:
                self.fail("%s: killed after %.1f ms: the checkpoint is "
                          "neither the old nor the new file (%d bytes, old "
                          "%d; first difference from the old at %d)" % (
                              label, delay * 1000, len(data), len(self.old),
                              W.first_diff(data, self.old)))
            if box.get("rc") == 0:
                counts["fsync_ok"] += 1
                self.assertEqual(state, "new", "%s: fsync returned success "
                                 "but the file is the old one" % label)
            self.check_loadable(data, label)
            allowed, bad = self.strays()
            self.assertEqual(bad, [], "%s: unexpected files left in the "
                             "directory" % label)
            if allowed:
                counts["temps_left"] += len(allowed)
                temps_seen.extend(allowed)
        total = time.monotonic() - t_start
        print("%s: %d trials in %.1f s: %s%s" % (
            type(self).__name__, self.TRIALS, total, counts,
            ("; temporaries left behind: %s" % temps_seen[:5])
            if temps_seen else ""), file=sys.stderr, flush=True)
        # the delays must have covered both outcomes, or the test measured
        # nothing
        self.assertGreater(counts["old"] + counts["new"], 0)


# --------------------------------------------------------------------------
# the same on a safetensors mount

ST_TRIALS = common.count("CKPT_CRASH_ST_TRIALS", 10, 100, sanitized=5)
ST_NAME = "crash.safetensors"
ST_NPARAMS = 12
ST_SHAPE = (512, 512)        # 1 MiB of Float32
ST_NOTE = "user.metadata.note"


def make_st_base():
    """What MindSpore 2.7 writes for 12 weights, a 0-d Int64, an Int4 and a
    BFloat16 tensor: metadata with the Int4 marker and crc_num."""
    rng = np.random.default_rng(8)
    params = [dict(name="layer%02d.weight" % i, dtype="Float32",
                   shape=ST_SHAPE, data=rng.standard_normal(ST_SHAPE)
                   .astype("<f4").tobytes()) for i in range(ST_NPARAMS)]
    params += [
        dict(name="epoch_num", dtype="Int64", shape=(),
             data=np.int64(5).tobytes()),
        dict(name="quant.weight", dtype="Int4", shape=(64, 2),
             data=rng.integers(-8, 8, 128, dtype=np.int8).tobytes()),
        dict(name="norm.bf16", dtype="BFloat16", shape=(256,),
             data=rng.integers(0, 256, 512, dtype=np.uint8).tobytes())]
    return stref.mindspore_save(params, SM.OD(remove_redundancy="False"),
                                crc=True)


def _st_big():
    return np.random.default_rng(12).standard_normal(ST_SHAPE) \
        .astype("<f4").tobytes()


def _st_new():
    return np.arange(128 * 1024, dtype="<f4").tobytes()   # 512 KiB


def st_apply_mixed(m):
    W.pwrite_file(m.p("layer03.weight"), _st_big(), 0)
    os.unlink(m.p("layer07.weight"))
    os.rename(m.p("layer10.weight"), m.p("renamed10.weight"))
    W.write_file(m.p("added.weight"), _st_new())
    W.set_meta(m.p("added.weight"), "F32", "[256, 512]")
    W.set_meta(m.p("layer05.weight"), "float16", "1024,512")
    W.pwrite_file(m.p("epoch_num"), np.int64(7).tobytes(), 0)
    os.setxattr(m.mnt, ST_NOTE, "kill -9 \u00e9\n".encode())


def st_expected_mixed(base):
    return base.copy().set("layer03.weight", data=_st_big()) \
        .remove("layer07.weight") \
        .rename("layer10.weight", "renamed10.weight") \
        .add("added.weight", "Float32", (256, 512), _st_new()) \
        .set("layer05.weight", dtype="Float16", shape=(1024, 512)) \
        .set("epoch_num", data=np.int64(7).tobytes()) \
        .set_meta("note", "kill -9 \u00e9\n")


def _st_small_edits():
    rng = random.Random(4)
    return [(i, rng.randrange(0, (1 << 20) - 4096), rng.randbytes(4096))
            for i in range(ST_NPARAMS)]


def st_apply_small(m):
    for i, off, data in _st_small_edits():
        W.pwrite_file(m.p("layer%02d.weight" % i), data, off)


def st_expected_small(base):
    out = base.copy()
    for i, off, data in _st_small_edits():
        name = "layer%02d.weight" % i
        b = bytearray(out.t[name][2])
        b[off:off + len(data)] = data
        out.set(name, data=b)
    return out


def st_apply_meta(m):
    os.setxattr(m.mnt, "user.metadata.remove_redundancy", b"True")
    os.setxattr(m.mnt, ST_NOTE, b"metadata only")


def st_expected_meta(base):
    return base.copy().set_meta("remove_redundancy", "True") \
        .set_meta("note", "metadata only")


ST_VARIANTS = [("mixed", st_apply_mixed, st_expected_mixed),
               ("small-edits", st_apply_small, st_expected_small),
               ("metadata-only", st_apply_meta, st_expected_meta)]


class TestCrashSafetensors(TestCrash):
    """kill -9 during commits of a safetensors mount: the file is always
    exactly the old or the new serializer output (stmodel / stref), both
    of stref's readers (Hugging Face's and MindSpore 2.7's) take it, and
    nothing but `.NAME.ckptfs-*` temporaries is left beside it.
    CKPT_CRASH_ST_TRIALS (default 10; 5 under the sanitizers; 100 with
    scripts/test.sh --long)."""
    NAME = ST_NAME
    TRIALS = ST_TRIALS
    VARIANTS = ST_VARIANTS
    TEMP_RE = re.compile(r"^\.%s\.ckptfs-" % re.escape(ST_NAME))

    def make_old(self):
        self.old = make_st_base()
        self.base = SM.StState.of(self.old)

    def check_new(self, expected):
        probs = SM.check_file(self.path, expected(self.base).bytes(),
                              "reference commit")
        self.assertEqual(probs, [])

    def check_loadable(self, data, label):
        try:
            stref.read(data, "both").close()
        except stref.StError as e:
            self.fail("%s: stref cannot read the file: %s" % (label, e))


if __name__ == "__main__":
    unittest.main()
