"""Property tests: render -> parse gives the same data; no input makes a parser raise."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvslab.doctor.conn_summary import summarize_conns, summarize_proc_ip_vs_conn
from ipvslab.doctor.parsers.ipvsadm_conn import parse_ipvsadm_conn
from ipvslab.doctor.parsers.ipvsadm_list import parse_ipvsadm_list
from ipvslab.doctor.parsers.ipvsadm_stats import parse_ipvsadm_stats
from ipvslab.doctor.parsers.ipvsadm_timeout import parse_ipvsadm_timeout
from ipvslab.doctor.parsers.kernel_release import parse_kernel_release
from ipvslab.doctor.parsers.kube_proxy import (
    parse_kube_proxy_cmdline,
    parse_kube_proxy_config,
    parse_kube_proxy_version,
)
from ipvslab.doctor.parsers.os_release import parse_os_release
from ipvslab.doctor.parsers.paste import split_paste
from ipvslab.doctor.parsers.proc_ip_vs import parse_proc_ip_vs
from ipvslab.doctor.parsers.proc_ip_vs_conn import (
    parse_proc_ip_vs_conn,
    parse_proc_ip_vs_conn_sync,
)
from ipvslab.doctor.parsers.proc_ip_vs_stats import parse_proc_ip_vs_stats
from ipvslab.doctor.parsers.proc_version import parse_proc_version, parse_version_signature
from ipvslab.doctor.parsers.sniff import parse_any
from ipvslab.doctor.parsers.sysctl import parse_sysctl
from ipvslab.doctor.records import (
    ConnEntry,
    DestStats,
    Family,
    ForwardMethod,
    GlobalStats,
    IpvsStatsTable,
    IpvsTable,
    KubeProxyVersion,
    OsRelease,
    Protocol,
    RealServerEntry,
    ServiceEntry,
    ServiceFlags,
    ServiceStats,
    StatsCounters,
    SysctlMap,
    TimeoutUnit,
)
from ipvslab.doctor.render import (
    render_ipvsadm_conn,
    render_ipvsadm_list,
    render_ipvsadm_stats,
    render_kube_proxy_cmdline,
    render_kube_proxy_version,
    render_os_release,
    render_proc_ip_vs,
    render_proc_ip_vs_conn,
    render_proc_ip_vs_conn_sync,
    render_proc_ip_vs_stats,
    render_sysctl,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "doctor"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

v4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
v6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
port = st.integers(0, 65535)
word = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
count = st.integers(0, 2**31 - 1)


@st.composite
def services(draw: st.DrawFn, unit: TimeoutUnit, ipvsadm: bool) -> ServiceEntry:
    family = draw(st.sampled_from(Family))
    addr = v4 if family is Family.IPV4 else v6
    fwmark = draw(st.none() | st.integers(1, 2**32 - 1))
    persistent = draw(st.booleans())
    if family is Family.IPV4:
        netmask = draw(st.integers(0, 2**32 - 1))
    elif ipvsadm:
        netmask = draw(st.integers(0, 128))
    else:
        netmask = draw(st.integers(0, 2**32 - 1))
    # ipvsadm 1.26 prints pe/ops only for persistent services; /proc never prints pe,
    # and never ops for an IPv6 address service.
    one_packet = draw(st.booleans()) and (persistent if ipvsadm else True)
    if not ipvsadm and family is Family.IPV6 and fwmark is None:
        one_packet = False
    pe = draw(st.none() | word) if ipvsadm and persistent else None
    flags = ServiceFlags(
        persistent,
        draw(st.integers(0, 2**31 - 1)) if persistent else None,
        unit,
        netmask if persistent else None,
        one_packet,
        pe,
    )
    dests = tuple(
        RealServerEntry(draw(addr), draw(port), draw(st.sampled_from(ForwardMethod)),
                        draw(st.integers(0, 65535)), draw(count), draw(count))
        for _ in range(draw(st.integers(0, 3)))
    )  # fmt: skip
    if fwmark is not None:
        if not ipvsadm:
            # /proc shows a fwmark service's family only through its real servers.
            family = Family.IPV6 if any(d.address.version == 6 for d in dests) else Family.IPV4
        return ServiceEntry(None, None, 0, fwmark, family, draw(word), flags, dests)
    protocol = draw(st.sampled_from([Protocol.TCP, Protocol.UDP, Protocol.SCTP]))
    return ServiceEntry(protocol, draw(addr), draw(port), None, family, draw(word), flags, dests)


def tables(unit: TimeoutUnit, ipvsadm: bool) -> st.SearchStrategy[IpvsTable]:
    return st.builds(
        IpvsTable,
        st.sampled_from([None, "1.2.1"]),
        st.integers(1, 2**20),
        st.lists(services(unit, ipvsadm), max_size=4).map(tuple),
    ).map(lambda t: IpvsTable(t.version, t.conn_table_size if t.version else None, t.services))


@FAST
@given(tables(TimeoutUnit.JIFFIES, ipvsadm=False))
def test_proc_ip_vs_round_trip(table: IpvsTable) -> None:
    result = parse_proc_ip_vs(render_proc_ip_vs(table))
    assert result.issues == ()
    assert result.value == table


@FAST
@given(tables(TimeoutUnit.SECONDS, ipvsadm=True))
def test_ipvsadm_list_round_trip(table: IpvsTable) -> None:
    text = render_ipvsadm_list(table)
    result = parse_ipvsadm_list(text)
    assert result.issues == ()
    expected = IpvsTable(
        table.version,
        table.conn_table_size,
        tuple(
            s
            if s.flags.persistent
            else ServiceEntry(
                s.protocol, s.address, s.port, s.fwmark, s.family, s.scheduler,
                ServiceFlags(), s.destinations,
            )
            for s in table.services
        ),
    )  # fmt: skip
    assert result.value == expected


STATES = st.sampled_from(["ESTABLISHED", "TIME_WAIT", "FIN_WAIT", "CLOSE", "SYN_RECV", "UDP",
                          "NONE", "ASSURED", "ERR!", "SHUTDOWN_ACK_SENT"])  # fmt: skip


@st.composite
def conns(draw: st.DrawFn, pe: bool = True, origin: bool = False) -> ConnEntry:
    addr = draw(st.sampled_from([v4, v6]))
    name = draw(st.sampled_from(["TCP", "UDP", "SCTP", "IP", "ICMP", "IP_47"]))
    protocol = {p.name: p for p in Protocol}.get(name)
    fwmark = None
    vaddr: Any = draw(addr)
    client = draw(addr)
    if protocol is Protocol.IP:
        fwmark, vaddr = draw(st.integers(0, 2**32 - 1)), None
    pe_name = draw(st.none() | word) if pe else None
    pe_data = draw(st.text("abcdef0123456789@.-", max_size=20)) if pe_name else None
    return ConnEntry(
        protocol, name, client, draw(port), vaddr, draw(port), fwmark,
        draw(draw(st.sampled_from([v4, v6]))), draw(port), draw(STATES),
        draw(st.integers(0, 2**31 - 1) | st.integers(-(2**40), -1)),
        pe_name, pe_data, draw(st.sampled_from(["SYNC", "LOCAL"])) if origin else None,
    )  # fmt: skip


@FAST
@given(st.lists(conns(), max_size=8))
def test_proc_ip_vs_conn_round_trip_and_summary(entries: list[ConnEntry]) -> None:
    text = render_proc_ip_vs_conn(entries)
    result = parse_proc_ip_vs_conn(text)
    assert result.issues == ()
    assert result.value == tuple(entries)
    assert summarize_proc_ip_vs_conn(text) == summarize_conns(entries)


@FAST
@given(st.lists(conns(pe=False, origin=True), max_size=8))
def test_proc_ip_vs_conn_sync_round_trip(entries: list[ConnEntry]) -> None:
    result = parse_proc_ip_vs_conn_sync(render_proc_ip_vs_conn_sync(entries))
    assert result.issues == ()
    assert result.value == tuple(entries)


@FAST
@given(st.lists(conns(), max_size=8), st.booleans())
def test_ipvsadm_conn_round_trip(entries: list[ConnEntry], persistent: bool) -> None:
    result = parse_ipvsadm_conn(render_ipvsadm_conn(entries, persistent_conn=persistent))
    assert result.issues == ()
    expected = [
        e._replace(
            expires=max(e.expires, 0),
            pe_name=e.pe_name if persistent and e.pe_name and e.pe_data else None,
            pe_data=e.pe_data if persistent and e.pe_name and e.pe_data else None,
        )
        for e in entries
    ]
    assert list(result.value) == expected


def _lower_bound(v: int) -> int:
    for limit, scale in ((10**8, 1), (10**9, 10**3), (10**11, 10**6), (10**14, 10**9)):
        if v < limit:
            return v // scale * scale
    return v // 10**12 * 10**12


def _counted(values: list[int]) -> StatsCounters:
    return StatsCounters(*values)  # type: ignore[arg-type]


# From 10**19 ipvsadm prints 8 digits + "T" with no space before it: ambiguous, not tested.
counters = st.lists(st.integers(0, 10**19 - 1), min_size=5, max_size=5).map(_counted)


@FAST
@given(st.lists(services(TimeoutUnit.SECONDS, True), max_size=3), st.data(), st.booleans())
def test_ipvsadm_stats_round_trip(
    svcs: list[ServiceEntry], data: st.DataObject, exact: bool
) -> None:
    table = IpvsStatsTable(
        "1.2.1",
        4096,
        tuple(
            ServiceStats(s.protocol, s.address, s.port, s.fwmark, s.family, data.draw(counters),
                         tuple(DestStats(d.address, d.port, data.draw(counters))
                               for d in s.destinations))
            for s in svcs
        ),
    )  # fmt: skip

    def expect(c: StatsCounters) -> StatsCounters:
        values = [c.conns, c.in_packets, c.out_packets, c.in_bytes, c.out_bytes]
        if exact:
            return StatsCounters(*values)  # type: ignore[arg-type]
        return StatsCounters(*[_lower_bound(v) for v in values],  # type: ignore[arg-type]
                             approximate=any(v >= 10**8 for v in values))  # fmt: skip

    result = parse_ipvsadm_stats(render_ipvsadm_stats(table, exact=exact))
    assert result.issues == ()
    assert [s.counters for s in result.value.services] == [
        expect(s.counters) for s in table.services
    ]
    assert [[d.counters for d in s.destinations] for s in result.value.services] == [
        [expect(d.counters) for d in s.destinations] for s in table.services
    ]


@FAST
@given(counters, counters)
def test_proc_stats_round_trip(totals: StatsCounters, rates: StatsCounters) -> None:
    stats = GlobalStats(totals, rates)
    result = parse_proc_ip_vs_stats(render_proc_ip_vs_stats(stats))
    assert (result.value, result.issues) == (stats, ())


sysctl_key = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}(\.[a-z0-9_]{1,8}){1,4}\Z")
sysctl_value = st.from_regex(r"\A[!-~]([ -~]{0,20}[!-~])?\Z")


@FAST
@given(st.dictionaries(sysctl_key, sysctl_value, min_size=1, max_size=6))
def test_sysctl_round_trip(values: dict[str, str]) -> None:
    result = parse_sysctl(render_sysctl(SysctlMap(values)))
    assert (dict(result.value.values), result.issues) == (values, ())


@FAST
@given(st.dictionaries(st.from_regex(r"\A[A-Z][A-Z0-9_]{0,10}\Z"),
                       st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20),
                       min_size=1, max_size=6))  # fmt: skip
def test_os_release_round_trip(fields: dict[str, str]) -> None:
    result = parse_os_release(render_os_release(OsRelease(fields=fields)))
    assert (dict(result.value.fields), result.issues) == (fields, ())


@FAST
@given(st.lists(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
                        min_size=1), max_size=6), st.booleans())  # fmt: skip
def test_cmdline_argv_round_trip(args: list[str], nul: bool) -> None:
    argv = ["/usr/local/bin/kube-proxy", *args]
    result = parse_kube_proxy_cmdline(render_kube_proxy_cmdline(argv, nul=nul))
    assert list(result.value.argv) == argv


@FAST
@given(st.integers(0, 99), st.integers(0, 999), st.integers(0, 999),
       st.sampled_from(["", "-eks-a5df82a", "+k3s1", "-gke.1200"]))  # fmt: skip
def test_version_round_trip(major: int, minor: int, patch: int, suffix: str) -> None:
    v = KubeProxyVersion(f"v{major}.{minor}.{patch}{suffix}", major, minor, patch, suffix)
    assert parse_kube_proxy_version(render_kube_proxy_version(v)).value == v


@FAST
@given(st.integers(0, 99), st.integers(0, 99), st.integers(0, 999),
       st.from_regex(r"\A(-[a-z0-9.]{1,10})?\Z"))  # fmt: skip
def test_kernel_release_round_trip(major: int, minor: int, patch: int, local: str) -> None:
    text = f"{major}.{minor}.{patch}{local}"
    result = parse_kernel_release(text + "\n")
    assert result.value is not None
    assert (result.value.version, result.value.local) == ((major, minor, patch), local)


# ---------------------------------------------------------------- garbage never raises

PARSERS: list[Callable[..., Any]] = [
    parse_proc_ip_vs, parse_proc_ip_vs_conn, parse_proc_ip_vs_conn_sync, parse_proc_ip_vs_stats,
    parse_ipvsadm_list, parse_ipvsadm_stats, parse_ipvsadm_conn, parse_sysctl, parse_os_release,
    parse_kernel_release, parse_kube_proxy_cmdline, parse_kube_proxy_config,
    parse_kube_proxy_version, summarize_proc_ip_vs_conn, parse_ipvsadm_timeout,
    parse_proc_version, parse_version_signature, split_paste,
]  # fmt: skip
SAMPLES = [p.read_text(encoding="utf-8") for p in sorted(FIXTURES.iterdir()) if p.is_file()]
TOKENS = [
    "FFFF",
    "0000",
    "->",
    "persistent",
    "ops",
    "[",
    "]:",
    ":",
    "FWM",
    "IP",
    "TCP",
    "\0",
    "mask",
    "pe",
    "-",
    "99999999999999999999",
    "\n",
    " ",
    "\t",
    "é",
    "=",
    '"',
    "ipvs:",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SAMPLES))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "cut"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS) | st.text(max_size=5)) + text[i:]
        elif op == "replace":
            text = text[:i] + draw(st.text(max_size=j - i + 1)) + text[j:]
        else:
            text = text[:i]
    return text


@settings(max_examples=300, deadline=None)
@given(mutated() | st.text(max_size=200))
def test_no_parser_raises_on_mutated_or_random_input(text: str) -> None:
    for parser in PARSERS:
        parser(text)
    parse_any(text)


@settings(max_examples=100, deadline=None)
@given(mutated())
def test_mutated_conn_rows_fail_soft_and_agree_with_summary(text: str) -> None:
    result = parse_proc_ip_vs_conn(text)
    assert all(i.line_no >= 0 for i in result.issues)
    assert summarize_proc_ip_vs_conn(text).total == len(result.value)
