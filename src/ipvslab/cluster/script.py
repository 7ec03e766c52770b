"""Script mode: replay what a person did on a node, step by step.

Steps run one after the other: each starts when the one before it is done (a
connect is done when its connection has closed, or failed), or at its own
``at`` when that is later. Each step's result names the pod that answered or
the errno the client saw, the connect time, the SYN retransmissions, and the
dataplane's entry for that client ip:port (and the persistence template) just
before and just after, so a run can be set beside a real kernel's, step by step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ipvslab.cluster import actions
from ipvslab.cluster.actions import ActionError
from ipvslab.cluster.dataplane import EntryView
from ipvslab.cluster.tcp_flow import Attempt
from ipvslab.cluster.trace import Result
from ipvslab.scenario.model import CloseStyle, Step

if TYPE_CHECKING:
    from ipvslab.cluster.cluster import ClientPod, Cluster
    from ipvslab.cluster.endpoints import ServiceInfo
    from ipvslab.cluster.udp_flow import UdpRequester


def _view(view: EntryView | None) -> str:
    if view is None:
        return ""
    return f"{view.state} {view.server} {view.expires_ms / 1000:.3f}s"


@dataclass
class StepResult:
    index: int
    action: str
    time_us: int  # when the step started
    client: str = ""
    client_port: int = 0
    pod: str = ""  # the pod that answered
    result: str = ""  # established, an errno, "ok", or "error: ..."
    connect_us: int = 0
    syn_retransmits: int = 0
    entry_before: str = ""
    entry_after: str = ""
    template_before: str = ""
    template_after: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(eq=False)
class ScriptRunner:
    cluster: Cluster
    udp: UdpRequester
    steps: list[Step]
    results: list[StepResult] = field(default_factory=list)
    _held: dict[tuple[str, int], Attempt] = field(default_factory=dict)
    _index: int = 0
    finished: bool = False
    end_us: int = 0  # when the last step finished

    def record_not_run(self, why: str) -> None:
        """Steps the run ended before: listed, not silently dropped."""
        done = {r.index for r in self.results}
        for index, step in enumerate(self.steps):
            if index not in done:
                self.results.append(StepResult(index, step.action, -1, result=why))

    def begin(self) -> None:
        self.cluster.engine.at(0, self._next)

    def _next(self) -> None:
        if self._index >= len(self.steps):
            self.finished = True
            self.end_us = self.cluster.engine.now
            return
        step = self.steps[self._index]
        engine = self.cluster.engine
        if step.at is not None and step.at > engine.now:
            engine.at(step.at, self._run, step)
        else:
            self._run(step)

    def _advance(self) -> None:
        self._index += 1
        self._next()

    def _client(self, name: str) -> ClientPod:
        return actions.find_clients(self.cluster, name)[0]

    def _service(self, client: ClientPod, name: str | None) -> ServiceInfo:
        return self.cluster.services[name or client.spec.service]

    def _run(self, step: Step) -> None:
        engine = self.cluster.engine
        result = StepResult(self._index, step.action, engine.now)
        self.results.append(result)
        try:
            done_later = self._dispatch(step, result)
        except ActionError as err:
            result.result = f"error: {err}"
            done_later = False
        if not done_later:
            self._advance()

    def _dispatch(self, step: Step, result: StepResult) -> bool:
        """Carry out the step; True when it finishes later (and advances itself)."""
        cluster = self.cluster
        engine = cluster.engine
        if step.connect is not None:
            connect = step.connect
            client = self._client(connect.client)
            service = self._service(client, connect.service)
            held = connect.close == "held"
            style = CloseStyle.SERVER_FIRST if held else CloseStyle(connect.close)
            result.client = client.name
            if connect.port:
                self._before(result, client, connect.port, service)
            attempt = cluster.connector.connect(
                client,
                service,
                style=style,
                hold=None if held else connect.hold,
                bind_port=connect.port or 0,
                done=lambda a: self._connect_done(a, result, client, service),
                connected=(lambda a: self._connect_done(a, result, client, service, held=True))
                if held
                else None,
            )
            if not connect.port:
                result.entry_before = attempt.entry_before
            result.client_port = attempt.port
            if held and not result.result:
                # Still connecting: held from now on (once established, _connect_done holds
                # it before the next step runs, which may be its release).
                self._held[(client.name, attempt.port)] = attempt
            return True
        if step.release is not None:
            client = self._client(step.release.client)
            found = self._held.pop((client.name, step.release.port), None)
            if found is None:
                raise ActionError(f"no held connection from {client.name} port {step.release.port}")
            result.client = client.name
            result.client_port = step.release.port
            self._before(result, client, step.release.port, found.service)
            cluster.connector.close(found, step.release.close)
            self._after(result, client, step.release.port, found.service)
            result.result = "ok"
            return False
        if step.udp is not None:
            udp = step.udp
            client = self._client(udp.client)
            service = self._service(client, udp.service)
            result.client = client.name
            if udp.port:
                self._before(result, client, udp.port, service)
            attempt = self.udp.request(
                client,
                service,
                port=udp.port or 0,
                tries=udp.tries,
                timeout=udp.timeout,
                done=lambda a: self._udp_done(a, result, client, service),
            )
            result.client_port = attempt.port
            return True
        if step.wait is not None:
            engine.after(step.wait, self._advance)
            result.result = "ok"
            return True
        result.pod = actions.carry_out(cluster, step.action, getattr(step, step.action))
        result.result = "ok"
        return False

    def _before(
        self, result: StepResult, client: ClientPod, port: int, service: ServiceInfo
    ) -> None:
        now = self.cluster.engine.now
        result.entry_before = _view(client.dataplane.entry(client.ip, port, service, now))
        result.template_before = _view(client.dataplane.template(client.ip, port, service, now))

    def _after(
        self, result: StepResult, client: ClientPod, port: int, service: ServiceInfo
    ) -> None:
        now = self.cluster.engine.now
        result.entry_after = _view(client.dataplane.entry(client.ip, port, service, now))
        result.template_after = _view(client.dataplane.template(client.ip, port, service, now))

    def _fill(self, attempt: Attempt, result: StepResult) -> None:
        assert attempt.result is not None
        result.result = attempt.result.label
        result.pod = attempt.pod.name if attempt.pod is not None else ""
        result.syn_retransmits = max(attempt.sends - 1, 0)
        if attempt.first is not None:
            result.detail = attempt.first.outcome

    def _connect_done(
        self,
        attempt: Attempt,
        result: StepResult,
        client: ClientPod,
        service: ServiceInfo,
        held: bool = False,
    ) -> None:
        """The step is done: its connection closed, failed, or (held) is established."""
        if result.result:
            return  # a held connection closing later, on its release step
        self._fill(attempt, result)
        result.connect_us = attempt.connect_us
        self._after(result, client, attempt.port, service)
        if attempt.result is not Result.ESTABLISHED:
            self._held.pop((client.name, attempt.port), None)
        elif held:
            # Held before the next step runs: it may be this connection's release, and the
            # connect may have finished inside connect() itself.
            self._held[(client.name, attempt.port)] = attempt
        self._advance()

    def _udp_done(
        self, attempt: Attempt, result: StepResult, client: ClientPod, service: ServiceInfo
    ) -> None:
        self._fill(attempt, result)
        result.connect_us = attempt.connect_us
        self._after(result, client, attempt.port, service)
        self._advance()
