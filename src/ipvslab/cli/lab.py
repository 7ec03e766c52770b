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
from ipvslab.lab import (
    capture,
    compare,
    era_module,
    fingerprint,
    kernel_image,
    node,
    probes,
    vm,
)
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
    scenarios: list[Scenario],
    image: kernel_image.KernelImage | None,
    with_rules: bool,
    options: vm.VmOptions,
    console: Console,
    module: era_module.EraModule | None = None,
) -> tuple[list[capture.LabRun], float]:
    """Every scenario's script on the kernel, one after the other in one boot."""
    nodes: list[node.LabNode] = []
    plan_steps: list[list[dict[str, Any]]] = []
    for scenario in scenarios:
        try:
            nodes.append(node.lab_node(scenario, with_rules))
            plan_steps.append(probes.probes(scenario, nodes[-1]))
        except node.LabSetupError as err:
            _fail(f"{scenario.name}: {err}", EXIT_BAD_INPUT)
    plans = [{**n.as_plan(), "steps": p} for n, p in zip(nodes, plan_steps, strict=True)]
    where = f"kernel {image.release} under QEMU" if image else "this host's kernel"
    if module is not None:
        plans = [{**p, "ip_vs_module": str(module.ip_vs)} for p in plans]
        where += f" with the {module.era.name} era's ip_vs ({module.directory / 'ERA.txt'})"
    count = sum(len(p) for p in plan_steps)
    console.print(f"lab: {count} steps of {len(plans)} script(s) on {where} ...", highlight=False)
    started = time.monotonic()
    results = [capture.LabRun() for _ in plans]
    lines = vm.run_plan({"plans": plans}, image, options)
    try:
        capture.collect_batch(lines, nodes, plan_steps, results)
    except vm.VmError as err:
        _fail(f"LAB UNAVAILABLE: {err}", EXIT_NO_KERNEL)
    except KeyboardInterrupt:
        lines.close()  # the VM is stopped before anything is printed
        for scenario, result in zip(scenarios, results, strict=True):
            if result.steps:
                console.print(_steps_table(f"{scenario.name}: {result.kernel}", result.steps))
        _fail("interrupted: the VM was stopped; the steps above are those it reported", 130)
    return results, time.monotonic() - started


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


def _timing(results: list[capture.LabRun], wall_s: float) -> str:
    steps = [us for result in results for us in result.took_us.values()]
    per_step = sum(steps) / len(steps) / 1000 if steps else 0.0
    setup = sum(r.setup_us for r in results) / 1e6
    return (
        f"boot+run {wall_s:.1f} s wall; namespace set-up {setup:.1f} s; "
        f"{len(steps)} steps, {per_step:.0f} ms each on average (in the guest)"
    )


@dataclass(frozen=True)
class VmArgs:
    cpus: int
    memory: str
    timeout: float
    era: str | None = None  # load that era's rebuilt ip_vs in the guest


def _session(
    scenarios: list[Scenario],
    kernel_package: str,
    vmlinuz: Path | None,
    host: bool,
    no_rules: bool,
    vm_args: VmArgs,
    as_json: bool,
) -> tuple[Console, list[capture.LabRun], float, str]:
    """One boot running the scenarios: its console, what the kernel reported for
    each, the wall time and the kernel's release. A run that failed prints the
    steps it did report, then why it failed, and exits 3."""
    console = Console(stderr=as_json)
    image = _kernel(kernel_package, vmlinuz, host)
    module = _era_module(vm_args.era, image, console)
    options = vm.VmOptions(cpus=vm_args.cpus, memory=vm_args.memory, timeout_s=vm_args.timeout)
    results, wall = _run_lab(scenarios, image, not no_rules, options, console, module)
    if not all(r.complete for r in results):
        for scenario, result in zip(scenarios, results, strict=True):
            if result.steps:
                console.print(_steps_table(f"{scenario.name}: {result.kernel}", result.steps))
            _report_failure(result, console)
        raise typer.Exit(EXIT_NO_KERNEL)
    kernel = results[0].kernel if results else ""
    return console, results, wall, kernel or (image.release if image else "")


def _era(name: str | None) -> era_module.Era | None:
    if name is None:
        return None
    try:
        return era_module.era_named(name)
    except era_module.EraModuleError as err:
        _fail(f"--era: {err}", EXIT_BAD_INPUT)
    raise AssertionError("unreachable")


def _era_module(
    name: str | None, image: kernel_image.KernelImage | None, console: Console
) -> era_module.EraModule | None:
    era = _era(name)
    if era is None:
        return None
    if image is None:
        _fail("--era needs a VM (not --host): the era module replaces the kernel's ip_vs", 2)
        raise AssertionError("unreachable")
    started = time.monotonic()
    try:
        module = era_module.build_era_module(image, era)
    except era_module.EraModuleError as err:
        _fail(f"LAB UNAVAILABLE: no {era.name} era module: {err}", EXIT_NO_KERNEL)
        raise AssertionError("unreachable") from None
    console.print(
        f"era module {era.name} for {image.release} ({time.monotonic() - started:.0f} s):"
        f" reverts {', '.join(era.reverts)}",
        highlight=False,
    )
    return module


def _overrides(name: str | None) -> dict[str, bool]:
    era = _era(name)
    if era is None:
        return {}
    return {**dict.fromkeys(era.features_on, True), **dict.fromkeys(era.features_off, False)}


def _model_label(kernel: str, name: str | None) -> str:
    """The kernel the model ran, named honestly when an era changed it."""
    era = _era(name)
    if era is None:
        return kernel
    changed = [f"{f} on" for f in era.features_on] + [f"{f} off" for f in era.features_off]
    return f"{kernel} + era {era.name} ({', '.join(changed)})"


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
EraOption = typer.Option(
    None,
    "--era",
    help="Load this era's rebuilt ip_vs instead of the stock one (drop: f0a5e4d7a594 reverted).",
)


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
    era: str | None = EraOption,
    as_json: bool = typer.Option(False, "--json", help="The steps as JSON (as steps.json)."),
) -> None:
    """Run the script on a real kernel and print its per-step trace."""
    scenario = _scenario(scenario_file)
    vm_args = VmArgs(cpus, memory, timeout, era)
    console, (result,), wall, _ = _session(
        [scenario], kernel_package, vmlinuz, host, no_rules, vm_args, as_json
    )
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in result.steps], indent=1))
    else:
        console.print(_steps_table(f"lab: {result.kernel or 'kernel'}", result.steps))
    console.print(_timing([result], wall), highlight=False)


def _compare_table(title: str, rows: list[compare.StepComparison]) -> Table:
    table = Table(title=title)
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
    scenario_files: list[Path] = typer.Argument(
        ..., help="Scenarios with a script (docs/scenarios.md); all run in one boot."
    ),
    kernel_package: str = KernelPackage,
    vmlinuz: Path | None = Vmlinuz,
    host: bool = Host,
    no_rules: bool = NoRules,
    cpus: int = Cpus,
    memory: str = Memory,
    timeout: float = Timeout,
    era: str | None = EraOption,
    as_json: bool = typer.Option(False, "--json", help="The comparison as JSON."),
) -> None:
    """Run the scripts on a real kernel and in the model with that kernel; print
    the per-step agreement. Exit 1 on any disagreement."""
    scenarios = [_scenario(path) for path in scenario_files]
    vm_args = VmArgs(cpus, memory, timeout, era)
    console, results, wall, kernel = _session(
        scenarios, kernel_package, vmlinuz, host, no_rules, vm_args, as_json
    )
    compared = [
        (
            path,
            compare.compare(
                compare.model_steps(scenario, kernel, not no_rules, _overrides(era)), result.steps
            ),
        )
        for path, scenario, result in zip(scenario_files, scenarios, results, strict=True)
    ]
    model_kernel = _model_label(kernel, era)
    agreed = sum(r.agrees for _, rows in compared for r in rows)
    total = sum(len(rows) for _, rows in compared)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "kernel": kernel,
                    "era": era,
                    "model": model_kernel,
                    "agreed": agreed,
                    "steps": total,
                    "scripts": [
                        {"script": str(path), "rows": [_row_json(r) for r in rows]}
                        for path, rows in compared
                    ],
                },
                indent=1,
            )
        )
    else:
        for path, rows in compared:
            console.print(_compare_table(f"{path}: model ({model_kernel}) vs kernel", rows))
    for path, rows in compared:
        console.print(
            f"{path}: {sum(r.agrees for r in rows)} of {len(rows)} steps agree", highlight=False
        )
    on_era = f" with the {era} era module" if era else ""
    console.print(
        f"kernel {kernel}{on_era} vs model {model_kernel}: {agreed} of {total} steps agree",
        highlight=False,
    )
    console.print(_timing(results, wall), highlight=False)
    if agreed != total:
        raise typer.Exit(EXIT_DISAGREE)


def _row_json(row: compare.StepComparison) -> dict[str, Any]:
    return {
        "index": row.index,
        "action": row.action,
        "agrees": row.agrees,
        "differences": [d.__dict__ for d in row.differences],
        "model": row.model.as_dict() if row.model else None,
        "kernel": row.lab.as_dict() if row.lab else None,
    }


@lab_app.command("fingerprint")
def fingerprint_command(
    kernel_package: str = KernelPackage,
    vmlinuz: Path | None = Vmlinuz,
    host: bool = Host,
    no_rules: bool = NoRules,
    cpus: int = Cpus,
    memory: str = Memory,
    timeout: float = Timeout,
    era: str | None = EraOption,
    as_json: bool = typer.Option(False, "--json", help="The verdict as JSON."),
) -> None:
    """Run a fixed probe set on a real kernel and name the preset it behaves like
    (or the nearest, with the steps that differ). Exit 1 when none matches."""
    scenario = fingerprint.probe_scenario()
    vm_args = VmArgs(cpus, memory, timeout, era)
    console, (result,), wall, kernel = _session(
        [scenario], kernel_package, vmlinuz, host, no_rules, vm_args, as_json
    )
    predicted = fingerprint.predictions(scenario, not no_rules)
    extra = {}
    era_label = ""
    if era and kernel:
        # The booted kernel with the era's features: what the era module should be.
        era_label, steps, features = fingerprint.era_candidate(
            scenario, kernel, _overrides(era), _model_label(kernel, era), not no_rules
        )
        predicted[era_label] = steps
        extra[era_label] = features
    verdict = fingerprint.decide(result.steps, predicted, extra)
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
                    "era": era,
                    "era_candidate": era_label,
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
        if era_label:
            console.print(
                f"with the {era} era module: "
                + ("the probes agree with " if era_label in verdict.matches else "NO match for ")
                + era_label,
                highlight=False,
            )
        elif resolved_name:
            same = resolved_name in verdict.chosen
            console.print(
                f"its release names preset {resolved_name}: "
                + ("the probes agree" if same else "the probes DISAGREE"),
                highlight=False,
            )
    console.print(_timing([result], wall), highlight=False)
    if not verdict.matches:
        raise typer.Exit(EXIT_DISAGREE)


@lab_app.command("era-module")
def era_module_command(
    era: str = typer.Argument("drop", help=f"The era ({', '.join(era_module.ERAS)})."),
    kernel_package: str = KernelPackage,
    vmlinuz: Path | None = Vmlinuz,
    jobs: int = typer.Option(2, "--jobs", min=1, help="make -j"),
) -> None:
    """Build (or find in the cache) the booted kernel's ip_vs.ko with an older
    era's reuse decision restored, and print where it is and what it reverts."""
    chosen = _era(era)
    assert chosen is not None
    image = _kernel(kernel_package, vmlinuz, False)
    assert image is not None
    started = time.monotonic()
    try:
        module = era_module.build_era_module(image, chosen, jobs=jobs)
    except era_module.EraModuleError as err:
        _fail(f"LAB UNAVAILABLE: no {chosen.name} era module: {err}", EXIT_NO_KERNEL)
        raise AssertionError("unreachable") from None
    typer.echo(f"{module.ip_vs}")
    typer.echo((module.directory / "ERA.txt").read_text().rstrip())
    typer.echo(f"({time.monotonic() - started:.1f} s)")
