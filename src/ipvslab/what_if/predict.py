"""Run the node's scenario with the actions, as it is and with each setting changed,
over a few seeds, and measure what a user of the node would see from the action on.

A variant is the node with zero or more settings changed; each runs the same actions
at the same moment with the same seeds, so the differences are the settings'.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ipvslab.cluster.errors import ScenarioSetupError
from ipvslab.cluster.run import RunResult, run_scenario
from ipvslab.parallel import in_processes
from ipvslab.results.frames import trace_frame
from ipvslab.scenario.model import Scenario
from ipvslab.what_if.changes import Kind, WhatIf, WhatIfError
from ipvslab.what_if.node_scenario import SECOND, NodeModel

ERRORS = ("EHOSTUNREACH", "ECONNREFUSED", "ETIMEDOUT", "EADDRNOTAVAIL")
THIS_NODE = "node-0"  # the node of the capture: its clients reach the services through it


@dataclass(frozen=True)
class Outcome:
    """What one run showed from the action on."""

    seed: int
    connections: int
    to_old_pods: int  # sent to weight-0, removed or dead real servers
    errors: dict[str, int]
    connect_p99_ms: float | None
    first_packet_dropped: int  # SYNs (#70747) and packets on removed servers' entries
    old_servers: int  # set to weight 0 from the action on
    old_servers_kept: int  # of them, still there at the end
    longest_stay_s: float | None  # weight 0 to deleted, the longest (None: none deleted)
    new_pods_share: float | None  # established connections that reached pods made after
    fair_share: float | None  # the new pods' part of the pods at the end (an even share)

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


@dataclass
class Variant:
    label: str
    settings: list[WhatIf]
    outcomes: list[Outcome] = field(default_factory=list)
    refused: str | None = None  # why the twin would not run it (e.g. nftables on 5.4)


def variants(settings: list[WhatIf]) -> list[Variant]:
    out = [Variant("as is", [])]
    out.extend(Variant(w.text, [w]) for w in settings)
    # All together, unless two of them are one node in two kernels or two modes.
    kinds = [w.kind for w in settings if w.kind is not Kind.SYSCTL]
    if len(settings) > 1 and len(kinds) == len(set(kinds)):
        out.append(Variant("all: " + ", ".join(w.text for w in settings), list(settings)))
    return out


def scenario_of(
    model: NodeModel, actions: list[WhatIf], settings: list[WhatIf], seed: int
) -> Scenario:
    base: dict[str, Any] = copy.deepcopy(model.base)
    base["seed"] = seed
    cluster = base["cluster"]
    # Kernel and mode first: both mean a restart (the node's own net.ipv4.vs values are
    # gone and kube-proxy writes its own for that kernel at start, #71114/#102122); a
    # sysctl of the same variant is then set on top.
    for w in sorted(settings, key=lambda w: w.kind is Kind.SYSCTL):
        if w.kind is Kind.SYSCTL:
            cluster["sysctls"].update(dict(w.changes))
        elif w.kind is Kind.KERNEL:
            cluster["kernel"] = w.name
            cluster["sysctls"] = {}
            # The clients in a node's table are (NodePorts aside) pods on that node: they
            # move with it, and their port choice is the new kernel's.
            for client in base["clients"]:
                client["kernel"] = w.name
        elif w.kind is Kind.MODE:
            cluster["dataplane"] = w.name
            cluster["sysctls"] = {}  # net.ipv4.vs has no effect there
    events: list[dict[str, Any]] = list(base.get("events", []))
    at = f"{model.action_at_s}s"
    for w in actions:
        assert w.service is not None
        name = model.services[w.service]
        for each in model.siblings.get(name, [name]):
            if w.kind is Kind.ROLLOUT:
                events.append({"at": at, "rollout": {"service": each}})
                continue
            replicas = model.replicas[each] + w.delta
            if replicas < 0:
                raise WhatIfError(f"--what-if {w.text}: it has {model.replicas[each]} pods")
            events.append({"at": at, "scale": {"service": each, "replicas": replicas}})
    base["events"] = events
    try:
        return Scenario.model_validate(base)
    except ValueError as exc:
        raise WhatIfError(f"the node's scenario is not valid: {exc}") from None


def acted_on(model: NodeModel, actions: list[WhatIf]) -> frozenset[str]:
    """The scenario services the actions change (with their siblings)."""
    names: set[str] = set()
    for w in actions:
        if w.service is not None:
            name = model.services[w.service]
            names.update(model.siblings.get(name, [name]))
    return frozenset(names)


def predict(
    model: NodeModel,
    actions: list[WhatIf],
    settings: list[WhatIf],
    seeds: list[int],
    jobs: int = 1,
) -> list[Variant]:
    """Every variant x seed, on ``jobs`` processes (each run is a function of its scenario
    and seed, so the outcome does not depend on where it ran)."""
    out = variants(settings)
    tasks = [
        (i, scenario_of(model, actions, v.settings, seed))
        for i, v in enumerate(out)
        for seed in seeds
    ]
    action_at = model.action_at_s * SECOND
    results: dict[int, Outcome | str] = dict(
        in_processes(run_one, [(t, action_at, acted_on(model, actions)) for _, t in tasks], jobs)
    )
    for index, (i, _) in enumerate(tasks):  # the plan's order, whatever finished first
        result = results[index]
        if isinstance(result, str):
            out[i].refused = result
        elif out[i].refused is None:
            out[i].outcomes.append(result)
    return out


def run_one(task: tuple[Scenario, int, frozenset[str]]) -> Outcome | str:
    """One run's outcome from ``action_at`` (µs) on, or why the twin refused it."""
    scenario, action_at, services = task
    try:
        run = run_scenario(scenario)
    except ScenarioSetupError as exc:
        return str(exc)
    if run.interrupted:  # run_scenario stops at Ctrl-C with part of a run: no prediction
        raise KeyboardInterrupt
    return measure(run, action_at, services)


def measure(run: RunResult, action_at: int, services: frozenset[str] = frozenset()) -> Outcome:
    """The outcome from ``action_at`` on, for ``services`` (the ones acted on and their
    siblings; all when empty), on this node (the clients' node, node-0)."""
    trace = trace_frame(run.trace).filter(pl.col("time_us") >= action_at)
    if services:
        trace = trace.filter(pl.col("service").is_in(sorted(services)))
    established = trace.filter(pl.col("result") == "established")
    latency = established["connect_us"]
    p99 = latency.quantile(0.99, "higher") if latency.len() else None
    old: dict[tuple[str, str], list[float | None]] = {}
    for e in run.server_log:
        if e.node != THIS_NODE or (services and e.service not in services):
            continue
        key = (e.service, e.server)
        if e.action == "weight-0" and e.time >= action_at:
            old[key] = [e.time / SECOND, None]
        elif key in old and e.action in ("deleted", "deleted by hand") and old[key][1] is None:
            old[key][1] = e.time / SECOND
    stays = [end - start for start, end in old.values() if start is not None and end is not None]

    def ours(pod: str) -> bool:
        return not services or pod.rsplit("-", 1)[0] in services

    created = {pod: t for t, pod, event in run.pod_log if event == "created" and ours(pod)}
    ended = {pod for _, pod, event in run.pod_log if event in ("terminating", "gone")}
    before = {pod for pod, t in created.items() if t < action_at}
    made_after = established.filter(~pl.col("pod").is_in(sorted(before)))
    alive = [pod for pod in created if pod not in ended]
    new_alive = [pod for pod in alive if pod not in before]
    changed = any(t >= action_at for t in created.values())
    return Outcome(
        seed=run.scenario.seed,
        connections=trace.height,
        to_old_pods=int((trace["weight0"] | trace["removed"] | trace["pod_gone"]).sum())
        if trace.height
        else 0,
        errors={e: int((trace["result"] == e).sum()) for e in ERRORS},
        connect_p99_ms=None if p99 is None else float(p99) / 1000,
        # A dropped first packet: the SYN of #70747, or (before 04231e52d355) a packet on
        # an entry whose server was removed, expired with expire_nodest_conn=1.
        first_packet_dropped=int(trace["decision"].str.starts_with("DROP").sum())
        if trace.height
        else 0,
        old_servers=len(old),
        old_servers_kept=sum(1 for _, end in old.values() if end is None),
        longest_stay_s=max(stays) if stays else None,
        new_pods_share=(made_after.height / established.height)
        if changed and established.height
        else None,
        fair_share=len(new_alive) / len(alive) if changed and alive else None,
    )
