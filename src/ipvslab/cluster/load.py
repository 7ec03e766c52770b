"""Client load: open loop, closed loop, long-lived connections, UDP requests.

- open: new connections at a rate (Poisson or evenly spaced), whatever happens
  to earlier ones; ``rate`` is the total over the client's replicas.
- closed: each replica runs ``workers`` loops of connect -> hold -> close ->
  think; a connect that takes 1 s (a dropped first SYN) costs that worker 1 s,
  which is how the #70747 drop cuts a benchmark's rate.
- long-lived: each replica keeps ``connections`` open and reconnects after
  ``reconnect_delay`` when one ends or fails (websockets, the seed 003 case).
- udp: requests at a rate, each with its tries and timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.cluster.tcp_flow import Attempt
from ipvslab.scenario.model import ClosedLoad, LongLivedLoad, OpenLoad, UdpLoad

if TYPE_CHECKING:
    from ipvslab.cluster.cluster import ClientPod, Cluster
    from ipvslab.cluster.udp_flow import UdpRequester

SECOND_US = 1_000_000


class ClientLoad:
    """Drives one client replica's load on the engine."""

    def __init__(self, cluster: Cluster, udp: UdpRequester, client: ClientPod, end: int) -> None:
        self.cluster = cluster
        self.udp = udp
        self.client = client
        spec = client.spec
        self.service = cluster.services[spec.service]
        self.start = spec.start
        self.end = min(end, spec.stop) if spec.stop is not None else end
        self.replicas = len(cluster.clients_by_name[spec.name])
        self._arrivals = 0

    def begin(self) -> None:
        load = self.client.spec.load
        engine = self.cluster.engine
        if load is None:
            return  # a pod for script steps only
        if isinstance(load, OpenLoad):
            engine.at(self.start, self._open_arrival)
        elif isinstance(load, ClosedLoad):
            for _ in range(load.workers):
                engine.at(self.start, self._closed_next, None)
        elif isinstance(load, LongLivedLoad):
            for _ in range(load.connections):
                engine.at(self.start, self._long_lived_next, None)
        elif isinstance(load, UdpLoad):
            engine.at(self.start, self._udp_arrival)

    def _rate(self, total: float) -> float:
        return total / self.replicas

    def _next_arrival(self, rate: float, poisson: bool) -> int:
        """The next arrival time: exponential gaps, or the k-th of an even spacing."""
        engine = self.cluster.engine
        if poisson:
            gap = self.client.rng.expovariate(rate) * SECOND_US
            return engine.now + max(1, round(gap))
        self._arrivals += 1
        return self.start + round(self._arrivals * SECOND_US / rate)

    def _open_arrival(self) -> None:
        load = self.client.spec.load
        assert isinstance(load, OpenLoad)
        engine = self.cluster.engine
        spec = self.client.spec
        rate = self._rate(load.rate)
        poisson = load.arrivals == "poisson"
        # Arrivals run back to back while nothing else comes between (Engine.claim()).
        while engine.now < self.end:
            self.cluster.connector.connect(
                self.client, self.service, style=spec.close, hold=spec.duration
            )
            arrival = self._next_arrival(rate, poisson)
            if not engine.claim(arrival):
                engine.at(arrival, self._open_arrival)
                return

    def _closed_next(self, previous: Attempt | None) -> None:
        load = self.client.spec.load
        assert isinstance(load, ClosedLoad)
        engine = self.cluster.engine
        if previous is not None and load.think:
            engine.after(load.think, self._closed_connect)
        else:
            self._closed_connect()

    def _closed_connect(self) -> None:
        if self.cluster.engine.now >= self.end:
            return
        spec = self.client.spec
        self.cluster.connector.connect(
            self.client, self.service, style=spec.close, hold=spec.duration, done=self._closed_next
        )

    def _long_lived_next(self, previous: Attempt | None) -> None:
        load = self.client.spec.load
        assert isinstance(load, LongLivedLoad)
        engine = self.cluster.engine
        if previous is not None:
            engine.after(load.reconnect_delay, self._long_lived_connect)
        else:
            self._long_lived_connect()

    def _long_lived_connect(self) -> None:
        if self.cluster.engine.now >= self.end:
            return
        spec = self.client.spec
        self.cluster.connector.connect(
            self.client, self.service, style=spec.close, hold=None, done=self._long_lived_next
        )

    def _udp_arrival(self) -> None:
        load = self.client.spec.load
        assert isinstance(load, UdpLoad)
        engine = self.cluster.engine
        rate = self._rate(load.rate)
        while engine.now < self.end:
            self.udp.request(self.client, self.service, tries=load.tries, timeout=load.timeout)
            arrival = self._next_arrival(rate, True)
            if not engine.claim(arrival):
                engine.at(arrival, self._udp_arrival)
                return
