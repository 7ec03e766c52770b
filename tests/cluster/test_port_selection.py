"""Which port-selection era a kernel runs (reference §1.3), and SYN timing (§4.5)."""

from __future__ import annotations

import itertools

import pytest

from ipvslab.cluster.port_picker import HostPorts, PortSelection, era_caveat, port_selection_for
from ipvslab.cluster.syn_timing import syn_send_offsets
from ipvslab.kernel.presets import resolve_kernel

from .support import SECOND

S = PortSelection


@pytest.mark.parametrize(
    ("version", "era"),
    [
        ((3, 10, 0), S.GLOBAL_HINT),  # CentOS 7 numbering
        ((4, 1, 52), S.GLOBAL_HINT),
        ((4, 2, 0), S.GLOBAL_HINT_EVEN_START),
        ((4, 5, 7), S.GLOBAL_HINT_EVEN_START),
        ((4, 6, 0), S.GLOBAL_HINT_PARITY),
        ((4, 15, 0), S.GLOBAL_HINT_PARITY),  # Ubuntu 18.04
        ((4, 19, 248), S.GLOBAL_HINT_PARITY),
        ((4, 19, 249), S.PERTURB_TABLE_65536),  # stable backport of the 2022 series
        ((5, 4, 0), S.GLOBAL_HINT_PARITY),  # Ubuntu 20.04 GA kernel
        ((5, 10, 124), S.GLOBAL_HINT_PARITY),
        ((5, 10, 125), S.PERTURB_TABLE_65536),
        ((5, 12, 0), S.PERTURB_TABLE_256),
        ((5, 15, 0), S.PERTURB_TABLE_256),
        ((5, 17, 0), S.PERTURB_TABLE_256),
        ((5, 18, 0), S.PERTURB_TABLE_65536),
        ((6, 1, 0), S.PERTURB_TABLE_65536),
        ((6, 8, 0), S.PERTURB_TABLE_65536),
    ],
)
def test_kernel_version_maps_to_its_era(version: tuple[int, int, int], era: PortSelection) -> None:
    assert port_selection_for(version) == era


def test_a_vendor_kernel_can_force_the_era() -> None:
    host = HostPorts((4, 18, 0), seed=1, selection=S.PERTURB_TABLE_65536)
    assert host.selection == S.PERTURB_TABLE_65536
    assert len(host.perturb) == 65536


def test_host_ports_need_a_seed_or_a_random_source() -> None:
    with pytest.raises(ValueError, match="seed"):
        HostPorts((6, 1, 0))


def test_table_sizes_per_era() -> None:
    assert len(HostPorts((5, 15, 0), seed=1).perturb) == 256
    assert HostPorts((4, 19, 0), seed=1).perturb == []


def test_resalt_windows_last_ten_seconds() -> None:
    host = HostPorts((6, 1, 0), seed=3, uptime_us=123_456_789)
    salt, start, end = host.salt_window(0)
    assert start <= 0 < end
    assert end - start == 10 * SECOND
    assert host.salt_window(end)[0] == (salt + 1) & 0xFFFFFFFF
    assert host.salt_window(end - 1)[0] == salt


def test_syn_retransmissions_double_up_to_v6_4() -> None:
    schedule = syn_send_offsets((5, 15, 0), 6)
    assert schedule.sends_us == tuple(s * SECOND for s in (0, 1, 3, 7, 15, 31, 63))
    assert schedule.timeout_us == 127 * SECOND
    assert schedule.retransmissions == 6


def test_syn_retransmissions_are_linear_first_from_v6_5() -> None:
    schedule = syn_send_offsets((6, 6, 0), 6)
    assert schedule.sends_us == tuple(s * SECOND for s in (0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67))
    assert schedule.timeout_us == 131 * SECOND


def test_fewer_syn_retries_give_up_sooner() -> None:
    # tcp_syn_retries=2: SYNs at 0, 1, 3 s; the timer after the last fires at 7 s.
    schedule = syn_send_offsets((4, 19, 0), 2)
    assert schedule.sends_us == (0, SECOND, 3 * SECOND)
    assert schedule.timeout_us == 7 * SECOND
    assert schedule.sent_before(2 * SECOND) == 2


def test_syn_rto_is_capped_at_two_minutes() -> None:
    schedule = syn_send_offsets((5, 4, 0), 9)
    gaps = [b - a for a, b in itertools.pairwise(schedule.sends_us)]
    assert max(gaps) == 120 * SECOND
    assert schedule.timeout_us - schedule.sends_us[-1] == 120 * SECOND


def test_bad_syn_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="tcp_syn_retries"):
        syn_send_offsets((6, 1, 0), 0)
    with pytest.raises(ValueError, match=r"before v6\.5"):
        syn_send_offsets((5, 15, 0), 6, linear_timeouts=4)


@pytest.mark.parametrize(
    ("release", "era"),
    [
        ("4.19.91-26.al7.x86_64", S.GLOBAL_HINT_PARITY),  # Alibaba Cloud Linux 2
        ("4.19.36-vhulk1907.1.0.h1665.eulerosv2r8.aarch64", S.GLOBAL_HINT_PARITY),
        ("5.10.134-13.an8.x86_64", S.PERTURB_TABLE_65536),  # Anolis 8, past 5.10.125
        ("5.10.210-201.852.amzn2.x86_64", S.PERTURB_TABLE_65536),  # Amazon Linux 2
        ("6.1.0-18-cloud-amd64", S.PERTURB_TABLE_65536),  # Debian 12 cloud image
        ("6.6.0-28.0.0.34.oe2403.x86_64", S.PERTURB_TABLE_65536),  # openEuler 24.03
    ],
)
def test_cloud_kernel_release_strings_map_to_their_era(release: str, era: PortSelection) -> None:
    assert port_selection_for(resolve_kernel(release).version) == era


def test_a_distro_build_hiding_its_sublevel_gets_a_caveat() -> None:
    version = resolve_kernel("5.15.0-91-generic").version  # Ubuntu 22.04
    assert port_selection_for(version) == S.PERTURB_TABLE_256
    caveat = era_caveat(version)
    assert caveat is not None
    assert "PERTURB_TABLE_65536" in caveat
    assert era_caveat((5, 15, 60)) is None
    assert era_caveat((4, 15, 0)) is None  # no stable tree of 4.15 took the series
