"""One UDP request/response from a client pod (a DNS-style query with retries).

The datagram goes through the client node's dataplane; a live pod answers; a
pod that is gone answers with nothing or an ICMP error, per the scenario's
dead-pod-IP choice (a connected UDP socket reports ICMP host unreachable as
EHOSTUNREACH and port unreachable as ECONNREFUSED); without an answer the
client tries again from the same port after its timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ipvslab.cluster.tcp_flow import ARP_FAILURE_US, Attempt
from ipvslab.cluster.trace import Result
from ipvslab.scenario.model import CloseStyle, DeadPodIp

if TYPE_CHECKING:
    from ipvslab.cluster.cluster import ClientPod, Cluster
    from ipvslab.cluster.endpoints import ServiceInfo


class UdpRequester:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._ident = 0
        self.pending = 0  # requests without an answer or an error yet

    def request(
        self,
        client: ClientPod,
        service: ServiceInfo,
        *,
        port: int = 0,
        tries: int = 3,
        timeout: int = 1_000_000,
        done: Callable[[Attempt], None] | None = None,
    ) -> Attempt:
        cluster = self.cluster
        if not port:
            # udp_lib_get_port(): a random start in ip_local_port_range.
            low, high = client.spec.sysctls.ip_local_port_range
            port = client.rng.randint(low, high)
        self._ident += 1
        self.pending += 1
        attempt = Attempt(
            self._ident, client, service, port, cluster.engine.now, CloseStyle.CLIENT_RST, 0, done
        )
        attempt.entry_before = client.dataplane.entry_label(
            client.ip, port, service, cluster.engine.now
        )
        self._send(attempt, tries, timeout)
        return attempt

    def _send(self, attempt: Attempt, tries: int, timeout: int) -> None:
        if attempt.result is not None:
            return
        cluster = self.cluster
        now = cluster.engine.now
        client = attempt.client
        attempt.sends += 1
        forwarded = client.dataplane.datagram(client.ip, attempt.port, attempt.service, now)
        if attempt.first is None:
            attempt.first = forwarded
        if forwarded.refused:
            self._finish(attempt, Result.ECONNREFUSED, now + cluster.rtt)
            return
        pod = cluster.pod_at(forwarded.pod_ip) if forwarded.pod_ip else None
        if forwarded.pod_ip and pod is None:
            if attempt.sends == 1:
                attempt.first_dead = True
            policy = cluster.dead_pod_ip
            if policy is DeadPodIp.EHOSTUNREACH:
                self._finish(attempt, Result.EHOSTUNREACH, now + cluster.rtt)
                return
            if policy is DeadPodIp.REUSED:
                self._finish(attempt, Result.ECONNREFUSED, now + cluster.rtt)
                return
            if policy is DeadPodIp.ARP_TIMEOUT:
                self._finish(attempt, Result.EHOSTUNREACH, now + ARP_FAILURE_US)
                return
        elif pod is not None:
            attempt.pod = pod
            if not pod.listening:
                self._finish(attempt, Result.ECONNREFUSED, now + cluster.rtt)
                return
            client.dataplane.reply(client.ip, attempt.port, attempt.service, now)
            self._finish(attempt, Result.ESTABLISHED, now + cluster.rtt)
            return
        # No answer: try again from the same socket after the timeout.
        if attempt.sends < tries:
            cluster.engine.after(timeout, self._send, attempt, tries, timeout)
        else:
            cluster.engine.after(timeout, self._timed_out, attempt)

    def _timed_out(self, attempt: Attempt) -> None:
        if attempt.result is None:
            self._finish(attempt, Result.ETIMEDOUT, self.cluster.engine.now)

    def _finish(self, attempt: Attempt, result: Result, when: int) -> None:
        cluster = self.cluster
        attempt.result = result
        self.pending -= 1
        attempt.ended = True
        attempt.connect_us = when - attempt.start
        cluster.record(attempt, result, attempt.connect_us)
        if attempt.done is not None:
            if when > cluster.engine.now:
                cluster.engine.at(when, attempt.done, attempt)
            else:
                attempt.done(attempt)
