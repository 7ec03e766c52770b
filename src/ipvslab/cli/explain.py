"""`ipvslab explain`: the kernel's decision for a SYN from a reused client port."""

from __future__ import annotations

import contextlib
import json
from enum import Enum, StrEnum

import typer
from rich.console import Console
from rich.table import Table

from ipvslab.cli.options import (
    KERNEL_HELP,
    NO_COLOR_HELP,
    checked_kernel,
    checked_kube_proxy,
    make_console,
    reader_may_leave,
    warn,
)
from ipvslab.cluster.kube_proxy import (
    LAST_IPVS_KUBE_PROXY,
    DeleteCondition,
    kube_proxy_profile,
    parse_kube_version,
)
from ipvslab.explain import (
    DEFAULT_KUBE_PROXY,
    ExplainError,
    ExplainRequest,
    Explanation,
    ServerCondition,
    explain,
    explain_all_presets,
)
from ipvslab.kernel.conntrack import ConntrackStatus
from ipvslab.kernel.dest import ForwardMethod
from ipvslab.kernel.sysctls import SysctlError
from ipvslab.kernel.tcp_states import TcpState

StateName = Enum(  # type: ignore[misc]
    "StateName", {s.name: s.name for s in TcpState if s not in (TcpState.NONE,)}, type=str
)


class ConntrackChoice(StrEnum):
    auto = "auto"
    none = "none"
    new = "new"
    confirmed = "confirmed"


class ForwardChoice(StrEnum):
    masq = "masq"
    route = "route"
    tunnel = "tunnel"
    local = "local"


_CT = {
    ConntrackChoice.none: ConntrackStatus.NONE,
    ConntrackChoice.new: ConntrackStatus.NEW,
    ConntrackChoice.confirmed: ConntrackStatus.CONFIRMED,
}
_FWD = {
    ForwardChoice.masq: ForwardMethod.MASQ,
    ForwardChoice.route: ForwardMethod.ROUTE,
    ForwardChoice.tunnel: ForwardMethod.TUNNEL,
    ForwardChoice.local: ForwardMethod.LOCAL,
}
_PROBLEM_STYLE = {"problem 1": "bold red", "problem 2": "bold yellow", "none": "green"}


def explain_command(
    kernel: str | None = typer.Option(
        None,
        "--kernel",
        "-k",
        help=KERNEL_HELP + " Without it: every preset side by side.",
    ),
    kube_proxy: str = typer.Option(
        DEFAULT_KUBE_PROXY,
        "--kube-proxy",
        help="kube-proxy version whose sysctls apply (v1.28.2), or 'none' for the node's defaults.",
    ),
    conn_reuse_mode: int | None = typer.Option(None, help="Override net.ipv4.vs.conn_reuse_mode."),
    conntrack: int | None = typer.Option(None, help="Override net.ipv4.vs.conntrack."),
    expire_nodest_conn: int | None = typer.Option(
        None, help="Override net.ipv4.vs.expire_nodest_conn."
    ),
    expire_quiescent_template: int | None = typer.Option(
        None, help="Override net.ipv4.vs.expire_quiescent_template."
    ),
    conn_reuse_old_conntrack: int | None = typer.Option(
        None, help="Override net.ipv4.vs.conn_reuse_old_conntrack (TencentOS only)."
    ),
    state: StateName = typer.Option(
        "TIME_WAIT", "--state", help="State of the old entry for the reused client port."
    ),
    server: ServerCondition = typer.Option(
        ServerCondition.WEIGHT0_POD_GONE.value,
        "--server",
        help="What happened to the old entry's real server.",
    ),
    forward: ForwardChoice = typer.Option(ForwardChoice.masq, "--forward"),
    persistence: int = typer.Option(
        0, "--persistence", min=0, help="Session affinity timeout in seconds (0 = none)."
    ),
    conntrack_status: ConntrackChoice = typer.Option(
        ConntrackChoice.auto,
        "--ct",
        help="Conntrack the SYN carries; auto asks the conntrack twin.",
    ),
    age: int = typer.Option(1, "--age", min=0, help="Seconds since the old entry's last packet."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    no_color: bool = typer.Option(False, "--no-color", help=NO_COLOR_HELP),
) -> None:
    """What does the kernel do with a SYN from a reused client port?"""
    resolution = checked_kernel(kernel) if kernel else None
    if kube_proxy.lower() != "none":
        with contextlib.suppress(ValueError):  # a bad version is checked_kube_proxy's error
            parsed = parse_kube_version(kube_proxy)
            if parsed[0] == 1 and parsed[:2] > LAST_IPVS_KUBE_PROXY:
                # As `ipvslab run` refuses it: the KubeProxyIPVS gate is planned locked off.
                raise typer.BadParameter(
                    f"{kube_proxy} has no IPVS mode (the KubeProxyIPVS gate is planned locked"
                    " off from v1.43, KEP-5495); nftables mode has no IPVS connection reuse",
                    param_hint="--kube-proxy",
                )
        kube_version = checked_kube_proxy(kube_proxy)
        immediate = kube_proxy_profile(kube_version).tcp_delete == DeleteCondition.IMMEDIATE
        if immediate and server in (ServerCondition.WEIGHT0, ServerCondition.WEIGHT0_POD_GONE):
            # Graceful termination (weight 0, then delete when drained) is #66012 (v1.12.2,
            # v1.13.0); before it kube-proxy deleted the real server with its endpoint.
            warn(
                f"--server {server.value}: kube-proxy {kube_proxy} never sets weight 0; it deletes"
                " a terminating pod's real server at once (graceful termination came with"
                " #66012 in v1.12.2 and v1.13.0), so that pod is --server removed"
            )
    if conn_reuse_old_conntrack is not None and (
        resolution is None or not resolution.features.reuse_old_conntrack
    ):
        # The sysctl is TencentOS-kernel's own (PR #17): elsewhere it does not exist.
        where = f"kernel {kernel}" if kernel else "the presets other than tencentos-5.4"
        warn(
            "--conn-reuse-old-conntrack: net.ipv4.vs.conn_reuse_old_conntrack exists only in"
            f" TencentOS kernels; it has no effect on {where}"
        )
    request = ExplainRequest(
        kernel=kernel or "6.1",
        kube_proxy=None if kube_proxy.lower() == "none" else kube_proxy,
        conn_reuse_mode=conn_reuse_mode,
        conntrack=conntrack,
        expire_nodest_conn=expire_nodest_conn,
        expire_quiescent_template=expire_quiescent_template,
        conn_reuse_old_conntrack=conn_reuse_old_conntrack,
        old_state=TcpState[state.value],
        server=server,
        forward=_FWD[forward],
        persistence=persistence,
        conntrack_status=_CT.get(conntrack_status),
        age=age,
    )
    try:
        results = [explain(request)] if kernel else explain_all_presets(request)
    except (ExplainError, SysctlError, ValueError, KeyError) as err:
        message = err.args[0] if err.args else str(err)
        typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    with reader_may_leave():
        if as_json:
            payload = results[0].as_dict() if kernel else [r.as_dict() for r in results]
            typer.echo(json.dumps(payload, indent=2))
            return
        console = make_console(no_color)
        if kernel:
            _print_one(console, results[0])
        else:
            _print_matrix(console, request, results)


def _print_one(console: Console, e: Explanation) -> None:
    r = e.request
    preset = e.kernel.preset
    kernel = f"{e.kernel.text} (preset {preset.name})" if preset else e.kernel.text
    console.print(f"[bold]Kernel[/] {kernel}, mainline-equivalent {e.kernel.version_text}")
    console.print(
        "[bold]Features[/] " + (", ".join(f.value for f in e.kernel.features.enabled) or "none")
    )
    sysctls = " ".join(
        f"{n}={getattr(e.sysctls, n)}"
        for n in ("conn_reuse_mode", "conntrack", "expire_nodest_conn", "expire_quiescent_template")
    )
    console.print(f"[bold]Sysctls[/] {sysctls}")
    if r.kube_proxy:
        for a in e.kube_proxy_actions:
            value = "left as-is" if a.value is None else f"= {a.value}"
            console.print(f"  kube-proxy {r.kube_proxy}: {a.name} {value} ({a.reason})")
    console.print(
        f"[bold]Old entry[/] {r.old_state.name} via {r.forward.value}, server {r.server.value}, "
        f"SYN {r.age} s later carrying a {e.conntrack_status.value} conntrack"
    )
    table = Table(title="Path through ip_vs_in()")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("commit")
    for i, step in enumerate(e.steps, 1):
        table.add_row(str(i), step.text, step.commit or "-")
    console.print(table)
    style = _PROBLEM_STYLE.get(e.problem, "")
    console.print(f"[bold]Decision[/] {e.outcome.value} -> {e.destination}")
    console.print(f"[{style}]{e.symptom} ({e.problem})[/]")
    for w in e.warnings:
        console.print(f"[yellow]warning:[/] {w}")


def _print_matrix(console: Console, request: ExplainRequest, results: list[Explanation]) -> None:
    r = request
    console.print(
        f"[bold]A SYN reuses a client port[/]: old entry {r.old_state.name}, "
        f"server {r.server.value}, kube-proxy {r.kube_proxy or 'none'}"
    )
    table = Table(show_lines=False)
    table.add_column("preset", no_wrap=True)
    table.add_column("kernel", no_wrap=True)
    table.add_column("reuse/ct/nodest")
    table.add_column("decision")
    table.add_column("result")
    for e in results:
        s = e.sysctls
        style = _PROBLEM_STYLE.get(e.problem, "")
        table.add_row(
            e.kernel.preset.name if e.kernel.preset else e.kernel.text,
            e.kernel.version_text,
            f"{s.conn_reuse_mode}/{s.conntrack}/{s.expire_nodest_conn}",
            e.outcome.name.lower(),
            f"[{style}]{e.short}[/]",
        )
    console.print(table)
    console.print("One kernel in detail: ipvslab explain --kernel NAME   (names: ipvslab presets)")
