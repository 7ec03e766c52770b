"""The hash functions the hashing schedulers (dh, sh, mh) rely on.

* ``hash_32``: include/linux/hash.h, the generic multiplicative hash (multiply by
  GOLDEN_RATIO_32 modulo 2**32, keep the top ``bits`` bits). Architectures with
  HAVE_ARCH__HASH_32 may differ; only the generic one is modelled.
* ``fold_addr``: how ip_vs_sh.c / ip_vs_dh.c / ip_vs_mh.c turn an address into one
  32-bit host-order number (IPv6: XOR of the four 32-bit words).
* SipHash: lib/siphash.c. The kernel's ``hsiphash()`` is SipHash-1-3 truncated to
  32 bits on 64-bit kernels and HalfSipHash-1-3 on 32-bit kernels; mh uses it.

Everything here is pure integer arithmetic.
"""

from __future__ import annotations

from ipvslab.kernel.packet import IPAddress

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF

GOLDEN_RATIO_32 = 0x61C88647


def hash_32(val: int, bits: int) -> int:
    """hash_32(): the top ``bits`` bits of ``val * GOLDEN_RATIO_32`` (u32 arithmetic)."""
    return ((val & MASK32) * GOLDEN_RATIO_32 & MASK32) >> (32 - bits)


def fold_addr(addr: IPAddress) -> int:
    """ntohl(addr_fold): an IPv4 address as a number, an IPv6 one XOR-folded to 32 bits.

    The kernel XORs the four big-endian words and then applies ntohl(); byte
    swapping distributes over XOR, so this equals XOR of the words read big-endian.
    """
    value = int(addr)
    if addr.version == 4:
        return value
    return (value >> 96 ^ value >> 64 ^ value >> 32 ^ value) & MASK32


# -- SipHash (64-bit state) ------------------------------------------------------

_SIP_C0 = 0x736F6D6570736575  # "somepseudorandomlygeneratedbytes"
_SIP_C1 = 0x646F72616E646F6D
_SIP_C2 = 0x6C7967656E657261
_SIP_C3 = 0x7465646279746573


def _rotl64(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & MASK64


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & MASK64
    v1 = _rotl64(v1, 13) ^ v0
    v0 = _rotl64(v0, 32)
    v2 = (v2 + v3) & MASK64
    v3 = _rotl64(v3, 16) ^ v2
    v0 = (v0 + v3) & MASK64
    v3 = _rotl64(v3, 21) ^ v0
    v2 = (v2 + v1) & MASK64
    v1 = _rotl64(v1, 17) ^ v2
    v2 = _rotl64(v2, 32)
    return v0, v1, v2, v3


def siphash(data: bytes, k0: int, k1: int, c_rounds: int = 2, d_rounds: int = 4) -> int:
    """SipHash-c-d with the two 64-bit key words k0, k1; returns the 64-bit value.

    ``k0``/``k1`` are siphash_key_t.key[0]/[1] (the little-endian halves of the
    16-byte key of the reference implementation).
    """
    v0 = _SIP_C0 ^ k0
    v1 = _SIP_C1 ^ k1
    v2 = _SIP_C2 ^ k0
    v3 = _SIP_C3 ^ k1
    length = len(data)
    full = length - length % 8
    for off in range(0, full, 8):
        m = int.from_bytes(data[off : off + 8], "little")
        v3 ^= m
        for _ in range(c_rounds):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    b = ((length & 0xFF) << 56) | int.from_bytes(data[full:], "little")
    v3 ^= b
    for _ in range(c_rounds):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(d_rounds):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


# -- HalfSipHash (32-bit state), the 32-bit kernels' hsiphash -----------------------

_HSIP_C2 = 0x6C796765
_HSIP_C3 = 0x74656462


def _rotl32(x: int, b: int) -> int:
    return ((x << b) | (x >> (32 - b))) & MASK32


def _hsipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & MASK32
    v1 = _rotl32(v1, 5) ^ v0
    v0 = _rotl32(v0, 16)
    v2 = (v2 + v3) & MASK32
    v3 = _rotl32(v3, 8) ^ v2
    v0 = (v0 + v3) & MASK32
    v3 = _rotl32(v3, 7) ^ v0
    v2 = (v2 + v1) & MASK32
    v1 = _rotl32(v1, 13) ^ v2
    v2 = _rotl32(v2, 16)
    return v0, v1, v2, v3


def halfsiphash(data: bytes, k0: int, k1: int, c_rounds: int = 1, d_rounds: int = 3) -> int:
    """HalfSipHash-c-d with 32-bit key words and 32-bit output, as lib/siphash.c on 32-bit."""
    v0 = k0 & MASK32
    v1 = k1 & MASK32
    v2 = _HSIP_C2 ^ v0
    v3 = _HSIP_C3 ^ v1
    length = len(data)
    full = length - length % 4
    for off in range(0, full, 4):
        m = int.from_bytes(data[off : off + 4], "little")
        v3 ^= m
        for _ in range(c_rounds):
            v0, v1, v2, v3 = _hsipround(v0, v1, v2, v3)
        v0 ^= m
    b = ((length & 0xFF) << 24) | int.from_bytes(data[full:], "little")
    v3 ^= b
    for _ in range(c_rounds):
        v0, v1, v2, v3 = _hsipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(d_rounds):
        v0, v1, v2, v3 = _hsipround(v0, v1, v2, v3)
    return v1 ^ v3


def hsiphash(data: bytes, k0: int, k1: int, word_bits: int = 64) -> int:
    """The kernel's hsiphash(): SipHash-1-3 cut to 32 bits (64-bit), else HalfSipHash-1-3."""
    if word_bits == 64:
        return siphash(data, k0, k1, 1, 3) & MASK32
    if word_bits == 32:
        return halfsiphash(data, k0, k1, 1, 3)
    raise ValueError(f"word_bits must be 32 or 64, got {word_bits}")


def hsiphash_u32(value: int, k0: int, k1: int, word_bits: int = 64) -> int:
    """hsiphash(&v, sizeof(v), key) for an ``unsigned int v`` on a little-endian host."""
    return hsiphash((value & MASK32).to_bytes(4, "little"), k0, k1, word_bits)
