"""mh (Maglev) and the SipHash it is built on.

SipHash vectors are the ones in the kernel's lib/tests/siphash_kunit.c (key bytes
00..0f, message bytes 00..len-1), which come from the reference implementation
(github.com/veorq/SipHash).
"""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest
from sched_support import VIP, dest, letters, packet, server

from ipvslab.kernel.packet import Protocol
from ipvslab.kernel.schedulers._hashing import halfsiphash, hsiphash, hsiphash_u32, siphash
from ipvslab.kernel.schedulers.mh import HASH1_KEY, HASH2_KEY, MaglevHashing, mh_table_size
from ipvslab.kernel.service import ServiceFlags, VirtualService

KEY64 = (0x0706050403020100, 0x0F0E0D0C0B0A0908)
KEY32 = (0x03020100, 0x07060504)
MSG = bytes(range(64))

SIPHASH24 = {
    0: 0x726FDB47DD0E0E31,
    1: 0x74F839C593DC67FD,
    2: 0x0D6C8009D9A94F5A,
    3: 0x85676696D7FB7E2D,
    4: 0xCF2794E0277187B7,
    7: 0xAB0200F58B01D137,
    8: 0x93F5F5799A932462,
    15: 0xA129CA6149BE45E5,
    16: 0x3F2ACC7F57C29BDB,
    63: 0x958A324CEB064572,
}
HSIPHASH_64BIT = {  # SipHash-1-3 truncated to 32 bits
    0: 0x050FC4DC,
    1: 0x7D57CA93,
    4: 0x88D38328,
    7: 0x9BB11140,
    8: 0x8D299A8E,
    15: 0x2A519956,
    16: 0x7D908B66,
    63: 0xB7BBB3A8,
}
HSIPHASH_32BIT = {  # HalfSipHash-1-3
    0: 0x5814C896,
    1: 0xE7E864CA,
    4: 0x7E059EA6,
    7: 0x9D38D9D6,
    8: 0x577999B1,
    15: 0xD0257B04,
    16: 0x8B31D501,
    63: 0x87178304,
}


@pytest.mark.parametrize(("length", "expected"), sorted(SIPHASH24.items()))
def test_siphash_2_4_matches_the_published_vectors(length: int, expected: int) -> None:
    assert siphash(MSG[:length], *KEY64) == expected


@pytest.mark.parametrize(("length", "expected"), sorted(HSIPHASH_64BIT.items()))
def test_hsiphash_on_64_bit_kernels_matches_the_kernel_vectors(length: int, expected: int) -> None:
    assert hsiphash(MSG[:length], *KEY64, word_bits=64) == expected


@pytest.mark.parametrize(("length", "expected"), sorted(HSIPHASH_32BIT.items()))
def test_hsiphash_on_32_bit_kernels_matches_the_kernel_vectors(length: int, expected: int) -> None:
    assert hsiphash(MSG[:length], *KEY32, word_bits=32) == expected
    assert halfsiphash(MSG[:length], *KEY32) == expected


def test_hsiphash_of_a_u32_reads_it_in_little_endian_memory_order() -> None:
    """hsiphash_1u32(0x03020100) == vector[4] in the kernel tests: the same bytes."""
    assert hsiphash_u32(0x03020100, *KEY64) == HSIPHASH_64BIT[4]


# -- mh ----------------------------------------------------------------------------


def mh_service(
    *added: tuple[str, int] | str,
    flags: ServiceFlags = ServiceFlags.NONE,
    tab_index: int = 8,
) -> VirtualService:
    """A service whose mh uses CONFIG_IP_VS_MH_TAB_INDEX=tab_index (8 -> 251 slots)."""
    svc = VirtualService(Protocol.TCP, VIP, 80, scheduler_name="mh", flags=flags)
    svc.scheduler = MaglevHashing(tab_index=tab_index)
    svc.scheduler.init_service(svc)
    for item in added:
        letter, weight = (item, 1) if isinstance(item, str) else item
        svc.add_dest(server(letter, weight))
    return svc


def table(svc: VirtualService) -> list[str | None]:
    sched = svc.scheduler
    assert isinstance(sched, MaglevHashing)
    return letters(sched.lookup)


def test_mh_default_table_size_is_the_kconfig_default_4093() -> None:
    """CONFIG_IP_VS_MH_TAB_INDEX defaults to 12 -> primes[12 - 8] = 4093."""
    assert MaglevHashing().size == 4093
    assert mh_table_size(16) == 65521
    assert [mh_table_size(i) for i in (8, 17)] == [251, 131071]
    with pytest.raises(ValueError):
        mh_table_size(18)


def test_mh_one_server_owns_every_slot() -> None:
    svc = mh_service("A")
    assert Counter(table(svc)) == {"A": 251}


def test_mh_equal_weights_share_the_table_round_by_round() -> None:
    """List B, A, one slot each per round: 251 = 125 rounds + 1, B (first) gets the odd one."""
    svc = mh_service("A", "B")
    assert Counter(table(svc)) == {"B": 126, "A": 125}


def test_mh_weights_set_the_slots_per_round() -> None:
    """List B, A with B=1, A=2 (gcd 1, rshift 0): 3 slots per round; 251 = 83*3 + 2,
    the last partial round gives B 1 and A 1 -> B 84, A 167."""
    svc = mh_service(("A", 2), ("B", 1))
    assert Counter(table(svc)) == {"B": 84, "A": 167}


def test_mh_large_weight_ratios_are_shifted_down() -> None:
    """List B, A with B=100, A=1 on 251 slots (MH_TAB_BITS = 8 // 2 = 4): gcd 1,
    fls(100) = 7, rshift 3. Turns: B = 100 >> 3 = 12, A = 1 >> 3 = 0 -> 1.
    13 per round: 19 rounds = 247 slots, then B takes the last 4 -> B 232, A 19."""
    svc = mh_service(("A", 1), ("B", 100))
    sched = svc.scheduler
    assert isinstance(sched, MaglevHashing)
    assert (sched.gcd, sched.rshift) == (1, 3)
    assert Counter(table(svc)) == {"B": 232, "A": 19}


def test_mh_gcd_of_last_weights_divides_the_turns() -> None:
    """Weights 20 and 10: gcd 10 -> turns 2 and 1, the same table as weights 2 and 1."""
    assert table(mh_service(("A", 20), ("B", 10))) == table(mh_service(("A", 2), ("B", 1)))


def test_mh_first_slot_of_a_server_is_its_siphash_offset() -> None:
    """A alone: it claims slot offset(A) first; the rest follow by skip(A)."""
    a = server("A")
    v = (a.port + int(a.addr)) & 0xFFFFFFFF
    offset = hsiphash_u32(v, *HASH1_KEY) % 251
    skip = hsiphash_u32(v, *HASH2_KEY) % 250 + 1
    svc = mh_service("B")
    svc.add_dest(a)  # list A, B: A claims first in every round
    sched = svc.scheduler
    assert isinstance(sched, MaglevHashing)
    assert sched.lookup[offset] is a
    # A's second claim is offset + skip unless B took it in round one.
    b = dest(svc, "B")
    second = (offset + skip) % 251
    assert sched.lookup[second] in (a, b)


def test_mh_lookup_hashes_the_client_address_into_the_table() -> None:
    svc = mh_service("A", "B", "C")
    sched = svc.scheduler
    assert isinstance(sched, MaglevHashing)
    for client in ("192.0.2.1", "192.0.2.2", "198.51.100.9"):
        v = int(ipaddress.ip_address(client))
        slot = hsiphash_u32(v, *HASH1_KEY) % 251
        assert svc.schedule(packet(client)) is sched.lookup[slot]


def test_mh_quiescing_a_server_keeps_the_table_and_refuses_its_clients() -> None:
    """Weight 0 keeps last_weight, so the table is rebuilt identically; clients that
    land on the quiesced server get no destination (no MH_FALLBACK)."""
    svc = mh_service("A", "B", "C")
    before = table(svc)
    b = dest(svc, "B")
    svc.edit_dest(b, weight=0)
    assert table(svc) == before
    sched = svc.scheduler
    assert isinstance(sched, MaglevHashing)
    refused = 0
    for i in range(1, 60):
        p = packet(f"192.0.2.{i}")
        slot = hsiphash_u32(int(p.client_addr), *HASH1_KEY) % 251
        got = svc.schedule(p)
        if sched.lookup[slot] is b:
            assert got is None
            refused += 1
        else:
            assert got is sched.lookup[slot]
    assert refused > 0


def test_mh_fallback_walks_offsets_to_an_available_server() -> None:
    """With MH_FALLBACK a client of the quiesced B goes to the first available server
    at hsiphash(roffset + addr) for roffset = ihash, ihash + 1, ..."""
    svc = mh_service("A", "B", "C", flags=ServiceFlags.MH_FALLBACK)
    b = dest(svc, "B")
    svc.edit_dest(b, weight=0)
    sched = svc.scheduler
    assert isinstance(sched, MaglevHashing)
    checked = 0
    for i in range(1, 60):
        p = packet(f"192.0.2.{i}")
        v = int(p.client_addr)
        ihash = hsiphash_u32(v, *HASH1_KEY) % 251
        if sched.lookup[ihash] is not b:
            continue
        expected = None
        for k in range(251):
            cand = sched.lookup[hsiphash_u32((k + ihash) % 251 + v, *HASH1_KEY) % 251]
            if cand is not b:
                expected = cand
                break
        assert svc.schedule(p) is expected is not None
        checked += 1
    assert checked > 0


def test_mh_removing_every_weight_empties_the_table() -> None:
    """Servers added with weight 0 have last_weight 0: gcd 0 -> empty table."""
    svc = mh_service(("A", 0), ("B", 0))
    assert set(table(svc)) == {None}
    assert svc.schedule(packet()) is None


def test_mh_port_flag_hashes_the_source_port_too() -> None:
    svc = mh_service("A", "B", "C", flags=ServiceFlags.MH_PORT)
    sched = svc.scheduler
    assert isinstance(sched, MaglevHashing)
    base = int(ipaddress.ip_address("192.0.2.1"))
    for port in (1000, 1001, 1002, 1003):
        slot = hsiphash_u32(base + port, *HASH1_KEY) % 251
        assert svc.schedule(packet("192.0.2.1", port=port)) is sched.lookup[slot]
