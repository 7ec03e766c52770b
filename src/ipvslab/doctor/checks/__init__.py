"""One module per finding; each exposes ``check(snapshot, facts) -> list[Finding]``.

A check returns nothing when its inputs are missing or the problem is absent;
it never raises on odd input (the snapshot is already validated by the parsers).
"""

from __future__ import annotations

from collections.abc import Callable

from ipvslab.doctor.facts import NodeFacts
from ipvslab.doctor.finding import Finding
from ipvslab.doctor.snapshot import NodeSnapshot

Check = Callable[[NodeSnapshot, NodeFacts], list[Finding]]


def all_checks() -> tuple[Check, ...]:
    """The checks in report order (most fundamental first)."""
    from ipvslab.doctor.checks import (
        exposure,
        graceful_termination,
        ipvs_deprecation,
        kube_proxy_settings,
        persistence,
        port_pressure,
        removed_servers,
    )

    return (
        exposure.check,
        kube_proxy_settings.check,
        graceful_termination.check,
        removed_servers.check,
        persistence.check,
        port_pressure.check,
        ipvs_deprecation.check,
    )
