"""Seed 002's table (Huawei Cloud CCE FAQ): which problem each node OS shows with
each kube-proxy band, derived by running the no-route-to-host and
one-second-delay scenarios on that kernel preset with that kube-proxy.

The seed's statements, cell by cell:
- kube-proxy <= 1.17 sets conn_reuse_mode=0 on every node: problem 1, for
  every OS. On the kernels that carry c95c07836fa4 (5.16; the fixed EulerOS 2.9
  build, Huawei Cloud EulerOS 2.0 and Ubuntu 22.04 as the presets take them)
  mode 0 with kube-proxy's expire_nodest_conn=1 no longer keeps a reused port on
  a weight-0 server, so the simulation differs there; the report says so.
- kube-proxy 1.19 and later (CCE 1.19.16-r0 and later): EulerOS 2.5 and CentOS
  7.6 have kernels below 4.1 as kube-proxy reads them, so the node default
  (mode 1) stays: problem 2. Ubuntu 18.04: mode 0, problem 1. EulerOS 2.9 with
  an old kernel: problem 1; with the fixed kernel: none. Huawei Cloud EulerOS 2.0
  and Ubuntu 22.04 (kernels above 5.9): none.
- kube-proxy 1.22 and later only stops touching conn_reuse_mode on >= 5.9: the
  same cells as 1.19.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipvslab.reproduce.measure import Measures

NONE = "none"
P1 = "problem 1"
P2 = "problem 2"
BOTH = "problem 1+2"

OSES: tuple[tuple[str, str], ...] = (
    ("euleros-2.5", "EulerOS 2.5"),
    ("centos-7.6", "CentOS 7.6"),
    ("ubuntu-18.04", "Ubuntu 18.04"),
    ("euleros-2.9", "EulerOS 2.9 (old kernel)"),
    ("euleros-2.9-fixed", "EulerOS 2.9 (fixed)"),
    ("hce-2.0", "Huawei Cloud EulerOS 2.0"),
    ("ubuntu-22.04", "Ubuntu 22.04"),
)
BANDS: tuple[tuple[str, str], ...] = (
    ("v1.17.0", "<= 1.17"),
    ("v1.19.0", "1.19-1.21"),
    ("v1.22.0", ">= 1.22"),
)

_NEW_KP = {
    "euleros-2.5": P2,
    "centos-7.6": P2,
    "ubuntu-18.04": P1,
    "euleros-2.9": P1,
    "euleros-2.9-fixed": NONE,
    "hce-2.0": NONE,
    "ubuntu-22.04": NONE,
}
# (preset, kube-proxy version) -> what the seed says.
SEED_TABLE: dict[tuple[str, str], str] = {
    **{(os, "v1.17.0"): P1 for os, _ in OSES},
    **{(os, "v1.19.0"): problem for os, problem in _NEW_KP.items()},
    **{(os, "v1.22.0"): problem for os, problem in _NEW_KP.items()},
}


def classify(no_route: Measures, delay: Measures) -> str:
    """The problem a node shows: 1 when reused ports fail after a rollout, 2 when
    their first SYN is dropped (1 s connects)."""
    p1 = no_route.error_rate_after_event > 0.01
    p2 = delay.first_syn_dropped > 0 and (delay.connect_p99_ms or 0) >= 900
    if p1 and p2:
        return BOTH
    if p1:
        return P1
    if p2:
        return P2
    return NONE


@dataclass(frozen=True)
class Cell:
    preset: str
    kube_proxy: str
    derived: str
    seed: str | None  # None: the seed does not say
    why: str = ""  # where the derived cell differs, what explains it

    @property
    def agrees(self) -> bool | None:
        return None if self.seed is None else self.seed == self.derived


# Why the <= 1.17 row differs on newer kernels (see the module docstring).
BLANKET_ROW_NOTE = (
    "the FAQ's <= 1.17 row is a blanket statement; this kernel carries c95c07836fa4 (5.16),"
    " so with kube-proxy's expire_nodest_conn=1 mode 0 moves a reused port off a weight-0"
    " server"
)
