"""What a ``--what-if`` asks: an action to take, or a setting to change first.

Actions (``rollout=SERVICE``, ``scale=SERVICE:+N``) are what happens to the node;
settings (``sysctl=NAME=VALUE``, ``kernel=PRESET``, ``mode=nftables``) are the
alternatives compared with the node as it is. SERVICE names an IPVS virtual service
as ``VIP:PORT`` (TCP unless written ``UDP/VIP:PORT``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from ipvslab.kernel.presets import resolve_kernel
from ipvslab.kernel.sysctls import SysctlError, Sysctls


class WhatIfError(ValueError):
    """A ``--what-if`` that cannot be understood; the message names it."""


class Kind(StrEnum):
    ROLLOUT = "rollout"
    SCALE = "scale"
    SYSCTL = "sysctl"
    KERNEL = "kernel"
    MODE = "mode"


ACTIONS = (Kind.ROLLOUT, Kind.SCALE)
MODES = ("iptables", "nftables")


@dataclass(frozen=True)
class ServiceRef:
    protocol: str  # TCP or UDP
    address: str
    port: int

    @property
    def label(self) -> str:
        return f"{self.protocol} {self.address}:{self.port}"


@dataclass(frozen=True)
class WhatIf:
    kind: Kind
    text: str  # as the user wrote it
    service: ServiceRef | None = None
    delta: int = 0  # scale: pods added (negative: removed)
    name: str = ""  # kernel text or mode
    # sysctl: (short name, value) pairs, one from a --what-if, several when suggested
    changes: tuple[tuple[str, int], ...] = ()

    @property
    def is_action(self) -> bool:
        return self.kind in ACTIONS


_SERVICE = re.compile(r"^(?:(TCP|UDP)/)?(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d{1,5})$", re.I)


def parse_service(text: str, where: str) -> ServiceRef:
    match = _SERVICE.match(text.strip())
    if match is None:
        raise WhatIfError(
            f"{where}: expected a service as VIP:PORT (or UDP/VIP:PORT), got {text!r}"
        )
    protocol, address, port = match.groups()
    if not 0 < int(port) < 65536:
        raise WhatIfError(f"{where}: port {port} is not 1-65535")
    return ServiceRef((protocol or "TCP").upper(), address.strip("[]"), int(port))


def parse_what_if(text: str) -> WhatIf:
    """One ``--what-if`` value."""
    where = f"--what-if {text}"
    kind_text, sep, rest = text.partition("=")
    try:
        kind = Kind(kind_text.strip().lower())
    except ValueError:
        raise WhatIfError(
            f"{where}: expected one of {', '.join(k.value + '=...' for k in Kind)}"
        ) from None
    if not sep or not rest.strip():
        raise WhatIfError(f"{where}: {kind.value}= needs a value")
    rest = rest.strip()
    if kind is Kind.ROLLOUT:
        return WhatIf(kind, text, service=parse_service(rest, where))
    if kind is Kind.SCALE:
        service_text, colon, delta_text = rest.rpartition(":")
        if not colon or not re.fullmatch(r"[+-]\d{1,5}", delta_text):
            raise WhatIfError(f"{where}: expected scale=VIP:PORT:+N (or :-N)")
        delta = int(delta_text)
        if delta == 0:
            raise WhatIfError(f"{where}: +0 pods changes nothing")
        return WhatIf(kind, text, service=parse_service(service_text, where), delta=delta)
    if kind is Kind.SYSCTL:
        name, eq, value = rest.partition("=")
        short = name.strip().removeprefix("net.ipv4.vs.")
        if short not in Sysctls.names():
            raise WhatIfError(
                f"{where}: {name.strip()!r} is not a net.ipv4.vs sysctl the model has"
                f" ({', '.join(Sysctls.names())})"
            )
        if not eq or not re.fullmatch(r"-?\d{1,9}", value.strip()):
            raise WhatIfError(f"{where}: expected sysctl=NAME=INTEGER")
        try:
            Sysctls(**{short: int(value)})
        except (SysctlError, TypeError) as exc:
            raise WhatIfError(f"{where}: {exc}") from None
        return WhatIf(kind, text, changes=((short, int(value)),))
    if kind is Kind.KERNEL:
        try:
            resolved = resolve_kernel(rest)
        except ValueError as exc:
            raise WhatIfError(f"{where}: {exc}") from None
        if resolved.version[:2] < (3, 10):  # as `--kernel` refuses it (CentOS/RHEL 7's base)
            raise WhatIfError(f"{where}: the model starts at 3.10; {rest} is older")
        return WhatIf(kind, text, name=rest)
    mode = rest.lower()
    if mode not in MODES:
        raise WhatIfError(f"{where}: mode is one of {', '.join(MODES)}")
    return WhatIf(kind, text, name=mode)


def split_what_ifs(texts: list[str]) -> tuple[list[WhatIf], list[WhatIf]]:
    """(actions, settings), each in the order given."""
    parsed = [parse_what_if(t) for t in texts]
    return [w for w in parsed if w.is_action], [w for w in parsed if not w.is_action]
