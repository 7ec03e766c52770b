"""Plan and run the reproduction: every symptom under every configuration meant
for it, and the CCE matrix; in parallel processes if asked (each run is a
function of its scenario and seed, so the results do not depend on where or in
which order they ran)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipvslab.cluster.run import run_scenario
from ipvslab.kernel.features import Feature
from ipvslab.kernel.presets import resolve_kernel
from ipvslab.parallel import in_processes
from ipvslab.reproduce import cce
from ipvslab.reproduce.catalog import CONFIGURATIONS, SYMPTOM_BY_NAME, SYMPTOMS, Spec
from ipvslab.reproduce.measure import Measures, measure
from ipvslab.results.frames import (
    pod_log_frame,
    samples_frame,
    server_log_frame,
    trace_frame,
)
from ipvslab.results.provenance import provenance
from ipvslab.scenario.model import Scenario


@dataclass(frozen=True)
class Task:
    """One run: a symptom's scenario under a configuration (or a CCE cell)."""

    group: str  # the symptom name, or "cce"
    label: str  # the configuration name, or "<preset> <kube-proxy>"
    symptom: str  # whose scenario
    spec: Spec = field(compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.group}/{self.label}/{self.symptom}"


@dataclass
class Outcome:
    task: Task
    measures: Measures | None
    error: str = ""


def _with_seed(spec: Spec, seed: int | None) -> Spec:
    if seed is not None:
        spec = dict(spec)
        spec["seed"] = seed
    return spec


def plan(quick: bool, only: Iterable[str] = (), seed: int | None = None) -> list[Task]:
    wanted = set(only)
    tasks: list[Task] = []
    for symptom in SYMPTOMS:
        if wanted and symptom.name not in wanted:
            continue
        base = symptom.spec(quick)
        for config in CONFIGURATIONS:
            if symptom.name in config.applies_to:
                spec = _with_seed(config.apply(base), seed)
                tasks.append(Task(symptom.name, config.name, symptom.name, spec))
    if not wanted or "cce" in wanted:
        for preset, _ in cce.OSES:
            for version, _ in cce.BANDS:
                for name in ("no-route-to-host", "one-second-delay"):
                    spec = SYMPTOM_BY_NAME[name].spec(quick=True)
                    cluster = spec.setdefault("cluster", {})
                    cluster["kernel"] = preset
                    cluster.setdefault("kube_proxy", {})["version"] = version
                    spec["name"] = f"cce {preset} {version} {name}"
                    tasks.append(Task("cce", f"{preset} {version}", name, _with_seed(spec, seed)))
    return tasks


def run_folder(out_dir: Path, group: str, label: str, symptom: str) -> Path:
    """Where a run's files go: runs/<symptom or cce>/<configuration>/<scenario>/."""
    return out_dir / "runs" / group / label.replace(" ", "_") / symptom


def run_task(task: Task, out_dir: str | None) -> Outcome:
    """One run, its measures, and (with ``out_dir``) its trace and summary on disk."""
    try:
        scenario = Scenario.model_validate(task.spec)
        result = run_scenario(scenario)
    except ValueError as err:  # a scenario the model refuses: report, never crash the rest
        return Outcome(task, None, str(err).splitlines()[0])
    if result.interrupted:  # run_scenario stops at Ctrl-C with part of a run: no measures
        raise KeyboardInterrupt
    trace = trace_frame(result.trace)
    measures = measure(result, trace)
    if out_dir is not None:
        folder = run_folder(Path(out_dir), task.group, task.label, task.symptom)
        folder.mkdir(parents=True, exist_ok=True)
        trace.write_parquet(folder / "trace.parquet")
        # What a report of this folder plots besides the trace: the real servers'
        # weights and kube-proxy's changes to them, the pods' lifecycle (rollouts).
        samples_frame(result).write_parquet(folder / "servers.parquet")
        server_log_frame(result).write_parquet(folder / "server_log.parquet")
        pod_log_frame(result).write_parquet(folder / "pods.parquet")
        setup = provenance(result)
        setup["simulated_s"] = result.end_us / 1e6
        (folder / "run.json").write_text(json.dumps(setup, indent=2) + "\n")
        (folder / "measures.json").write_text(json.dumps(measures.as_dict(), indent=2) + "\n")
    return Outcome(task, measures)


def execute(
    tasks: list[Task],
    jobs: int,
    out_dir: Path | None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every task; results come back in plan order whatever ``jobs`` is."""
    folder = str(out_dir) if out_dir is not None else None
    outcomes: dict[str, Outcome] = {}
    for _, outcome in in_processes(functools.partial(run_task, out_dir=folder), tasks, jobs):
        outcomes[outcome.task.key] = outcome
        if progress is not None:
            progress(outcome)
    return [outcomes[t.key] for t in tasks]


# -- verdicts ---------------------------------------------------------------------------

CURED = "cured"
NOT_CURED = "not cured"
WORSE = "made worse"
FAILED = "failed"

THRESHOLDS = (
    "cured: the symptom's figure is below its threshold, fewer than 1% of connections"
    " fail and p99 connect time is under 500 ms; made worse: more than 1 point more"
    " failures than in the seed's configuration, or a p99 connect time of 900 ms or more"
    " where the seed's configuration was under 500 ms; not cured: anything else"
)


def verdict(symptom: str, measures: Measures | None, baseline: Measures | None) -> str:
    if measures is None:
        return FAILED
    spec = SYMPTOM_BY_NAME[symptom]
    p99 = measures.connect_p99_ms or 0.0
    if not spec.present(measures) and measures.error_rate < 0.01 and p99 < 500:
        return CURED
    if baseline is not None:
        base_p99 = baseline.connect_p99_ms or 0.0
        if measures.error_rate > baseline.error_rate + 0.01:
            return WORSE
        if p99 >= 900 and base_p99 < 500:
            return WORSE
    return NOT_CURED


SYMPTOM = "symptom"
NOT_REPRODUCED = "not reproduced"

# Verdict -> its mark in the matrix and the terminal style of the cell.
MARKS = {
    SYMPTOM: ("●", "red"),
    CURED: ("✓", "green"),
    NOT_CURED: ("✗", "red"),
    WORSE: ("!", "bold red"),
    FAILED: ("?", "yellow"),
    NOT_REPRODUCED: ("○", "yellow"),
}


def _baseline_verdict(symptom: str, measures: Measures | None) -> str:
    """The seed's own configuration: does it show the symptom the seed describes?"""
    if measures is None:
        return FAILED
    return SYMPTOM if SYMPTOM_BY_NAME[symptom].present(measures) else NOT_REPRODUCED


@dataclass
class Report:
    outcomes: list[Outcome]
    matrix: dict[str, dict[str, dict[str, Any]]]  # symptom -> configuration -> cell
    cce_cells: list[cce.Cell]
    claims: list[dict[str, Any]]


def report(outcomes: list[Outcome]) -> Report:
    by_key = {(o.task.group, o.task.label): o for o in outcomes if o.task.group != "cce"}
    matrix: dict[str, dict[str, dict[str, Any]]] = {}
    claims: list[dict[str, Any]] = []
    for symptom in SYMPTOMS:
        runs = {label: o for (group, label), o in by_key.items() if group == symptom.name}
        if not runs:
            continue
        base = runs.get("baseline")
        base_m = base.measures if base is not None else None
        row: dict[str, dict[str, Any]] = {}
        for label, outcome in runs.items():
            m = outcome.measures
            row[label] = {
                "verdict": _baseline_verdict(symptom.name, m)
                if label == "baseline"
                else verdict(symptom.name, m, base_m),
                "figure": symptom.value(m) if m is not None else outcome.error,
                "error_rate": None if m is None else m.error_rate,
                "connect_p99_ms": None if m is None else m.connect_p99_ms,
                "achieved_rate": None if m is None else m.achieved_rate,
                "gini_after_event": None if m is None else m.gini_after_event,
                "stuck_servers": None if m is None else m.stuck_servers,
            }
        matrix[symptom.name] = row
        if base_m is not None:
            others = {label: o.measures for label, o in runs.items() if o.measures is not None}
            for claim in symptom.claims:
                measured, agrees = claim.check(base_m, others)
                claims.append(
                    {
                        "symptom": symptom.name,
                        "source": claim.source,
                        "claim": claim.text,
                        "measured": measured,
                        "agrees": agrees,
                    }
                )
    cells: list[cce.Cell] = []
    cce_runs = {(o.task.label, o.task.symptom): o for o in outcomes if o.task.group == "cce"}
    for preset, _ in cce.OSES:
        for version, _ in cce.BANDS:
            a = cce_runs.get((f"{preset} {version}", "no-route-to-host"))
            b = cce_runs.get((f"{preset} {version}", "one-second-delay"))
            if a is None or b is None or a.measures is None or b.measures is None:
                continue
            derived = cce.classify(a.measures, b.measures)
            seed = cce.SEED_TABLE.get((preset, version))
            why = ""
            if seed is not None and seed != derived and version == "v1.17.0":
                features = resolve_kernel(preset).features
                if features.has(Feature.WEIGHT0_RESCHEDULE_ANY_MODE):
                    why = cce.BLANKET_ROW_NOTE
            cells.append(cce.Cell(preset, version, derived, seed, why))
    return Report(outcomes, matrix, cells, claims)
