"""Pods, their IPs and lifecycle, and the Deployment controller that replaces them.

A pod is created on a node, becomes Ready after its readiness delay, and on
deletion turns Terminating: its endpoint stops being ready at once, the app
keeps accepting for ``serve_after_sigterm`` (at most the grace period), then the
process exits and the pod's network namespace, and with it the pod IP, is gone.

The Deployment controller follows the rolling-update rules of the Kubernetes
Deployment controller in outline: at most ``replicas + maxSurge`` pods that are
not terminating, at least ``replicas - maxUnavailable`` ready ones; maxSurge
rounds up and maxUnavailable down from a percentage, and both zero is refused
by the API (so maxUnavailable becomes 1 here, as the API's validation demands
one of them be positive). Terminating pods do not count, as the ReplicaSet
controller ignores pods with a deletionTimestamp.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from ipvslab.cluster.errors import CapacityError
from ipvslab.cluster.pod_tcp import PodTcp
from ipvslab.engine import Engine


class PodPhase(IntEnum):
    PENDING = 0  # started, not Ready yet
    READY = 1
    TERMINATING = 2  # deleted, app may still accept
    GONE = 3  # process exited, IP removed


@dataclass(eq=False, slots=True)
class Pod:
    name: str
    service: str
    index: int  # creation order within its service
    revision: int  # the Deployment revision (ReplicaSet) it belongs to
    node: int
    ip: int
    created_at: int
    phase: PodPhase = PodPhase.PENDING
    ready_at: int | None = None
    deleted_at: int | None = None
    listening: bool = True  # the app accepts connections
    gone_at: int | None = None
    tcp: PodTcp = field(default_factory=PodTcp)  # its server-side sockets

    @property
    def alive(self) -> bool:
        """The pod's IP exists and its stack answers."""
        return self.phase is not PodPhase.GONE

    @property
    def ready(self) -> bool:
        return self.phase is PodPhase.READY

    @property
    def serving_terminating(self) -> bool:
        return self.phase is PodPhase.TERMINATING and self.listening


def _resolve(value: int | str, replicas: int, round_up: bool) -> int:
    """maxSurge / maxUnavailable: an absolute count or a percentage of replicas."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%"):
        return int(text)
    share = float(text[:-1]) * replicas / 100
    return math.ceil(share) if round_up else math.floor(share)


@dataclass(slots=True)
class PodTemplate:
    readiness_delay: int
    termination_grace: int
    serve_after_sigterm: int


class IpAllocator:
    """host-local IPAM per node: a /24 per node, addresses handed out in order and
    reused only after the range wrapped (host-local resumes after the last one)."""

    def __init__(self, base: int, nodes: int) -> None:
        self._base = base
        self._next = [2] * nodes
        self._used: set[int] = set()

    def node_network(self, node: int) -> int:
        return self._base + (node << 8)

    def allocate(self, node: int) -> int:
        network = self.node_network(node)
        for _ in range(253):
            host = self._next[node]
            self._next[node] = 2 if host >= 254 else host + 1
            ip = network + host
            if ip not in self._used:
                self._used.add(ip)
                return ip
        raise CapacityError(
            f"node {node} has no free pod IP left (253 per node, a /24 of the pod CIDR);"
            " spread the pods over more nodes"
        )

    def release(self, ip: int) -> None:
        self._used.discard(ip)


@dataclass(eq=False)
class Deployment:
    """The pods of one Service and the controller keeping ``replicas`` of them."""

    service: str
    replicas: int
    template: PodTemplate
    max_surge: int | str
    max_unavailable: int | str
    place: Callable[[int], int]  # pod index -> node
    engine: Engine
    ips: IpAllocator
    on_change: Callable[[], None]  # endpoints changed (kube-proxy watches these)
    registry: dict[int, Pod]  # live pods by IP, shared by every Deployment of the cluster
    on_gone: Callable[[Pod], None] = lambda pod: None
    pods: list[Pod] = field(default_factory=list)
    revision: int = 0
    created: int = 0
    log: list[tuple[int, str, str]] = field(default_factory=list)  # (time, pod, event)

    # -- what the endpoints controller sees --------------------------------------

    def live_pods(self) -> list[Pod]:
        return [p for p in self.pods if p.phase is not PodPhase.GONE]

    def pod_by_ip(self) -> dict[int, Pod]:
        return {p.ip: p for p in self.pods if p.alive}

    def _active(self) -> list[Pod]:
        return [p for p in self.pods if p.phase in (PodPhase.PENDING, PodPhase.READY)]

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Create the initial pods, Ready at time 0 (the run starts with them up)."""
        for _ in range(self.replicas):
            pod = self._create()
            pod.phase = PodPhase.READY
            pod.ready_at = self.engine.now
            self.log.append((self.engine.now, pod.name, "ready"))

    def _create(self) -> Pod:
        index = self.created
        self.created += 1
        node = self.place(index)
        pod = Pod(
            name=f"{self.service}-{index}",
            service=self.service,
            index=index,
            revision=self.revision,
            node=node,
            ip=self.ips.allocate(node),
            created_at=self.engine.now,
        )
        self.pods.append(pod)
        self.registry[pod.ip] = pod
        self.log.append((self.engine.now, pod.name, "created"))
        return pod

    def _schedule_ready(self, pod: Pod) -> None:
        self.engine.after(self.template.readiness_delay, self._become_ready, pod)

    def _become_ready(self, pod: Pod) -> None:
        if pod.phase is not PodPhase.PENDING:
            return
        pod.phase = PodPhase.READY
        pod.ready_at = self.engine.now
        self.log.append((self.engine.now, pod.name, "ready"))
        self.on_change()
        self._reconcile()

    def delete(self, pod: Pod) -> None:
        """Graceful deletion: Terminating now, the app exits after serve_after_sigterm."""
        if pod.phase in (PodPhase.TERMINATING, PodPhase.GONE):
            return
        pod.phase = PodPhase.TERMINATING
        pod.deleted_at = self.engine.now
        self.log.append((self.engine.now, pod.name, "terminating"))
        linger = min(self.template.serve_after_sigterm, self.template.termination_grace)
        self.engine.after(linger, self._exit, pod)
        self.on_change()

    def set_ready(self, pod: Pod, ready: bool) -> None:
        """The readiness probe fails (the endpoint leaves the ready set) or passes again."""
        if pod.phase is PodPhase.READY and not ready:
            pod.phase = PodPhase.PENDING
            self.log.append((self.engine.now, pod.name, "not-ready"))
            self.on_change()
        elif pod.phase is PodPhase.PENDING and ready:
            self._become_ready(pod)

    def kill(self, pod: Pod) -> None:
        """Force deletion (grace 0) or a crash: the pod and its IP are gone at once."""
        if pod.phase is PodPhase.GONE:
            return
        pod.deleted_at = pod.deleted_at if pod.deleted_at is not None else self.engine.now
        self._exit(pod)
        self._reconcile()

    def _exit(self, pod: Pod) -> None:
        if pod.phase is PodPhase.GONE:
            return
        pod.phase = PodPhase.GONE
        pod.listening = False
        pod.gone_at = self.engine.now
        self.on_gone(pod)
        if self.registry.get(pod.ip) is pod:
            del self.registry[pod.ip]
        self.ips.release(pod.ip)
        self.log.append((self.engine.now, pod.name, "gone"))
        self.on_change()

    # -- the controller ----------------------------------------------------------

    def rollout(self) -> None:
        """A new revision (kubectl rollout restart / a new image): replace every pod."""
        self.revision += 1
        self.log.append((self.engine.now, self.service, f"rollout to revision {self.revision}"))
        self._reconcile()

    def scale(self, replicas: int) -> None:
        self.replicas = replicas
        self.log.append((self.engine.now, self.service, f"scaled to {replicas}"))
        self._reconcile()

    def _reconcile(self) -> None:
        replicas = self.replicas
        surge = _resolve(self.max_surge, replicas, round_up=True)
        unavailable = _resolve(self.max_unavailable, replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        while True:
            active = self._active()
            new = [p for p in active if p.revision == self.revision]
            old = [p for p in active if p.revision != self.revision]
            ready = [p for p in active if p.ready]
            changed = False
            # Scale up the new revision within maxSurge.
            if len(new) < replicas and len(active) < replicas + surge:
                pod = self._create()
                self._schedule_ready(pod)
                changed = True
            # Scale down old pods while enough stay ready (oldest first).
            elif old and len(ready) - 1 >= replicas - unavailable:
                victim = next((p for p in old if not p.ready), None) or old[0]
                self.delete(victim)
                changed = True
            # Plain scale-in of the current revision.
            elif not old and len(new) > replicas:
                victim = next((p for p in reversed(new) if not p.ready), None) or new[-1]
                self.delete(victim)
                changed = True
            if not changed:
                return
