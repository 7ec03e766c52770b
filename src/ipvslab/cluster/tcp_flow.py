"""One client connection, packet by packet, from connect() to close().

connect() picks the source port in the client pod's namespace; each SYN (the
first and every retransmission, at the client kernel's times) goes through the
dataplane of the client's node, which says which pod it reached; the pod's
stack, or the network where the pod used to be, answers. A SYN|ACK goes back
through the node (which may drop it), the client's ACK completes the handshake,
and after the connection's lifetime it closes in the chosen style.

What a SYN to a pod that is gone meets (reference client-tcp-ports.md §4.2, a
scenario choice since it depends on the CNI): ICMP host unreachable at once
(EHOSTUNREACH), after the neighbour resolution fails (3 broadcast probes ~3 s,
then EHOSTUNREACH), silence (retransmissions until ETIMEDOUT), or another pod
holding the IP (RST, ECONNREFUSED).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ipvslab.cluster.client_tcp import CloseHow
from ipvslab.cluster.dataplane import Forwarded
from ipvslab.cluster.endpoints import ServiceInfo
from ipvslab.cluster.pod_tcp import SynAnswer
from ipvslab.cluster.trace import Result, Trace
from ipvslab.scenario.model import CloseStyle, DeadPodIp

if TYPE_CHECKING:
    from ipvslab.cluster.cluster import ClientPod, Cluster
    from ipvslab.cluster.pods import Pod

# arp_tbl defaults: 3 unicast + 3 broadcast probes, RETRANS_TIME 1 s: ~3 s to FAILED.
ARP_FAILURE_US = 3_000_000
# TCP_TIMEOUT_MIN (2 jiffies): the resend after a suspicious ACK since ~v5.6.
SUSPICIOUS_ACK_RESEND_US = 2_000
SUSPICIOUS_ACK_FAST_SINCE = (5, 6, 0)

_CLOSE_HOW = {
    CloseStyle.SERVER_FIRST: CloseHow.SERVER_FIRST,
    CloseStyle.CLIENT_FIRST: CloseHow.CLIENT_FIRST,
    CloseStyle.CLIENT_RST: CloseHow.CLIENT_RESET,
}


class Attempt:
    """One connect() and, once established, the connection it became."""

    __slots__ = (
        "arp_deadline",
        "client",
        "connect_us",
        "connected",
        "done",
        "ended",
        "entry_before",
        "first",
        "first_dead",
        "hold",
        "ident",
        "pod",
        "pod_key",
        "port",
        "result",
        "sends",
        "service",
        "start",
        "style",
        "timeout_event",
    )

    def __init__(
        self,
        ident: int,
        client: ClientPod,
        service: ServiceInfo,
        port: int,
        start: int,
        style: CloseStyle,
        hold: int | None,
        done: Callable[[Attempt], None] | None,
    ) -> None:
        self.ident = ident
        self.client = client
        self.service = service
        self.port = port
        self.start = start
        self.style = style
        self.hold = hold  # None: held open until released or the pod goes
        self.done = done
        self.connected: Callable[[Attempt], None] | None = None
        self.connect_us = 0
        self.sends = 0
        self.first: Forwarded | None = None
        self.first_dead = False  # the first SYN went to a pod IP that no longer existed
        self.entry_before = ""
        self.pod: Pod | None = None
        self.pod_key = 0  # the 4-tuple key the pod's TCP knows it by (Cluster.pod_source_key)
        self.result: Result | None = None
        self.arp_deadline = 0
        self.ended = False
        self.timeout_event: object = None


def record_attempt(trace: Trace, attempt: Attempt, result: Result, latency: int) -> None:
    """The attempt's row in the trace, once its result is known."""
    first = attempt.first
    pod = attempt.pod
    client = attempt.client
    service = attempt.service
    if first is None:
        decision = path = ""
        first_pod = 0
        weight0 = removed = False
    else:
        decision = first.outcome
        path = first.path
        first_pod = first.pod_ip
        weight0 = first.weight0
        removed = first.removed
    trace.add(
        attempt.start,
        client.name,
        client.ip,
        attempt.port,
        client.node_name,
        service.name,
        service.protocol,
        attempt.entry_before,
        decision,
        path,
        pod.ip if pod is not None else first_pod,
        pod.name if pod is not None else "",
        result,
        max(latency, 0),
        max(attempt.sends - 1, 0),
        weight0,
        removed,
        attempt.first_dead,
    )


class TcpConnector:
    """Runs connection attempts for a cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        # The cluster's engine and trace, fixed for its life (read per connection).
        self.engine = cluster.engine
        self.trace = cluster.trace
        self._next_ident = 0
        self.pending = 0  # attempts whose connect() has not returned yet
        # Open connections by pod IP, in the order they were established: a dict,
        # not a set, so that a pod's exit closes them (and fires their reconnects)
        # in an order that does not depend on where the objects sit in memory.
        self.open_by_pod: dict[int, dict[Attempt, None]] = {}

    # -- connect() ----------------------------------------------------------------

    def connect(
        self,
        client: ClientPod,
        service: ServiceInfo,
        *,
        style: CloseStyle = CloseStyle.SERVER_FIRST,
        hold: int | None = 10_000,
        bind_port: int = 0,
        done: Callable[[Attempt], None] | None = None,
        connected: Callable[[Attempt], None] | None = None,
    ) -> Attempt:
        """connect(): ``done`` is called when the attempt fails or, once established,
        when the connection closes; ``connected`` when it is established."""
        now = self.engine.now
        port = client.netns.connect(service.vip, service.port, now, bind_port)
        self._next_ident += 1
        attempt = Attempt(
            self._next_ident,
            client,
            service,
            port if port > 0 else bind_port,
            now,
            style,
            hold,
            done,
        )
        attempt.connected = connected
        self.pending += 1
        if port < 0:
            # EADDRNOTAVAIL (or EADDRINUSE for a bound port held by a listener).
            self._finish(attempt, Result.EADDRNOTAVAIL, now)
            return attempt
        attempt.entry_before = client.dataplane.entry_label(client.ip, port, service, now)
        timeout = client.connect_timeout
        if timeout is not None and timeout < client.syn.timeout_us:
            attempt.timeout_event = self.engine.after(timeout, self._give_up, attempt)
        self._send_syn(attempt)
        return attempt

    def _send_syn(self, attempt: Attempt) -> None:
        if attempt.result is not None:
            return
        cluster = self.cluster
        now = self.engine.now
        client = attempt.client
        service = attempt.service
        attempt.sends += 1
        forwarded = client.dataplane.syn(client.ip, attempt.port, service, now)
        if attempt.first is None:
            attempt.first = forwarded
        if forwarded.refused:
            self._finish(attempt, Result.ECONNREFUSED, now + cluster.rtt)
            return
        if not forwarded.pod_ip:
            self._retransmit_later(attempt)  # dropped at the node
            return
        pod = cluster.pod_at(forwarded.pod_ip)
        if pod is None:
            if attempt.sends == 1:
                attempt.first_dead = True
            self._to_dead_ip(attempt, now)
            return
        attempt.pod = pod
        if not pod.listening:
            self._finish(attempt, Result.ECONNREFUSED, now + cluster.rtt)
            return
        key = attempt.pod_key = cluster.pod_source_key(client, attempt.port)
        pod_tcp = cluster.pod_tcp(pod)
        answer = pod_tcp.on_syn(key, attempt.ident, now)
        if answer is SynAnswer.CHALLENGE_ACK:
            # The client answers the challenge ACK with RST (which resets the pod's
            # old socket) and sends its SYN again.
            if client.dataplane.synack(client.ip, attempt.port, service, now):
                client.dataplane.client_rst(client.ip, attempt.port, service, now)
                pod_tcp.on_rst(key)
                if client.kernel_version >= SUSPICIOUS_ACK_FAST_SINCE:
                    attempt_time = now + SUSPICIOUS_ACK_RESEND_US
                    self.engine.at(attempt_time, self._send_syn, attempt)
                    return
            self._retransmit_later(attempt)
            return
        if not client.dataplane.handshake(client.ip, attempt.port, service, now):
            self._retransmit_later(attempt)  # the node dropped the SYN|ACK
            return
        pod_tcp.established(key, attempt.ident, now)
        self._established(attempt, pod, now)

    def _retransmit_later(self, attempt: Attempt) -> None:
        schedule = attempt.client.syn
        sends = schedule.sends_us
        if attempt.sends < len(sends):
            self.engine.at(attempt.start + sends[attempt.sends], self._send_syn, attempt)
        else:
            self.engine.at(attempt.start + schedule.timeout_us, self._give_up, attempt)

    def _give_up(self, attempt: Attempt) -> None:
        if attempt.result is None:
            self._finish(attempt, Result.ETIMEDOUT, self.engine.now)

    def _to_dead_ip(self, attempt: Attempt, now: int) -> None:
        policy = self.cluster.dead_pod_ip
        rtt = self.cluster.rtt
        if policy is DeadPodIp.EHOSTUNREACH:
            self._finish(attempt, Result.EHOSTUNREACH, now + rtt)
        elif policy is DeadPodIp.REUSED:
            self._finish(attempt, Result.ECONNREFUSED, now + rtt)
        elif policy is DeadPodIp.ARP_TIMEOUT:
            if not attempt.arp_deadline:
                attempt.arp_deadline = now + ARP_FAILURE_US
                self.engine.at(attempt.arp_deadline, self._arp_failed, attempt)
            self._retransmit_later(attempt)  # queued in the neighbour entry meanwhile
        else:
            self._retransmit_later(attempt)

    def _arp_failed(self, attempt: Attempt) -> None:
        if attempt.result is None:
            self._finish(attempt, Result.EHOSTUNREACH, self.engine.now)

    # -- results -------------------------------------------------------------------

    def _finish(self, attempt: Attempt, result: Result, when: int) -> None:
        """connect() returned an error at ``when``."""
        attempt.result = result
        self.pending -= 1
        if attempt.timeout_event is not None:
            attempt.timeout_event.cancel()  # type: ignore[attr-defined]
        if result is not Result.EADDRNOTAVAIL and attempt.port:
            attempt.client.netns.abort(
                attempt.port, attempt.service.vip, attempt.service.port, self.engine.now
            )
        attempt.connect_us = when - attempt.start
        record_attempt(self.trace, attempt, result, attempt.connect_us)
        attempt.ended = True
        if attempt.done is not None:
            if when > self.engine.now:
                self.engine.at(when, attempt.done, attempt)
            else:
                attempt.done(attempt)

    def _established(self, attempt: Attempt, pod: Pod, now: int) -> None:
        cluster = self.cluster
        attempt.result = Result.ESTABLISHED
        self.pending -= 1
        if attempt.timeout_event is not None:
            attempt.timeout_event.cancel()  # type: ignore[attr-defined]
        attempt.connect_us = now - attempt.start + cluster.rtt
        record_attempt(self.trace, attempt, Result.ESTABLISHED, attempt.connect_us)
        self.open_by_pod.setdefault(pod.ip, {})[attempt] = None
        if attempt.connected is not None:
            attempt.connected(attempt)
        if attempt.hold is not None:
            self.engine.at(now + cluster.rtt + attempt.hold, self.close, attempt, attempt.style)

    def close(self, attempt: Attempt, style: CloseStyle) -> None:
        """The connection ends in ``style`` (no-op if it already ended)."""
        if attempt.ended or attempt.result is not Result.ESTABLISHED:
            return
        attempt.ended = True
        cluster = self.cluster
        now = self.engine.now
        client = attempt.client
        service = attempt.service
        client.dataplane.close(client.ip, attempt.port, service, style, now)
        client.netns.close(attempt.port, service.vip, service.port, now, _CLOSE_HOW[style])
        pod = attempt.pod
        if pod is not None:
            open_here = self.open_by_pod.get(pod.ip)
            if open_here is not None:
                open_here.pop(attempt, None)
            cluster.pod_tcp(pod).closed(
                attempt.pod_key,
                style is CloseStyle.SERVER_FIRST,
                now,
            )
        if attempt.done is not None:
            attempt.done(attempt)

    def pod_gone(self, pod: Pod) -> None:
        """The pod's process exited: it closed its open connections first (FIN)."""
        for attempt in list(self.open_by_pod.pop(pod.ip, ())):
            self.close(attempt, CloseStyle.SERVER_FIRST)
