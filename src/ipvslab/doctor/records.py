"""Plain data the doctor parsers return: one record type per thing a node shows.

Every record is immutable. Most are frozen dataclasses; ``ConnEntry`` is a
``NamedTuple`` because a node can hold millions of connection entries and a
tuple is built about 2.5 times faster than a frozen dataclass (see
``benchmarks/bench_parse_conn.py``); it is just as immutable and reads the same.

Addresses are ``ipaddress`` objects, ports and counters are ``int``. Fields
whose unit depends on the source say so (``TimeoutUnit``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Generic, NamedTuple, TypeVar

from ipvslab.kernel.dest import ForwardMethod
from ipvslab.kernel.packet import IPAddress, Protocol

__all__ = [
    "ConnEntry",
    "DestStats",
    "Family",
    "ForwardMethod",
    "GlobalStats",
    "IPAddress",
    "IpvsStatsTable",
    "IpvsTable",
    "IpvsTimeouts",
    "KernelRelease",
    "KubeProxyCommandLine",
    "KubeProxySettings",
    "KubeProxyVersion",
    "OsRelease",
    "ParseIssue",
    "ParseResult",
    "ProcVersion",
    "Protocol",
    "RealServerEntry",
    "ServiceEntry",
    "ServiceFlags",
    "ServiceStats",
    "StatsCounters",
    "SysctlMap",
    "TimeoutUnit",
    "VersionSignature",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ParseIssue:
    """One line (or field) a parser could not use; the line was skipped.

    ``line_no`` is 1-based; 0 means the issue is about the input as a whole
    (for example an empty input).
    """

    source: str
    line_no: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line_no}" if self.line_no else self.source
        return f"{where}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParseResult(Generic[T]):
    """What a parser returns: the data it could read and the issues it met."""

    value: T
    issues: tuple[ParseIssue, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.issues


class Family(IntEnum):
    """Address family of a service (fwmark services carry one too)."""

    IPV4 = 4
    IPV6 = 6


class TimeoutUnit(Enum):
    """Unit of a persistence timeout: /proc/net/ip_vs prints jiffies, ipvsadm seconds."""

    JIFFIES = "jiffies"
    SECONDS = "seconds"


@dataclass(frozen=True, slots=True)
class ServiceFlags:
    """Flags of a virtual service.

    ``netmask`` is the persistence netmask as the source prints it: for IPv4 the
    32-bit mask as an int (``0xFFFFFFFF`` = /32); for IPv6 the prefix length from
    ipvsadm, or the raw ``ntohl()``-swapped number from /proc/net/ip_vs
    (``0x80000000`` for /128 on little-endian; UNVERIFIED). ``None`` when not
    persistent.
    """

    persistent: bool = False
    timeout: int | None = None
    timeout_unit: TimeoutUnit = TimeoutUnit.SECONDS
    netmask: int | None = None
    one_packet: bool = False
    pe_name: str | None = None


@dataclass(frozen=True, slots=True)
class RealServerEntry:
    """A real server row (``  -> ...``) under a virtual service."""

    address: IPAddress
    port: int
    forward: ForwardMethod
    weight: int
    active_conns: int
    inactive_conns: int


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """A virtual service with its real servers, in the order the source lists them.

    A fwmark service has ``fwmark`` set, ``protocol`` and ``address`` ``None`` and
    ``port`` 0.
    """

    protocol: Protocol | None
    address: IPAddress | None
    port: int
    fwmark: int | None
    family: Family
    scheduler: str
    flags: ServiceFlags = ServiceFlags()
    destinations: tuple[RealServerEntry, ...] = ()
    # Real-server lines under it that could not be read: their addresses when those
    # were readable, and ``incomplete`` when one was not (then any server missing from
    # ``destinations`` may still be in the service).
    unreadable_dests: tuple[tuple[IPAddress, int], ...] = ()
    incomplete: bool = False

    def may_list(self, address: IPAddress, port: int) -> bool:
        """The server may be in this service although ``destinations`` lacks it."""
        return self.incomplete or (address, port) in self.unreadable_dests

    @property
    def is_fwmark(self) -> bool:
        return self.fwmark is not None


@dataclass(frozen=True, slots=True)
class IpvsTable:
    """``/proc/net/ip_vs`` or ``ipvsadm -Ln``: version line and services."""

    version: str | None
    conn_table_size: int | None
    services: tuple[ServiceEntry, ...] = ()
    # Service lines that could not be read: a service missing from ``services`` may
    # still be on the node.
    unreadable_services: int = 0


class ConnEntry(NamedTuple):
    """One row of ``/proc/net/ip_vs_conn`` (or ``_sync``, or ``ipvsadm -Lnc``).

    ``protocol`` is ``None`` for names the model has no enum for (``ICMP``,
    ``IP_<n>``); ``protocol_name`` always holds the printed name. For a fwmark
    template (``Pro`` ``IP``) the ToIP column is the fwmark: ``fwmark`` is set and
    ``virtual_addr`` is ``None``. ``expires`` is in seconds; it is negative only
    when an old kernel (``%7lu`` era) printed a wrapped, already-due timer.
    ``origin`` is ``SYNC``/``LOCAL`` from ``ip_vs_conn_sync``, else ``None``.
    """

    protocol: Protocol | None
    protocol_name: str
    client_addr: IPAddress
    client_port: int
    virtual_addr: IPAddress | None
    virtual_port: int
    fwmark: int | None
    dest_addr: IPAddress
    dest_port: int
    state: str
    expires: int
    pe_name: str | None = None
    pe_data: str | None = None
    origin: str | None = None

    @property
    def is_template(self) -> bool:
        """Persistence templates have client port 0."""
        return self.client_port == 0

    @property
    def is_invalidated_template(self) -> bool:
        """ip_vs_check_template() sets vport/dport to 0xFFFF on templates it gave up."""
        return self.client_port == 0 and self.virtual_port == 0xFFFF

    @property
    def family(self) -> Family:
        return Family.IPV6 if self.client_addr.version == 6 else Family.IPV4


@dataclass(frozen=True, slots=True)
class StatsCounters:
    """Five IPVS counters (totals or per-second rates).

    ``approximate`` is set when ipvsadm printed any of them with a K/M/G/T
    suffix: the value is then the lower bound (``123K`` -> 123000).
    """

    conns: int
    in_packets: int
    out_packets: int
    in_bytes: int
    out_bytes: int
    approximate: bool = False


@dataclass(frozen=True, slots=True)
class GlobalStats:
    """``/proc/net/ip_vs_stats``: totals since boot and the estimator's rates."""

    totals: StatsCounters
    rates: StatsCounters


@dataclass(frozen=True, slots=True)
class DestStats:
    address: IPAddress
    port: int
    counters: StatsCounters


@dataclass(frozen=True, slots=True)
class ServiceStats:
    """A service row of ``ipvsadm -Ln --stats`` with its real servers."""

    protocol: Protocol | None
    address: IPAddress | None
    port: int
    fwmark: int | None
    family: Family
    counters: StatsCounters
    destinations: tuple[DestStats, ...] = ()


@dataclass(frozen=True, slots=True)
class IpvsStatsTable:
    version: str | None
    conn_table_size: int | None
    services: tuple[ServiceStats, ...] = ()


@dataclass(frozen=True)
class SysctlMap:
    """sysctl keys (dotted, ``net.ipv4.vs.conn_reuse_mode``) to their text values."""

    values: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def get_int(self, key: str) -> int | None:
        """The value as an int, or None when absent or not a single integer."""
        text = self.values.get(key)
        if text is None:
            return None
        try:
            return int(text.strip())
        except ValueError:
            return None

    def ipvs(self) -> dict[str, str]:
        """The ``net.ipv4.vs.*`` keys without their prefix."""
        prefix = "net.ipv4.vs."
        return {k[len(prefix) :]: v for k, v in self.values.items() if k.startswith(prefix)}


@dataclass(frozen=True)
class OsRelease:
    """``/etc/os-release``: the common keys plus every key read."""

    id: str | None = None
    id_like: tuple[str, ...] = ()
    name: str | None = None
    version_id: str | None = None
    version_codename: str | None = None
    pretty_name: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProcVersion:
    """``/proc/version``: the release it names and, on Debian, the real stable version.

    ``Linux version 4.19.0-25-amd64 (...) #1 SMP Debian 4.19.289-2 (2023-08-08)`` ->
    release ``4.19.0-25-amd64``, upstream (4, 19, 289).
    """

    release: str
    upstream: tuple[int, int, int] | None = None
    distro: str | None = None  # "Debian" when the upstream version came from its tag


@dataclass(frozen=True, slots=True)
class VersionSignature:
    """Ubuntu's ``/proc/version_signature``: ``Ubuntu 5.4.0-150.167-generic 5.4.233``.

    ``release`` is the ``uname -r`` it belongs to (``5.4.0-150-generic``), ``upstream``
    the kernel.org stable version the build is based on.
    """

    distro: str
    package: str  # 5.4.0-150.167-generic
    release: str
    upstream: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class KernelRelease:
    """``uname -r`` split as ``major.minor[.patch]`` plus the rest (``local``).

    ``5.10.186-179.751.amzn2.x86_64`` -> (5, 10, 186), local ``-179.751.amzn2.x86_64``.
    """

    text: str
    major: int
    minor: int
    patch: int
    local: str = ""

    @property
    def version(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)


@dataclass(frozen=True, slots=True)
class KubeProxySettings:
    """The kube-proxy settings the doctor looks at, from flags or the config file.

    Durations are in seconds; ``None`` means not set in this source.
    """

    mode: str | None = None
    ipvs_scheduler: str | None = None
    ipvs_sync_period: float | None = None
    ipvs_min_sync_period: float | None = None
    ipvs_tcp_timeout: float | None = None
    ipvs_tcpfin_timeout: float | None = None
    ipvs_udp_timeout: float | None = None
    ipvs_strict_arp: bool | None = None
    ipvs_exclude_cidrs: tuple[str, ...] | None = None
    masquerade_all: bool | None = None
    cluster_cidr: str | None = None
    config_file: str | None = None


@dataclass(frozen=True)
class KubeProxyCommandLine:
    """A kube-proxy command line: argv, every ``--flag`` seen, and the known settings."""

    argv: tuple[str, ...]
    flags: Mapping[str, str]
    settings: KubeProxySettings


@dataclass(frozen=True, slots=True)
class KubeProxyVersion:
    """``Kubernetes v1.22.3`` / ``v1.28.2-eks-a5df82a`` -> (1, 28, 2), suffix ``-eks-a5df82a``."""

    text: str
    major: int
    minor: int
    patch: int
    suffix: str = ""

    @property
    def version(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)


@dataclass(frozen=True, slots=True)
class IpvsTimeouts:
    """``ipvsadm -L --timeout``: the kernel's current tcp, tcpfin and udp timeouts (s).

    ip_vs_set_timeout() writes tcp to ESTABLISHED and tcpfin to FIN_WAIT only;
    TIME_WAIT keeps its 120 s whatever tcpfin says.
    """

    tcp: int
    tcpfin: int
    udp: int
