#!/usr/bin/python3
"""cryptref - independent implementation of MindSpore's checkpoint encryption.

The test oracle for encrypted checkpoints (shared/docs/ckpt-format.md §6).
It shares no code with the C implementation: the block layout is written
and parsed here with struct, the ciphers come from python3-cryptography.

Current layout (MindSpore >= 1.7, §6.2), one block per <= 64 MiB of the
plaintext stream, blocks back to back, integers 4-byte little-endian:

    magic(4) [AES-GCM only: tag(16)] block_size(4) iv_len(4)=16 IV(16)
    cipher_len(4) ciphertext            block_size = 24 + cipher_len

  AES-GCM: AES-128/192/256 by key length, 16-byte IV (GHASH-derived J0),
           no AAD, 16-byte tag; cipher_len == plaintext length.
  AES-CBC / SM4-CBC: PKCS#7 padding, cipher_len = 16 * (plain // 16 + 1).
  An empty plaintext gives no block at all (a 0-byte file).

Legacy layout (MindSpore 1.3-1.6, §6.3): magic 0x7F3A5ED8 for both modes,
no tag field; GCM used a 12-byte IV (the first 12 of the 16 stored) and was
never finalized, i.e. plain CTR mode from counter block IV12 || 00000002;
this module computes it with AES-CTR, not with a GCM object.  Blocks of up
to 512 MiB of plaintext.

API
  encrypt(plaintext, key, mode, iv=None, block=BLOCK) -> bytes
      iv: None (fresh random IV per block), 16 bytes (used for every
      block) or a list of 16-byte IVs, one per block.
  decrypt(data, key, mode) -> bytes          (raises CryptError)
  parse_blocks(data, legacy=False) -> [Block] (headers only, raises)
  legacy_encrypt(plaintext, key, mode, iv=None, block=LEGACY_BLOCK)
  legacy_decrypt(data, key, mode) -> bytes
  encrypt_block(plain, key, mode, iv) -> bytes (one current-layout block)
"""

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MODES = ("AES-GCM", "AES-CBC", "SM4-CBC")
MAGIC = {"AES-GCM": 0x7F3A5ED8, "AES-CBC": 0x7F3A5ED9, "SM4-CBC": 0x7F3A5EDA}
MODE_OF_MAGIC = {v: k for k, v in MAGIC.items()}
LEGACY_MAGIC = 0x7F3A5ED8
KEY_LENGTHS = {"AES-GCM": (16, 24, 32), "AES-CBC": (16, 24, 32),
               "SM4-CBC": (16,)}
BLOCK = 64 << 20            # plaintext per block, MindSpore >= 1.7
LEGACY_BLOCK = 512 << 20    # MindSpore 1.3-1.6
IV_LEN = 16
TAG_LEN = 16


class CryptError(ValueError):
    """The data cannot be decrypted (layout, key, mode, tag, padding)."""


class Block:
    """One parsed block header.  off: offset of the magic; cipher_off:
    offset of the ciphertext; tag is None for CBC and legacy blocks."""
    __slots__ = ("off", "magic", "mode", "tag", "tag_off", "block_size",
                 "block_size_off", "iv_len", "iv", "iv_off", "cipher_len",
                 "cipher_len_off", "cipher_off", "end", "legacy")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def __repr__(self):
        return ("Block(off=%d, mode=%s, legacy=%s, block_size=%d, "
                "cipher_len=%d)" % (self.off, self.mode, self.legacy,
                                    self.block_size, self.cipher_len))


def _check_key(key, mode):
    if mode not in MAGIC:
        raise CryptError("unknown mode %r (AES-GCM, AES-CBC or SM4-CBC)"
                         % (mode,))
    if len(key) not in KEY_LENGTHS[mode]:
        raise CryptError("%s needs a key of %s bytes, not %d" % (
            mode, " or ".join(map(str, KEY_LENGTHS[mode])), len(key)))


def _algo(key, mode):
    return algorithms.SM4(key) if mode == "SM4-CBC" else algorithms.AES(key)


def _pad(data):
    p = padding.PKCS7(128).padder()
    return p.update(data) + p.finalize()


def _unpad(data):
    u = padding.PKCS7(128).unpadder()
    try:
        return u.update(data) + u.finalize()
    except ValueError as e:
        raise CryptError("bad padding (wrong key or damaged data): %s" % e)


def _ivs(iv, n):
    if iv is None:
        return [os.urandom(IV_LEN) for _ in range(n)]
    if isinstance(iv, (bytes, bytearray)):
        if len(iv) != IV_LEN:
            raise ValueError("an IV is 16 bytes")
        return [bytes(iv)] * n
    ivs = [bytes(x) for x in iv]
    if len(ivs) != n or any(len(x) != IV_LEN for x in ivs):
        raise ValueError("need %d IVs of 16 bytes" % n)
    return ivs


def _chunks(plaintext, block):
    mv = memoryview(plaintext).cast("B")
    return [mv[i:i + block] for i in range(0, len(mv), block)]


def encrypt_block(plain, key, mode, iv):
    """One current-layout block of `plain` (1 .. 64 MiB bytes)."""
    _check_key(key, mode)
    if mode == "AES-GCM":
        enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        ct = enc.update(plain) + enc.finalize()
        head = struct.pack("<I", MAGIC[mode]) + enc.tag
    else:
        enc = Cipher(_algo(key, mode), modes.CBC(iv)).encryptor()
        ct = enc.update(_pad(bytes(plain))) + enc.finalize()
        head = struct.pack("<I", MAGIC[mode])
    return head + struct.pack("<II", 24 + len(ct), IV_LEN) + iv + \
        struct.pack("<I", len(ct)) + ct


def encrypt(plaintext, key, mode, iv=None, block=BLOCK):
    """What MindSpore >= 1.7 writes for `plaintext` (the checkpoint
    stream) with enc_key=key, enc_mode=mode."""
    _check_key(key, mode)
    chunks = _chunks(plaintext, block)
    ivs = _ivs(iv, len(chunks))
    return b"".join(encrypt_block(c, key, mode, v)
                    for c, v in zip(chunks, ivs))


def parse_blocks(data, legacy=False):
    """Parses every block header of data (current layout, or legacy).
    Checks what MindSpore's reader checks: a known magic, iv_len == 16,
    block_size == 24 + cipher_len, cipher_len > 0, the block inside the
    data.  Does not decrypt."""
    out = []
    off, n = 0, len(data)
    while off < n:
        if n - off < 4:
            raise CryptError("offset %d: %d stray bytes, no block header"
                             % (off, n - off))
        magic, = struct.unpack_from("<I", data, off)
        if legacy:
            if magic != LEGACY_MAGIC:
                raise CryptError("offset %d: bad legacy magic 0x%08x"
                                 % (off, magic))
            mode = None
        else:
            mode = MODE_OF_MAGIC.get(magic)
            if mode is None:
                raise CryptError("offset %d: bad magic 0x%08x" % (off, magic))
        p = off + 4
        tag = tag_off = None
        if mode == "AES-GCM":
            tag_off = p
            p += TAG_LEN
        if n - p < 28:
            raise CryptError("offset %d: truncated block header" % off)
        block_size, iv_len = struct.unpack_from("<II", data, p)
        iv = bytes(data[p + 8:p + 24])
        cipher_len, = struct.unpack_from("<I", data, p + 24)
        if tag_off is not None:
            tag = bytes(data[tag_off:tag_off + TAG_LEN])
        if iv_len != IV_LEN:
            raise CryptError("offset %d: iv_len %d, not 16" % (off, iv_len))
        if cipher_len == 0:
            raise CryptError("offset %d: cipher_len 0" % off)
        if block_size != 24 + cipher_len:
            raise CryptError("offset %d: block_size %d != 24 + cipher_len %d"
                             % (off, block_size, cipher_len))
        cipher_off = p + 28
        if cipher_len > n - cipher_off:
            raise CryptError("offset %d: cipher_len %d runs past the end "
                             "(%d bytes left)" % (off, cipher_len,
                                                  n - cipher_off))
        out.append(Block(off=off, magic=magic, mode=mode, tag=tag,
                         tag_off=tag_off, block_size=block_size,
                         block_size_off=p, iv_len=iv_len, iv=iv,
                         iv_off=p + 8, cipher_len=cipher_len,
                         cipher_len_off=p + 24, cipher_off=cipher_off,
                         end=cipher_off + cipher_len, legacy=legacy))
        off = cipher_off + cipher_len
    return out


def decrypt_blocks(data, key, mode, max_plain=BLOCK):
    """Decrypts data block by block; returns [(Block, plaintext)]."""
    _check_key(key, mode)
    out = []
    for b in parse_blocks(data):
        if b.mode != mode:
            raise CryptError("offset %d: the block is %s, not %s"
                             % (b.off, b.mode, mode))
        ct = bytes(data[b.cipher_off:b.end])
        if mode == "AES-GCM":
            if b.cipher_len > max_plain:
                raise CryptError("offset %d: %d bytes in one block, more "
                                 "than %d" % (b.off, b.cipher_len,
                                              max_plain))
            dec = Cipher(algorithms.AES(key),
                         modes.GCM(b.iv, b.tag)).decryptor()
            try:
                pt = dec.update(ct) + dec.finalize()
            except InvalidTag:
                raise CryptError("offset %d: GCM authentication failed"
                                 % b.off)
        else:
            if b.cipher_len % 16:
                raise CryptError("offset %d: cipher_len %d is not a "
                                 "multiple of 16" % (b.off, b.cipher_len))
            if b.cipher_len > max_plain + 16:
                raise CryptError("offset %d: %d bytes in one block, more "
                                 "than %d + padding" % (b.off, b.cipher_len,
                                                        max_plain))
            dec = Cipher(_algo(key, mode), modes.CBC(b.iv)).decryptor()
            pt = _unpad(dec.update(ct) + dec.finalize())
        out.append((b, pt))
    return out


def decrypt(data, key, mode):
    """The plaintext stream of a current-layout encrypted checkpoint."""
    return b"".join(pt for _, pt in decrypt_blocks(data, key, mode))


# ---- legacy layout (MindSpore 1.3 - 1.6) ----------------------------------

def _legacy_gcm_stream(key, iv):
    # GCM with a 96-bit IV: J0 = IV || 0^31 || 1, data counter starts at
    # inc32(J0) = IV || 00000002.  No tag: this is AES-CTR from there.
    return Cipher(algorithms.AES(key),
                  modes.CTR(iv[:12] + b"\x00\x00\x00\x02"))


def legacy_encrypt_block(plain, key, mode, iv):
    if mode not in ("AES-GCM", "AES-CBC"):
        raise CryptError("the legacy layout has AES-GCM and AES-CBC only")
    _check_key(key, mode)
    if mode == "AES-GCM":
        enc = _legacy_gcm_stream(key, iv).encryptor()
        ct = enc.update(bytes(plain)) + enc.finalize()
    else:
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        ct = enc.update(_pad(bytes(plain))) + enc.finalize()
    return struct.pack("<III", LEGACY_MAGIC, 24 + len(ct), IV_LEN) + iv + \
        struct.pack("<I", len(ct)) + ct


def legacy_encrypt(plaintext, key, mode, iv=None, block=LEGACY_BLOCK):
    """What MindSpore 1.3-1.6 wrote: one magic for both modes, no tag."""
    chunks = _chunks(plaintext, block)
    ivs = _ivs(iv, len(chunks))
    return b"".join(legacy_encrypt_block(c, key, mode, v)
                    for c, v in zip(chunks, ivs))


def legacy_decrypt(data, key, mode):
    _check_key(key, mode)
    out = []
    for b in parse_blocks(data, legacy=True):
        ct = bytes(data[b.cipher_off:b.end])
        if mode == "AES-GCM":
            dec = _legacy_gcm_stream(key, b.iv).decryptor()
            out.append(dec.update(ct) + dec.finalize())
        else:
            dec = Cipher(algorithms.AES(key), modes.CBC(b.iv)).decryptor()
            out.append(_unpad(dec.update(ct) + dec.finalize()))
    return b"".join(out)


# ---- the worked example of the format document (§6.2) ----------------------

EXAMPLE_KEY = bytes(range(16))
EXAMPLE_IV = bytes(range(16, 32))
# the 32-byte global_step file of §1 (Int32, dims [1], value 7)
EXAMPLE_PLAIN = bytes.fromhex(
    "0a1e0a0b676c6f62616c5f73746570120f0801120549"
    "6e7433321a0407000000")
EXAMPLE_CIPHER = {
    "AES-GCM": bytes.fromhex(
        "d85e3a7f" "91a0c514a09860701bf7ef4ccb42266a" "38000000"
        "10000000" "101112131415161718191a1b1c1d1e1f" "20000000"
        "cf80fdbd1ade4beab7749cf1d54a5fc5"
        "faf5218d684fc98c9ab49d92444373e0"),
    "AES-CBC": bytes.fromhex(
        "d95e3a7f" "48000000" "10000000"
        "101112131415161718191a1b1c1d1e1f" "30000000"
        "331978e0c0c793bac4b3439a89e71eafdb4d286cb2265dff6b9b3133fc52"
        "6b68e1d88ea4598e577b866dd26cd0d57eed"),
}


if __name__ == "__main__":
    for m, want in EXAMPLE_CIPHER.items():
        got = encrypt(EXAMPLE_PLAIN, EXAMPLE_KEY, m, iv=EXAMPLE_IV)
        assert got == want, (m, got.hex())
        assert decrypt(want, EXAMPLE_KEY, m) == EXAMPLE_PLAIN
    print("cryptref: worked examples of §6.2 reproduced")
