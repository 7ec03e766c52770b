"""Run a scenario: build the cluster, schedule its load, events and script, and
advance time to the end (in slices, so a caller can show progress and an
interrupted run keeps what it simulated)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ipvslab.cluster import actions
from ipvslab.cluster.actions import ActionError
from ipvslab.cluster.cluster import Cluster, Node
from ipvslab.cluster.errors import CapacityError
from ipvslab.cluster.load import ClientLoad
from ipvslab.cluster.proxier import RealServerEvent
from ipvslab.cluster.script import ScriptRunner, StepResult
from ipvslab.cluster.trace import Trace
from ipvslab.cluster.udp_flow import UdpRequester
from ipvslab.kernel.features import Feature
from ipvslab.scenario.model import Event, Scenario

SLICE_US = 100_000  # progress is reported every 0.1 s of simulated time
SCRIPT_OVERRUN_US = 3600 * 1_000_000


@dataclass
class ServerSample:
    """A real server as `ipvsadm -Ln` shows it at one moment, on one node."""

    time_us: int
    node: str
    service: str
    server: str
    weight: int
    active: int
    inactive: int
    terminating: bool  # on kube-proxy's graceful termination list
    pod_alive: bool


@dataclass
class RunResult:
    scenario: Scenario
    trace: Trace
    samples: list[ServerSample]
    server_log: list[RealServerEvent]
    pod_log: list[tuple[int, str, str]]
    steps: list[StepResult]
    warnings: list[str]
    end_us: int  # simulated time reached
    interrupted: bool = False
    stopped: str = ""  # why the run stopped early (the cluster ran out of something)
    event_errors: list[str] = field(default_factory=list)
    kernel: dict[str, str] = field(default_factory=dict)  # node -> kernel text
    sysctls: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> net.ipv4.vs


def _apply_event(cluster: Cluster, event: Event, errors: list[str]) -> None:
    try:
        actions.carry_out(cluster, event.action, getattr(event, event.action))
    except ActionError as err:
        errors.append(f"event {event.action} at {event.at / 1e6:g}s: {err}")


def _sampler(cluster: Cluster, samples: list[ServerSample], interval: int) -> Callable[[], None]:
    def sample() -> None:
        now = cluster.engine.now
        for node in cluster.nodes:
            if node.kernel is None or node.proxier is None:
                continue
            node.kernel.advance(now // 1000)
            for name, service in node.proxier.virtual.items():
                for dest in service.destinations:
                    samples.append(
                        ServerSample(
                            now,
                            node.name,
                            name,
                            dest.label,
                            dest.weight,
                            dest.active_conns,
                            dest.inactive_conns,
                            (name, int(dest.addr), dest.port) in node.proxier.terminating,
                            cluster.pod_at(int(dest.addr)) is not None,
                        )
                    )
        cluster.engine.after(interval, sample)

    return sample


def _sysctls_of(node: Node) -> dict[str, int]:
    """The node's net.ipv4.vs values, only those its kernel has."""
    assert node.kernel is not None
    values = node.kernel.sysctls
    names = [n for n in values.names() if n != "conn_reuse_old_conntrack"]
    if node.features.has(Feature.REUSE_OLD_CONNTRACK):
        names.append("conn_reuse_old_conntrack")  # TencentOS PR #17 only
    return {name: getattr(values, name) for name in names}


def run_scenario(
    scenario: Scenario, progress: Callable[[int, int], None] | None = None
) -> RunResult:
    """Simulate ``scenario`` to its end. ``progress(now_us, end_us)`` is called as
    time advances; a KeyboardInterrupt stops the run with what it has so far."""
    cluster = Cluster(scenario)
    samples: list[ServerSample] = []
    errors: list[str] = []
    udp = UdpRequester(cluster)
    engine = cluster.engine
    cluster.start()
    for event in scenario.events:
        engine.at(event.at, _apply_event, cluster, event, errors)
    end = scenario.duration
    for client in cluster.clients:
        ClientLoad(cluster, udp, client, end).begin()
    script = ScriptRunner(cluster, udp, list(scenario.script))
    if scenario.script:
        script.begin()
    engine.at(0, _sampler(cluster, samples, scenario.interval))
    interrupted = False
    stopped = ""
    try:
        now = 0
        # The load runs for the scenario's duration; a script that is not done by
        # then carries on (it is the point of the run), for at most an hour more.
        while now < end or (
            scenario.script and not script.finished and now < end + SCRIPT_OVERRUN_US
        ):
            now = min(end, now + SLICE_US) if now < end else now + SLICE_US
            engine.run(until=now)
            if progress is not None:
                progress(min(now, end), end)
        # Connects and UDP requests still under way finish (a dropped SYN
        # retransmits, a silent pod times out), at most the client's give-up later.
        drain_end = now + max((c.syn.timeout_us for c in cluster.clients), default=0)
        while (cluster.connector.pending or udp.pending) and now < drain_end:
            now = min(drain_end, now + SLICE_US)
            engine.run(until=now)
    except CapacityError as err:
        stopped = str(err)
        errors.append(f"run stopped at {engine.now / 1e6:.1f}s: {err}")
    except KeyboardInterrupt:
        interrupted = True
    script.record_not_run("not run: " + (stopped or "the run ended first"))
    pod_log = sorted(
        (entry for d in cluster.deployments.values() for entry in d.log), key=lambda e: e[0]
    )
    return RunResult(
        scenario=scenario,
        trace=cluster.trace,
        samples=samples,
        server_log=cluster.server_log,
        pod_log=pod_log,
        steps=script.results,
        warnings=cluster.warnings,
        end_us=min(engine.now, max(end, script.end_us)),
        interrupted=interrupted,
        stopped=stopped,
        event_errors=errors,
        kernel={n.name: n.kernel_text for n in cluster.nodes},
        sysctls={n.name: _sysctls_of(n) for n in cluster.nodes if n.kernel is not None},
    )
