"""Records back to text, in the exact layouts the kernel and ipvsadm 1.26 print.

These exist for fixtures and round-trip tests (render -> parse -> same data). The
layouts are written from the format strings in ``docs/doctor-formats.md``.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable, Iterator, Mapping

from ipvslab.doctor.parsers._common import format_proc_address, format_text_addrport
from ipvslab.doctor.parsers.proc_ip_vs_conn import HEADER as CONN_HEADER
from ipvslab.doctor.parsers.proc_ip_vs_conn import SYNC_HEADER as CONN_SYNC_HEADER
from ipvslab.doctor.records import (
    ConnEntry,
    Family,
    GlobalStats,
    IPAddress,
    IpvsStatsTable,
    IpvsTable,
    KubeProxyVersion,
    OsRelease,
    ServiceEntry,
    ServiceFlags,
    StatsCounters,
    SysctlMap,
    TimeoutUnit,
)

DEFAULT_HZ = 250


# --------------------------------------------------------------------------- /proc/net/ip_vs


def render_proc_ip_vs(table: IpvsTable, hz: int = DEFAULT_HZ) -> str:
    """``/proc/net/ip_vs``; a timeout held in seconds is printed as ``seconds * hz`` jiffies."""
    out: list[str] = []
    if table.version is not None:
        out.append(
            f"IP Virtual Server version {table.version} (size={table.conn_table_size or 0})\n"
        )
    out.append("Prot LocalAddress:Port Scheduler Flags\n")
    out.append("  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n")
    for svc in table.services:
        out.append(_proc_service_line(svc, hz))
        for d in svc.destinations:
            key = _proc_addrport(d.address, d.port)
            out.append(
                f"  -> {key}      {d.forward.value:<7} {d.weight:<6} "
                f"{d.active_conns:<10} {d.inactive_conns:<10}\n"
            )
    return "".join(out)


def _proc_addrport(addr: IPAddress, port: int) -> str:
    if addr.version == 6:
        return f"[{addr.exploded}]:{port:04X}"
    return f"{int(addr):08X}:{port:04X}"


def _proc_service_line(svc: ServiceEntry, hz: int) -> str:
    flags = svc.flags
    ops = "ops " if flags.one_packet else ""
    if svc.fwmark is not None:
        head = f"FWM  {svc.fwmark:08X} {svc.scheduler} {ops}"
    else:
        assert svc.protocol is not None and svc.address is not None
        key = _proc_addrport(svc.address, svc.port)
        if svc.address.version == 6:
            head = f"{svc.protocol.name}  {key} {svc.scheduler} "
        else:
            head = f"{svc.protocol.name}  {key} {svc.scheduler} {ops} "
    if not flags.persistent:
        return head + "\n"
    timeout = _timeout_in(flags, TimeoutUnit.JIFFIES, hz)
    return head + f"persistent {timeout} {(flags.netmask or 0) & 0xFFFFFFFF:08X}\n"


def _timeout_in(flags: ServiceFlags, unit: TimeoutUnit, hz: int) -> int:
    timeout = flags.timeout or 0
    if flags.timeout_unit is unit:
        return timeout
    return timeout * hz if unit is TimeoutUnit.JIFFIES else timeout // hz


# --------------------------------------------------------------------------- ipvsadm -Ln


def _ipvsadm_service_name(
    protocol: str | None, address: IPAddress | None, port: int, fwmark: int | None, family: Family
) -> str:
    if fwmark is not None:
        return f"FWM  {fwmark} IPv6" if family is Family.IPV6 else f"FWM  {fwmark}"
    assert address is not None
    name = f"{protocol}  {format_text_addrport(address, port)}"
    return name if address.version == 6 else name[:33]


def _ipvsadm_dest_name(addr: IPAddress, port: int) -> str:
    name = format_text_addrport(addr, port)
    return name if addr.version == 6 else name[:28]


def render_ipvsadm_list(table: IpvsTable, hz: int = DEFAULT_HZ) -> str:
    """``ipvsadm -Ln`` as 1.26 prints it (``pe``/``ops`` only after ``persistent``).

    Services are printed in the order given; ipvsadm itself sorts them.
    """
    out: list[str] = []
    if table.version is not None:
        out.append(
            f"IP Virtual Server version {table.version} (size={table.conn_table_size or 0})\n"
        )
    out.append("Prot LocalAddress:Port Scheduler Flags\n")
    out.append("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
    for svc in table.services:
        proto = svc.protocol.name if svc.protocol is not None else None
        name = _ipvsadm_service_name(proto, svc.address, svc.port, svc.fwmark, svc.family)
        line = f"{name} {svc.scheduler}"
        flags = svc.flags
        if flags.persistent:
            line += f" persistent {_timeout_in(flags, TimeoutUnit.SECONDS, hz)}"
            mask = flags.netmask
            if svc.family is Family.IPV4 and mask is not None and mask != 0xFFFFFFFF:
                line += f" mask {ipaddress.IPv4Address(mask & 0xFFFFFFFF)}"
            if svc.family is Family.IPV6 and mask is not None and mask != 128:
                line += f" mask {mask}"
            if flags.pe_name:
                line += f" pe {flags.pe_name}"
            if flags.one_packet:
                line += " ops"
        out.append(line + "\n")
        for d in svc.destinations:
            dname = _ipvsadm_dest_name(d.address, d.port)
            out.append(
                f"  -> {dname:<28} {d.forward.value:<7} {d.weight:<6} "
                f"{d.active_conns:<10} {d.inactive_conns:<10}\n"
            )
    return "".join(out)


# --------------------------------------------------------------------------- ipvsadm --stats


def largenum(value: int, exact: bool = False) -> str:
    """ipvsadm's ``print_largenum()``: 9 columns, K/M/G/T above 10^8 unless exact."""
    if exact:
        digits = str(value)
        return digits.rjust(9 if len(digits) <= 8 else len(digits) + 1)
    if value < 10**8:
        return f"{value:9d}"
    if value < 10**9:
        return f"{value // 10**3:8d}K"
    if value < 10**11:
        return f"{value // 10**6:8d}M"
    if value < 10**14:
        return f"{value // 10**9:8d}G"
    return f"{value // 10**12:8d}T"


def _counters(c: StatsCounters, exact: bool) -> str:
    values = (c.conns, c.in_packets, c.out_packets, c.in_bytes, c.out_bytes)
    return "".join(largenum(v, exact) for v in values)


def render_ipvsadm_stats(table: IpvsStatsTable, exact: bool = False) -> str:
    out: list[str] = []
    if table.version is not None:
        out.append(
            f"IP Virtual Server version {table.version} (size={table.conn_table_size or 0})\n"
        )
    columns = ("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
    out.append(f"{'Prot LocalAddress:Port':<33}" + "".join(f" {c:>8}" for c in columns) + "\n")
    out.append("  -> RemoteAddress:Port\n")
    for svc in table.services:
        proto = svc.protocol.name if svc.protocol is not None else None
        name = _ipvsadm_service_name(proto, svc.address, svc.port, svc.fwmark, svc.family)
        out.append(f"{name:<33}{_counters(svc.counters, exact)}\n")
        for d in svc.destinations:
            dname = _ipvsadm_dest_name(d.address, d.port)
            out.append(f"  -> {dname:<28}{_counters(d.counters, exact)}\n")
    return "".join(out)


# --------------------------------------------------------------------------- connections


def _wrap_expires(expires: int) -> int:
    return expires + (1 << 64) if expires < 0 else expires


def _proc_virtual(entry: ConnEntry) -> str:
    if entry.fwmark is not None:
        if entry.client_addr.version == 6:
            return ipaddress.IPv6Address(entry.fwmark << 96).exploded
        return f"{entry.fwmark:08X}"
    assert entry.virtual_addr is not None
    return format_proc_address(entry.virtual_addr)


def iter_render_proc_ip_vs_conn(entries: Iterable[ConnEntry], header: bool = True) -> Iterator[str]:
    """Lines of ``/proc/net/ip_vs_conn`` (each ends with a newline)."""
    if header:
        yield CONN_HEADER + "\n"
    for e in entries:
        pe = f" {e.pe_name} {e.pe_data or ''}" if e.pe_name is not None else ""
        yield (
            f"{e.protocol_name:<3} {format_proc_address(e.client_addr)} {e.client_port:04X} "
            f"{_proc_virtual(e)} {e.virtual_port:04X} {format_proc_address(e.dest_addr)} "
            f"{e.dest_port:04X} {e.state:<11} {_wrap_expires(e.expires):7d}{pe}\n"
        )


def render_proc_ip_vs_conn(entries: Iterable[ConnEntry], header: bool = True) -> str:
    return "".join(iter_render_proc_ip_vs_conn(entries, header))


def render_proc_ip_vs_conn_sync(entries: Iterable[ConnEntry], header: bool = True) -> str:
    out = [CONN_SYNC_HEADER + "\n"] if header else []
    for e in entries:
        out.append(
            f"{e.protocol_name:<3} {format_proc_address(e.client_addr)} {e.client_port:04X} "
            f"{_proc_virtual(e)} {e.virtual_port:04X} {format_proc_address(e.dest_addr)} "
            f"{e.dest_port:04X} {e.state:<11} {e.origin or 'LOCAL':<6} "
            f"{_wrap_expires(e.expires):7d}\n"
        )
    return "".join(out)


def _text_virtual(entry: ConnEntry) -> str:
    if entry.fwmark is not None:
        if entry.client_addr.version == 6:
            return format_text_addrport(
                ipaddress.IPv6Address(entry.fwmark << 96), entry.virtual_port
            )
        return format_text_addrport(ipaddress.IPv4Address(entry.fwmark), entry.virtual_port)
    assert entry.virtual_addr is not None
    return format_text_addrport(entry.virtual_addr, entry.virtual_port)


def render_ipvsadm_conn(entries: Iterable[ConnEntry], persistent_conn: bool = False) -> str:
    """``ipvsadm -Lnc`` (``--persistent-conn`` adds the PE columns)."""
    out = ["IPVS connection entries\n"]
    if persistent_conn:
        out.append(
            f"pro expire {'state':<11} {'source':<18} {'virtual':<18} {'destination':<18} "
            f"{'pe name':<16} pe_data\n"
        )
    else:
        out.append(f"pro expire {'state':<11} {'source':<18} {'virtual':<18} destination\n")
    for e in entries:
        expires = max(e.expires, 0)
        expire = f"{expires // 60:02d}:{expires % 60:02d}"
        cname = format_text_addrport(e.client_addr, e.client_port)
        vname = _text_virtual(e)
        dname = format_text_addrport(e.dest_addr, e.dest_port)
        head = f"{e.protocol_name:<3} {expire:<6} {e.state:<11} {cname:<18} {vname:<18} "
        if persistent_conn and e.pe_name and e.pe_data:
            out.append(f"{head}{dname:<16} {e.pe_name:<18} {e.pe_data}\n")
        else:
            out.append(f"{head}{dname}\n")
    return "".join(out)


# --------------------------------------------------------------------------- /proc/net/ip_vs_stats


def render_proc_ip_vs_stats(stats: GlobalStats) -> str:
    def row(c: StatsCounters) -> str:
        return (
            f"{c.conns:8X} {c.in_packets:8X} {c.out_packets:8X} "
            f"{c.in_bytes:16X} {c.out_bytes:16X}\n"
        )

    return (
        "   Total Incoming Outgoing         Incoming         Outgoing\n"
        "   Conns  Packets  Packets            Bytes            Bytes\n"
        + row(stats.totals)
        + "\n"
        + " Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n"
        + row(stats.rates)
    )


# --------------------------------------------------------------------------- small files


def render_sysctl(values: SysctlMap | Mapping[str, str]) -> str:
    """``sysctl -a`` lines (``key = value``)."""
    items = values.values if isinstance(values, SysctlMap) else values
    return "".join(f"{k} = {v}\n" for k, v in items.items())


def render_os_release(release: OsRelease) -> str:
    def quote(value: str) -> str:
        escaped = "".join("\\" + c if c in '\\"$`' else c for c in value)
        return f'"{escaped}"'

    return "".join(f"{k}={quote(v)}\n" for k, v in release.fields.items())


def render_kube_proxy_cmdline(argv: Iterable[str], nul: bool = True) -> str:
    """As ``/proc/<pid>/cmdline`` (NUL after every argument) or shell-quoted."""
    args = list(argv)
    if nul:
        return "".join(a + "\0" for a in args)
    return shlex.join(args) + "\n"


def render_kube_proxy_version(version: KubeProxyVersion) -> str:
    return f"Kubernetes {version.text}\n"
