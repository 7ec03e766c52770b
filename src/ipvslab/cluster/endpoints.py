"""A Service as the proxies see it: its virtual address and the endpoints to use."""

from __future__ import annotations

from dataclasses import dataclass

from ipvslab.cluster.pods import Deployment, Pod


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str
    protocol: str  # "TCP" or "UDP"
    vip: int  # the ClusterIP, as an integer
    port: int
    target_port: int
    affinity_s: int  # ClientIP session affinity timeout in seconds, 0 = none


def desired_endpoints(deployment: Deployment, terminating_fallback: bool) -> list[Pod]:
    """The endpoints a proxy programs for a Service.

    CategorizeEndpoints() (kube-proxy's proxy package): Ready, non-terminating
    endpoints; with ProxyTerminatingEndpoints (KEP-1669, on by default from 1.26),
    serving-terminating ones when no endpoint is ready.
    """
    ready = [p for p in deployment.pods if p.ready]
    if ready or not terminating_fallback:
        return ready
    return [p for p in deployment.pods if p.serving_terminating]
