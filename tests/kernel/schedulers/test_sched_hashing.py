"""dh and sh tables and lookups, hash values worked out by hand from hash_32()."""

from __future__ import annotations

from sched_support import dest, letters, packet, picks, service

from ipvslab.kernel.packet import Protocol
from ipvslab.kernel.schedulers._hashing import fold_addr, hash_32
from ipvslab.kernel.service import ServiceFlags

# Hand computations, hash_32(x, 8) = ((x * 0x61C88647) mod 2**32) >> 24:
#   10.0.0.1  = 0x0A000001: 0x0A*0x61C88647 leaves 0xC6 in the top byte after << 24,
#               + 0x61C88647 -> 0x27C88647 -> 0x27 = 39
#   192.0.2.1 = 0xC0000201: 0xC0*G -> 0x40000000; 0x201*G = (G << 9) + G -> 0xF2D51447;
#               sum 0x32D51447 -> 0x32 = 50
#   192.0.2.2 -> 0x949D9A8E -> 148; 192.0.2.3 -> 0xF66620D5 -> 246
#   192.0.2.1 + port 1000 / 1001 / 1002 -> 42 / 139 / 237


def test_hash_32_matches_the_hand_computed_values() -> None:
    assert hash_32(1, 8) == 0x61
    assert hash_32(0xFFFFFFFF, 32) == 0x9E3779B9  # -GOLDEN_RATIO_32 mod 2**32
    assert hash_32(0x0A000001, 8) == 39
    assert hash_32(0xC0000201, 8) == 50
    assert hash_32(0xC0000202, 8) == 148
    assert hash_32(0xC0000203, 8) == 246
    assert [hash_32(0xC0000201 + p, 8) for p in (1000, 1001, 1002)] == [42, 139, 237]


def test_ipv6_addresses_fold_to_the_xor_of_their_words() -> None:
    import ipaddress

    assert fold_addr(ipaddress.ip_address("::1")) == 1
    assert fold_addr(ipaddress.ip_address("2001:db8::1")) == 0x20010DB9
    assert fold_addr(ipaddress.ip_address("192.0.2.1")) == 0xC0000201


# -- dh --------------------------------------------------------------------------


def test_dh_gives_one_bucket_per_server_whatever_the_weight() -> None:
    """List C, B, A with weights 1, 5, 0: buckets cycle C, B, A regardless."""
    svc = service("dh", ("A", 0), ("B", 5), ("C", 1))
    table = svc.scheduler.buckets  # type: ignore[attr-defined]
    assert letters(table[:6]) == ["C", "B", "A", "C", "B", "A"]


def test_dh_picks_by_the_virtual_address() -> None:
    """VIP 10.0.0.1 -> bucket 39. List B, A: 39 odd -> A. List C, B, A: 39 % 3 = 0 -> C.
    The client address plays no part."""
    svc = service("dh", "A", "B")
    assert picks(svc, 1, packet("192.0.2.1")) == ["A"]
    assert picks(svc, 1, packet("198.51.100.7")) == ["A"]
    svc = service("dh", "A", "B", "C")
    assert picks(svc, 1) == ["C"]


def test_dh_has_no_fallback() -> None:
    """List C, B, A; bucket 39 holds C. C quiesced -> None."""
    svc = service("dh", "A", "B", "C")
    svc.edit_dest(dest(svc, "C"), weight=0)
    assert picks(svc, 1) == [None]


# -- sh --------------------------------------------------------------------------


def test_sh_table_gives_each_server_weight_buckets_and_weight_zero_one() -> None:
    """List B, A with B w=1, A w=2: B, A, A, B, A, A, ...  With B at weight 0 the
    table is rebuilt and looks the same (weight 0 still takes one bucket)."""
    svc = service("sh", ("A", 2), ("B", 1))
    table = svc.scheduler.buckets  # type: ignore[attr-defined]
    assert letters(table[:6]) == ["B", "A", "A", "B", "A", "A"]
    assert letters(table[-1:]) == ["B"]  # bucket 255, 255 % 3 == 0
    svc.edit_dest(dest(svc, "B"), weight=0)
    table = svc.scheduler.buckets  # type: ignore[attr-defined]
    assert letters(table[:6]) == ["B", "A", "A", "B", "A", "A"]


def test_sh_picks_by_the_client_address() -> None:
    """Buckets as above (i % 3 == 0 -> B): 192.0.2.1 -> 50 -> A; .2 -> 148 -> A;
    .3 -> 246 -> B; the client port does not matter without sh-port."""
    svc = service("sh", ("A", 2), ("B", 1))
    assert picks(svc, 1, packet("192.0.2.1")) == ["A"]
    assert picks(svc, 1, packet("192.0.2.2")) == ["A"]
    assert picks(svc, 1, packet("192.0.2.3", port=1)) == ["B"]
    assert picks(svc, 1, packet("192.0.2.3", port=2)) == ["B"]


def test_sh_without_fallback_refuses_when_the_bucket_server_is_quiesced() -> None:
    svc = service("sh", ("A", 2), ("B", 1))
    svc.edit_dest(dest(svc, "B"), weight=0)
    assert picks(svc, 1, packet("192.0.2.3")) == [None]
    assert picks(svc, 1, packet("192.0.2.1")) == ["A"]


def test_sh_fallback_probes_from_twice_the_hash() -> None:
    """192.0.2.3: ihash 246 -> B (weight 0). First probe: roffset 246, index
    (246 + 246) & 255 = 236, 236 % 3 = 2 -> A."""
    svc = service("sh", ("A", 2), ("B", 1), flags=ServiceFlags.SH_FALLBACK)
    svc.edit_dest(dest(svc, "B"), weight=0)
    assert picks(svc, 1, packet("192.0.2.3")) == ["A"]
    svc.edit_dest(dest(svc, "A"), weight=0)
    assert picks(svc, 1, packet("192.0.2.3")) == [None]


def test_sh_port_spreads_one_client_over_servers_by_source_port() -> None:
    """List B, A weight 1 each: even buckets B, odd A. With sh-port, 192.0.2.1 ports
    1000/1001/1002 -> 42/139/237 -> B/A/A; without it all go to bucket 50 -> B.
    ICMP-like protocols (here IPPROTO_IP) hash with port 0."""
    port_svc = service("sh", "A", "B", flags=ServiceFlags.SH_PORT)
    plain = service("sh", "A", "B")
    got = [port_svc.schedule(packet("192.0.2.1", port=p)) for p in (1000, 1001, 1002)]
    assert letters(got) == ["B", "A", "A"]
    assert letters(plain.schedule(packet("192.0.2.1", port=p)) for p in (1000, 1001)) == [
        "B",
        "B",
    ]
    assert picks(port_svc, 1, packet("192.0.2.1", port=1001, protocol=Protocol.IP)) == ["B"]


def test_sh_reshuffles_when_a_server_is_added() -> None:
    """Adding C to list B, A (weights 1) gives C, B, A buckets: 50 % 3 = 2 -> A."""
    svc = service("sh", "A", "B")
    assert picks(svc, 1, packet("192.0.2.1")) == ["B"]
    svc = service("sh", "A", "B", "C")
    assert picks(svc, 1, packet("192.0.2.1")) == ["A"]


def test_sh_and_dh_say_no_destination_without_servers() -> None:
    assert picks(service("sh"), 1) == [None]
    assert picks(service("dh"), 1) == [None]
