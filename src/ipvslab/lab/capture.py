"""Trace capture: the guest runner's lines as the model's per-step trace rows.

A lab step becomes a ``StepResult``, the very row ``ipvslab run`` writes for a
script step, so that comparing the two is a join on the step index. The IPVS
entries come back as raw ``/proc/net/ip_vs_conn`` rows, read here with the
doctor's parser and written as the model writes its entries:
``STATE ip:port EXPIRESs`` (the kernel prints whole seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from ipvslab.cluster.script import StepResult
from ipvslab.doctor.parsers.proc_ip_vs_conn import parse_proc_ip_vs_conn
from ipvslab.doctor.records import ConnEntry
from ipvslab.lab.node import LabNode


class CaptureError(ValueError):
    """A runner line that is not what the runner writes (which line, which field)."""


@dataclass
class LabRun:
    """What one boot reported."""

    kernel: str = ""
    setup_us: int = 0
    total_us: int = 0
    steps: list[StepResult] = field(default_factory=list)
    took_us: dict[int, int] = field(default_factory=dict)  # step index -> wall time
    errors: list[str] = field(default_factory=list)  # runner or VM failures
    namespaces_left: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # the VM's last lines, on failure

    @property
    def complete(self) -> bool:
        return not self.errors


def entry_view(entry: ConnEntry) -> str:
    # A persistence template (client port 0) prints its state as NONE; the
    # model's trace calls it TEMPLATE.
    state = "TEMPLATE" if entry.client_port == 0 else entry.state
    return f"{state} {entry.dest_addr}:{entry.dest_port} {entry.expires:.3f}s"


def _pod_of(view: str, node: LabNode) -> str:
    """The pod whose address an entry names ("" when none does)."""
    server = view.split()[1].rsplit(":", 1)[0] if view else ""
    for service in node.services:
        for pod in service.pods:
            if pod.ip == server:
                return pod.name
    return ""


def _entries(rows: object, vip: str | None, vport: int | None, where: str) -> tuple[str, str]:
    """(the connection entry, the persistence template) among a step's rows."""
    if not isinstance(rows, list) or not all(isinstance(r, str) for r in rows):
        raise CaptureError(f"{where}: expected a list of /proc/net/ip_vs_conn rows")
    if not rows:
        return "", ""
    parsed = parse_proc_ip_vs_conn("\n".join(rows) + "\n", where)
    if parsed.issues:
        raise CaptureError(f"{where}: {parsed.issues[0].message}")
    entry = template = ""
    want = IPv4Address(vip) if vip else None
    for row in parsed.value:
        if want is not None and row.virtual_addr != want:
            continue
        if row.client_port == 0:
            template = template or entry_view(row)
        elif vport is None or row.virtual_port == vport:
            entry = entry or entry_view(row)
    return entry, template


def _int(line: dict[str, Any], name: str, where: str) -> int:
    value = line.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CaptureError(f"{where}.{name}: expected an integer, got {str(value)[:40]!r}")
    return value


def _str(line: dict[str, Any], name: str, where: str) -> str:
    value = line.get(name, "")
    if not isinstance(value, str):
        raise CaptureError(f"{where}.{name}: expected text, got {str(value)[:40]!r}")
    return value[:200]


def step_result(line: dict[str, Any], node: LabNode, probes: list[dict[str, Any]]) -> StepResult:
    """One runner ``step`` line as a trace row."""
    index = _int(line, "index", "step")
    if not 0 <= index < len(probes):
        raise CaptureError(f"step.index: {index} is not a step of the script")
    where = f"step {index}"
    service_name = probes[index].get("service")
    service = next((s for s in node.services if s.name == service_name), None)
    vip = service.vip if service else None
    vport = service.port if service else None
    result = StepResult(index, _str(line, "action", where), _int(line, "time_us", where))
    result.client = _str(line, "client", where)
    result.client_port = _int(line, "client_port", where)
    result.pod = _str(line, "pod", where)
    result.result = _str(line, "result", where)
    result.connect_us = _int(line, "connect_us", where)
    result.syn_retransmits = _int(line, "syn_retransmits", where)
    if "entry_before" in line:
        result.entry_before, result.template_before = _entries(
            line["entry_before"], vip, vport, f"{where}.entry_before"
        )
    if "entry_after" in line:
        result.entry_after, result.template_after = _entries(
            line["entry_after"], vip, vport, f"{where}.entry_after"
        )
    if not result.pod and result.result not in ("", "ok", "established"):
        # A connect nothing answered: the pod is the one IPVS sent it to, as the
        # model's trace names it.
        result.pod = _pod_of(result.entry_after or result.entry_before, node)
    return result


def _take(run: LabRun, line: dict[str, Any], node: LabNode, probes: list[dict[str, Any]]) -> None:
    kind = line.get("kind")
    if kind == "ready":
        run.kernel = str(line.get("kernel", ""))[:100]
    elif kind == "setup":
        run.setup_us = _int(line, "took_us", "setup")
    elif kind == "step":
        try:
            row = step_result(line, node, probes)
        except CaptureError as err:
            run.errors.append(str(err))
            return
        run.steps.append(row)
        run.took_us[row.index] = _int(line, "took_us", f"step {row.index}")
    elif kind == "error":
        run.errors.append(f"runner: {str(line.get('message', ''))[:500]}")
    elif kind == "done":
        run.total_us = _int(line, "took_us", "done")
        left = line.get("namespaces_left", [])
        run.namespaces_left = [str(n)[:100] for n in left] if isinstance(left, list) else []


def collect_batch(
    lines: Any,
    nodes: list[LabNode],
    probes: list[list[dict[str, Any]]],
    runs: list[LabRun] | None = None,
) -> list[LabRun]:
    """Reads a boot's lines (an iterable of dicts) into one LabRun per plan of the
    batch (into ``runs`` when given, so that a caller interrupted half-way still
    holds what was read). Lines already read are kept when a later one is bad or
    the VM fails; a VM failure is charged to every plan that had not finished."""
    if runs is None:
        runs = [LabRun() for _ in nodes]
    for line in lines:
        if line.get("kind") == "vm":
            console = line.get("console", [])
            for run, asked in zip(runs, probes, strict=True):
                # Unfinished, or finished short of its steps (the runner died
                # after its "done" line: the console says why).
                if not run.total_us or (len(run.steps) < len(asked) and not run.errors):
                    run.errors.append(str(line.get("message", ""))[:500])
                    run.console = (
                        [str(c)[:300] for c in console] if isinstance(console, list) else []
                    )
            continue
        index = line.get("plan", 0)
        if isinstance(index, int) and 0 <= index < len(runs):
            _take(runs[index], line, nodes[index], probes[index])
        elif line.get("kind") != "finished":
            runs[0].errors.append(f"a runner line for no plan of the batch: plan {index!r}")
    for run, asked in zip(runs, probes, strict=True):
        if len(run.steps) < len(asked) and not run.errors:
            run.errors.append(f"the runner reported {len(run.steps)} of {len(asked)} steps")
    return runs


def collect(lines: Any, node: LabNode, probes: list[dict[str, Any]]) -> LabRun:
    """One plan's lines into a LabRun (collect_batch() of one)."""
    return collect_batch(lines, [node], [probes])[0]
