"""`ipvslab lab`: run a scenario's script on a real kernel's IPVS (docs/lab.md).

    ipvslab lab run SCRIPT.yaml        the kernel's per-step trace
    ipvslab lab compare SCRIPT.yaml    model vs kernel, step by step
    ipvslab lab fingerprint            which preset the kernel behaves like

Exit status: 0 done (compare: every step agrees; fingerprint: a preset
matches), 1 a disagreement (fingerprint: no preset matches), 2 bad scenario or
options, 3 the kernel could not be had (package, VM or runner failure: said
loudly, with the reason).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ipvslab.cluster.script import StepResult
from ipvslab.kernel.presets import resolve_kernel
from ipvslab.lab import capture, compare, fingerprint, kernel_image, node, probes, vm
from ipvslab.scenario import ScenarioError, format_problems, load_model
from ipvslab.scenario.model import Scenario

lab_app = typer.Typer(
    help="Run a scenario's script on a real kernel's IPVS (under QEMU, or this host).",
    no_args_is_help=True,
)

EXIT_DISAGREE = 1
EXIT_BAD_INPUT = 2
EXIT_NO_KERNEL = 3


def _fail(message: str, code: int) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _scenario(path: Path) -> Scenario:
    try:
        return load_model(path, Scenario)
    except ScenarioError as err:
        _fail(format_problems(err), EXIT_BAD_INPUT)
    raise AssertionError("unreachable")


def _kernel(package: str, vmlinuz: Path | None, host: bool) -> kernel_image.KernelImage | None:
    if host:
        return None
    try:
        if vmlinuz is not None:
            return kernel_image.local_kernel(vmlinuz)
        return kernel_image.fetch_debian_kernel(package)
    except kernel_image.KernelImageError as err:
        _fail(f"LAB UNAVAILABLE: no kernel to boot: {err}", EXIT_NO_KERNEL)
    raise AssertionError("unreachable")


def _run_lab(
    scenario: Scenario,
    image: kernel_image.KernelImage | None,
    with_rules: bool,
    options: vm.VmOptions,
    console: Console,
) -> tuple[node.LabNode, capture.LabRun, float]:
    try:
        lab_node = node.lab_node(scenario, with_rules)
        plan_steps = probes.probes(scenario, lab_node)
    except node.LabSetupError as err:
        _fail(f"{err}", EXIT_BAD_INPUT)
    plan: dict[str, Any] = {**lab_node.as_plan(), "steps": plan_steps}
    where = f"kernel {image.release} under QEMU" if image else "this host's kernel"
    console.print(f"lab: {len(plan_steps)} steps on {where} ...", highlight=False)
    started = time.monotonic()
    try:
        result = capture.collect(vm.run_plan(plan, image, options), lab_node, plan_steps)
    except vm.VmError as err:
        _fail(f"LAB UNAVAILABLE: {err}", EXIT_NO_KERNEL)
    return lab_node, result, time.monotonic() - started


def _report_failure(result: capture.LabRun, console: Console) -> None:
    for error in result.errors:
        console.print(f"[bold red]LAB FAILED[/]: {error}", highlight=False)
    for line in result.console:
        console.print(f"  console: {line}", highlight=False, markup=False)


def _ms(us: int) -> str:
    return f"{us / 1000:.1f}"


def _steps_table(title: str, rows: list[StepResult]) -> Table:
    table = Table(title=title)
    for name in ("#", "action", "client", "result", "pod", "ms", "SYN rtx", "before", "after"):
        table.add_column(name)
    for r in rows:
        client = f"{r.client}:{r.client_port}" if r.client else ""
        table.add_row(
            str(r.index),
            r.action,
            client,
            r.result,
            r.pod,
            _ms(r.connect_us) if r.client else "",
            str(r.syn_retransmits) if r.client else "",
            r.entry_before,
            r.entry_after,
        )
    return table


def _timing(result: capture.LabRun, wall_s: float) -> str:
    steps = [us for i, us in result.took_us.items()]
    per_step = sum(steps) / len(steps) / 1000 if steps else 0.0
    return (
        f"boot+run {wall_s:.1f} s wall; namespace set-up {result.setup_us / 1e6:.1f} s; "
        f"{len(steps)} steps, {per_step:.0f} ms each on average (in the guest)"
    )


@dataclass(frozen=True)
class VmArgs:
    cpus: int
    memory: str
    timeout: float


def _session(
    scenario: Scenario,
    kernel_package: str,
    vmlinuz: Path | None,
    host: bool,
    no_rules: bool,
    vm_args: VmArgs,
    as_json: bool,
) -> tuple[Console, capture.LabRun, float, str]:
    """One lab run of ``scenario``: its console, what the kernel reported, the wall
    time and the kernel's release. A run that failed prints the steps it did
    report, then why it failed, and exits 3."""
    console = Console(stderr=as_json)
    image = _kernel(kernel_package, vmlinuz, host)
    options = vm.VmOptions(cpus=vm_args.cpus, memory=vm_args.memory, timeout_s=vm_args.timeout)
    _, result, wall = _run_lab(scenario, image, not no_rules, options, console)
    if not result.complete:
        if result.steps:
            console.print(_steps_table(f"lab: {result.kernel or 'kernel'}", result.steps))
        _report_failure(result, console)
        raise typer.Exit(EXIT_NO_KERNEL)
    return console, result, wall, result.kernel or (image.release if image else "")


KernelPackage = typer.Option(
    kernel_image.DEFAULT_META,
    "--kernel-package",
    help="Debian linux-image package to boot (fetched with apt-get download, cached).",
)
Vmlinuz = typer.Option(
    None, "--vmlinuz", help="Boot this vmlinuz-<release> (its modules in ../lib/modules)."
)
Host = typer.Option(False, "--host", help="Use this host's kernel (root, ip_vs), no VM.")
NoRules = typer.Option(False, "--no-rules", help="Without kube-proxy's iptables rules.")
Cpus = typer.Option(2, "--cpus", min=1, help="Guest CPUs.")
Memory = typer.Option("1G", "--memory", help="Guest memory (QEMU -m).")
Timeout = typer.Option(vm.DEFAULT_TIMEOUT_S, "--timeout", min=1.0, help="Give up after seconds.")


@lab_app.command("run")
def run_command(
    scenario_file: Path = typer.Argument(..., help="A scenario with a script (docs/scenarios.md)."),
    kernel_package: str = KernelPackage,
    vmlinuz: Path | None = Vmlinuz,
    host: bool = Host,
    no_rules: bool = NoRules,
    cpus: int = Cpus,
    memory: str = Memory,
    timeout: float = Timeout,
    as_json: bool = typer.Option(False, "--json", help="The steps as JSON (as steps.json)."),
) -> None:
    """Run the script on a real kernel and print its per-step trace."""
    scenario = _scenario(scenario_file)
    console, result, wall, _ = _session(
        scenario, kernel_package, vmlinuz, host, no_rules, VmArgs(cpus, memory, timeout), as_json
    )
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in result.steps], indent=1))
    else:
        console.print(_steps_table(f"lab: {result.kernel or 'kernel'}", result.steps))
    console.print(_timing(result, wall), highlight=False)


def _compare_table(rows: list[compare.StepComparison]) -> Table:
    table = Table(title="model vs kernel")
    for name in ("#", "action", "agree", "field", "model", "kernel"):
        table.add_column(name)
    for row in rows:
        if row.agrees:
            model = row.model
            summary = f"{model.result} {model.pod}".strip() if model else ""
            table.add_row(str(row.index), row.action, "yes", "", summary, summary)
            continue
        for n, diff in enumerate(row.differences):
            first = n == 0
            table.add_row(
                str(row.index) if first else "",
                row.action if first else "",
                "[bold red]NO[/]" if first else "",
                diff.field,
                diff.model,
                diff.lab,
            )
    return table


@lab_app.command("compare")
def compare_command(
    scenario_file: Path = typer.Argument(..., help="A scenario with a script (docs/scenarios.md)."),
    kernel_package: str = KernelPackage,
    vmlinuz: Path | None = Vmlinuz,
    host: bool = Host,
    no_rules: bool = NoRules,
    cpus: int = Cpus,
    memory: str = Memory,
    timeout: float = Timeout,
    as_json: bool = typer.Option(False, "--json", help="The comparison as JSON."),
) -> None:
    """Run the script on a real kernel and in the model with that kernel; print
    the per-step agreement. Exit 1 on any disagreement."""
    scenario = _scenario(scenario_file)
    console, result, wall, kernel = _session(
        scenario, kernel_package, vmlinuz, host, no_rules, VmArgs(cpus, memory, timeout), as_json
    )
    model = compare.model_steps(scenario, kernel, not no_rules)
    rows = compare.compare(model, result.steps)
    agreed = sum(r.agrees for r in rows)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "kernel": kernel,
                    "agreed": agreed,
                    "steps": len(rows),
                    "rows": [
                        {
                            "index": r.index,
                            "action": r.action,
                            "agrees": r.agrees,
                            "differences": [d.__dict__ for d in r.differences],
                            "model": r.model.as_dict() if r.model else None,
                            "kernel": r.lab.as_dict() if r.lab else None,
                        }
                        for r in rows
                    ],
                },
                indent=1,
            )
        )
    else:
        console.print(_compare_table(rows))
    console.print(f"kernel {kernel}: {agreed} of {len(rows)} steps agree", highlight=False)
    console.print(_timing(result, wall), highlight=False)
    if agreed != len(rows):
        raise typer.Exit(EXIT_DISAGREE)


@lab_app.command("fingerprint")
def fingerprint_command(
    kernel_package: str = KernelPackage,
    vmlinuz: Path | None = Vmlinuz,
    host: bool = Host,
    no_rules: bool = NoRules,
    cpus: int = Cpus,
    memory: str = Memory,
    timeout: float = Timeout,
    as_json: bool = typer.Option(False, "--json", help="The verdict as JSON."),
) -> None:
    """Run a fixed probe set on a real kernel and name the preset it behaves like
    (or the nearest, with the steps that differ). Exit 1 when none matches."""
    scenario = fingerprint.probe_scenario()
    console, result, wall, kernel = _session(
        scenario, kernel_package, vmlinuz, host, no_rules, VmArgs(cpus, memory, timeout), as_json
    )
    verdict = fingerprint.decide(result.steps, fingerprint.predictions(scenario, not no_rules))
    try:
        resolved = resolve_kernel(kernel).preset if kernel else None
    except ValueError:
        resolved = None
    resolved_name = resolved.name if resolved is not None else ""
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "kernel": kernel,
                    "release_preset": resolved_name,
                    "matches": list(verdict.matches),
                    "nearest": list(verdict.nearest),
                    "decided": verdict.decided,
                    "undecided": list(verdict.undecided),
                    "unprobed": verdict.unprobed,
                    "presets": {
                        c.preset: [
                            {
                                "index": r.index,
                                "action": r.action,
                                "differences": [d.__dict__ for d in r.differences],
                            }
                            for r in c.disagreements
                        ]
                        for c in verdict.candidates
                    },
                },
                indent=1,
            )
        )
    else:
        table = Table(title=f"{kernel}: {len(result.steps)} probe steps against each preset")
        for name in ("preset", "steps agreeing", "first difference"):
            table.add_column(name)
        for c in verdict.candidates:
            first = c.disagreements[0] if c.disagreements else None
            diff = (
                f"step {first.index} {first.action}: {first.differences[0].field} model "
                f"{first.differences[0].model!r}, kernel {first.differences[0].lab!r}"
                if first
                else ""
            )
            table.add_row(c.preset, f"{len(c.rows) - len(c.disagreements)}/{len(c.rows)}", diff)
        console.print(table)
        if verdict.matches:
            console.print(f"matches: {', '.join(verdict.matches)}", highlight=False)
        else:
            console.print(
                f"no preset matches; nearest: {', '.join(verdict.nearest)}", highlight=False
            )
        on = [k for k, v in verdict.decided.items() if v]
        off = [k for k, v in verdict.decided.items() if not v]
        console.print(f"probed, present: {', '.join(on) or 'none'}", highlight=False)
        console.print(f"probed, absent: {', '.join(off) or 'none'}", highlight=False)
        if verdict.undecided:
            console.print(
                f"probed, not told apart: {', '.join(verdict.undecided)}", highlight=False
            )
        if verdict.unprobed:
            shown = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in verdict.unprobed.items())
            console.print(f"not probed (as those presets have them): {shown}", highlight=False)
        if resolved_name:
            same = resolved_name in verdict.chosen
            console.print(
                f"its release names preset {resolved_name}: "
                + ("the probes agree" if same else "the probes DISAGREE"),
                highlight=False,
            )
    console.print(_timing(result, wall), highlight=False)
    if not verdict.matches:
        raise typer.Exit(EXIT_DISAGREE)
