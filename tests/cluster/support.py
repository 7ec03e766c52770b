"""Shared helpers for the client TCP stack tests.

Expectations come from ../shared/reference/client-tcp-ports.md (kernel code and
its documented behaviour), never from the model's own output.
"""

from __future__ import annotations

import ipaddress

SECOND = 1_000_000
MS = 1_000


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


# A pod on node 1 and the ClusterIP of a Service (kube-proxy IPVS mode).
POD_A = ip("10.244.1.5")
POD_B = ip("10.244.1.6")
CLUSTER_IP = ip("10.96.0.10")
OTHER_SVC = ip("10.96.12.34")
HTTP = 80
