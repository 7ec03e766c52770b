"""`ipvslab doctor`: diagnose a node's IPVS connection reuse, live or from captured files.

Exit status: 0 healthy (no finding at or above --fail-on), 1 findings at or above
it, 2 input that could not be read (each problem printed with file and line,
after the full diagnosis of what could be read), 3 inconclusive (no finding, but
the node's exposure could not be judged; 0 with --inconclusive-ok). 2 wins over 1,
1 over 3. Nothing raises past this layer:
an unexpected error prints one line and exits 2 (``IPVSLAB_DEBUG=1`` re-raises it
with its traceback, for bug reports).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

from ipvslab import __version__
from ipvslab.atomic_file import write_atomic
from ipvslab.cli.options import (
    KERNEL_HELP,
    KUBE_PROXY_HELP,
    NO_COLOR_HELP,
    checked_kernel,
    checked_kube_proxy,
    make_console,
    reader_may_leave,
    silence_stdout,
    warn,
)
from ipvslab.cluster.kube_proxy import LAST_IPVS_KUBE_PROXY, kube_version_warning
from ipvslab.doctor.capture import Capture, InputKind, snapshot_from_capture
from ipvslab.doctor.diagnose import diagnose
from ipvslab.doctor.finding import Severity
from ipvslab.doctor.records import KernelRelease, KubeProxySettings, ParseIssue
from ipvslab.doctor.snapshot import KubeProxyInfo, NodeSnapshot

if TYPE_CHECKING:
    from ipvslab.doctor.report import Report

EXIT_HEALTHY = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_INCONCLUSIVE = 3
EXIT_INTERRUPTED = 130
DEBUG_ENV = "IPVSLAB_DEBUG"


class FailOn(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


doctor_app = typer.Typer(
    name="doctor",
    help="Diagnose IPVS connection reuse on a node (live, read-only) or from captured files.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@doctor_app.callback(invoke_without_command=True)
def doctor_command(
    ctx: typer.Context,
    sources: list[str] | None = typer.Option(
        None,
        "--from",
        "-f",
        metavar="PATH",
        help="Read captured inputs instead of this node: a `doctor collect` archive, a"
        " directory in the capture layout, pasted files (ipvsadm -Ln, /proc/net/ip_vs_conn,"
        " sysctl -a, ...) or - for stdin. Repeatable.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    prometheus: Path | None = typer.Option(
        None,
        "--prometheus",
        metavar="FILE",
        help="Also write metrics for node_exporter's textfile collector (atomically) to FILE.",
    ),
    fail_on: FailOn = typer.Option(
        FailOn.warning,
        "--fail-on",
        help="Exit 1 when a finding is at or above this severity.",
    ),
    inconclusive_ok: bool = typer.Option(
        False,
        "--inconclusive-ok",
        help="Exit 0 rather than 3 when nothing failed but the exposure could not be judged"
        " (no kernel release, a vendor kernel of unknown era).",
    ),
    no_color: bool = typer.Option(False, "--no-color", help=NO_COLOR_HELP),
    root: Path | None = typer.Option(
        None,
        "--root",
        metavar="PATH",
        help="Live read from this root instead of / (a container with the host at /host).",
    ),
    no_exec: bool = typer.Option(
        False, "--no-exec", help="Live read: do not run `kube-proxy --version`."
    ),
    kube_proxy_version: str | None = typer.Option(
        None,
        "--kube-proxy",
        "--kube-proxy-version",
        metavar="vX.Y.Z|none",
        help=KUBE_PROXY_HELP + " Used when the inputs lack it (--kube-proxy-version: old name);"
        " `none`: no kube-proxy on this node, so values not captured are the kernel defaults.",
    ),
    kernel: str | None = typer.Option(
        None,
        "--kernel",
        "-k",
        metavar="KERNEL",
        help=KERNEL_HELP + " Used when the inputs lack a kernel release.",
    ),
    what_ifs: list[str] | None = typer.Option(
        None,
        "--what-if",
        metavar="CHANGE",
        help="Predict, in the cluster twin, what this would do to the node's traffic now:"
        " rollout=VIP:PORT, scale=VIP:PORT:+N (actions), sysctl=NAME=VALUE, kernel=PRESET,"
        " mode=nftables|iptables (settings, each compared with the node as it is)."
        " Repeatable. Needs the connection table.",
    ),
    seeds: int = typer.Option(
        3, "--seeds", min=1, max=20, help="--what-if: runs per variant (the range is shown)."
    ),
    jobs: int = typer.Option(0, "--jobs", min=0, help="--what-if: processes (0: one per core)."),
    report_file: Path | None = typer.Option(
        None,
        "--report",
        metavar="FILE",
        help="--what-if: also write the prediction as one self-contained HTML page.",
    ),
) -> None:
    """Diagnose IPVS connection reuse on this node (read-only) or from captured files."""
    if ctx.invoked_subcommand is not None:
        return
    if sources and root is not None:
        raise typer.BadParameter("--root is for live reads; it cannot be used with --from")
    if report_file is not None and not what_ifs:
        raise typer.BadParameter("--report writes the --what-if page; add --what-if")
    if not what_ifs and (seeds != 3 or jobs != 0):
        raise typer.BadParameter("--seeds and --jobs are for --what-if; add --what-if")
    if root is not None and (problem := _root_problem(root)) is not None:
        _error(problem)  # before any report: a missing root is not a node without IPVS
        raise typer.Exit(EXIT_INPUT)
    code = _guarded(
        lambda: _doctor(
            sources=list(sources or ()),
            as_json=as_json,
            prometheus=prometheus,
            fail_on=Severity(fail_on.value),
            inconclusive_ok=inconclusive_ok,
            plain=no_color or bool(os.environ.get("NO_COLOR")),
            root=root or Path("/"),
            exec_version=not no_exec,
            kube_proxy_version=kube_proxy_version,
            kernel=kernel,
            what_ifs=list(what_ifs or ()),
            seeds=seeds,
            jobs=jobs or (os.cpu_count() or 1),
            report_file=report_file,
        )
    )
    raise typer.Exit(code)


@doctor_app.command("collect")
def collect_command(
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="PATH",
        help="Archive to write (a directory: the default name inside it)."
        " Default: ipvslab-capture-<host>-<time>.tar.gz here.",
    ),
    root: Path = typer.Option(
        Path("/"), "--root", metavar="PATH", help="Read from this root instead of /."
    ),
    no_exec: bool = typer.Option(False, "--no-exec", help="Do not run `kube-proxy --version`."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --output file."),
) -> None:
    """Capture this node's inputs into an archive for `ipvslab doctor --from`."""
    code = _guarded(lambda: _collect(output, root, exec_version=not no_exec, force=force))
    raise typer.Exit(code)


@doctor_app.command("collect-script")
def collect_script_command() -> None:
    """Print a POSIX sh collector (no Python needed on the node) that writes the same
    archive as `collect`: `ipvslab doctor collect-script > collect.sh; sh collect.sh`."""
    from importlib.resources import files

    script = files("ipvslab.doctor").joinpath("collect.sh").read_text(encoding="utf-8")
    with reader_may_leave():
        sys.stdout.write(script)
        sys.stdout.flush()


# --------------------------------------------------------------------------- the edge


def _guarded(run: Callable[[], int]) -> int:
    """Runs the command; an unexpected exception becomes one line on stderr and exit 2."""
    try:
        code = run()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`) outside the report itself: say nothing more.
        silence_stdout()
        return EXIT_HEALTHY
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for details)")
        return EXIT_INPUT
    return code


def _error(message: str) -> None:
    from ipvslab.doctor.human import printable

    try:
        sys.stderr.write(f"ipvslab doctor: {printable(message)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _fail(message: str) -> NoReturn:
    _error(message)
    raise typer.Exit(EXIT_INPUT)


# --------------------------------------------------------------------------- doctor


def _doctor(
    *,
    sources: Sequence[str],
    as_json: bool,
    prometheus: Path | None,
    fail_on: Severity,
    inconclusive_ok: bool,
    plain: bool,
    root: Path,
    exec_version: bool,
    kube_proxy_version: str | None,
    kernel: str | None,
    what_ifs: Sequence[str] = (),
    seeds: int = 3,
    jobs: int = 1,
    report_file: Path | None = None,
) -> int:
    from ipvslab.doctor.human import render
    from ipvslab.doctor.report import build_report

    generated_at = datetime.now(UTC)
    _tolerant_output()
    if sources:
        capture = _capture_files(sources)
        title = "ipvslab doctor: from " + ", ".join(sources)
    else:
        capture = _capture_live(root, exec_version=exec_version)
        title = "ipvslab doctor: live read of this node" + (
            "" if root == Path("/") else f" (root {root})"
        )
    if not capture.files and not capture.problems:
        where = ", ".join(sources) if sources else str(root)
        capture = replace(
            capture,
            problems=(ParseIssue(where, 0, "input", "nothing to read: no input file found"),),
        )
    snapshot = snapshot_from_capture(capture)
    snapshot = apply_overrides(snapshot, kernel=kernel, kube_proxy_version=kube_proxy_version)
    manifest = dict(capture.manifest)
    if capture.live:
        manifest.setdefault("hostname", node_hostname(root))
    diagnosis = diagnose(snapshot, strict=bool(os.environ.get(DEBUG_ENV)))
    what_if_problem = ""
    report = build_report(
        diagnosis, live=capture.live, generated_at=generated_at, manifest=manifest
    )
    if what_ifs:
        from ipvslab.what_if.answer import what_if
        from ipvslab.what_if.changes import WhatIfError, split_what_ifs

        try:
            split_what_ifs(list(what_ifs))  # a value that cannot be read: said before any run
            if not as_json:
                runs = "1 run" if seeds == 1 else f"{seeds} runs"
                warn(f"--what-if: running the node in the cluster twin ({runs} per variant)")
            predicted = what_if(snapshot, diagnosis.facts, list(what_ifs), seeds, jobs)
        except WhatIfError as exc:
            # The diagnosis of what could be read is still printed first; the error after.
            what_if_problem = str(exc)
        else:
            report = report.model_copy(update={"what_if": predicted})
            if report_file is not None:
                _write_what_if_page(report, report_file, title)

    # A reader that stops early (`| head`) ends the output, not the run: the exit status
    # is the diagnosis's and the metrics file is still written.
    with reader_may_leave():
        if as_json:
            sys.stdout.write(report.model_dump_json(indent=2) + "\n")
            sys.stdout.flush()
        else:
            render(report, _console(plain), title=title, fail_on=fail_on)
            sys.stdout.flush()
    if as_json:
        for problem in report.input_problems:
            _error(str(problem))
    if what_if_problem:
        prefixed = what_if_problem.startswith("--what-if")
        _error(what_if_problem if prefixed else f"--what-if: {what_if_problem}")

    code = EXIT_HEALTHY
    if report.inconclusive and not inconclusive_ok:
        code = EXIT_INCONCLUSIVE
    if report.at_or_above(fail_on):
        code = EXIT_FINDINGS
    if report.input_problems or what_if_problem:
        code = EXIT_INPUT
    if prometheus is not None:
        from ipvslab.doctor.prometheus import write_textfile

        if not prometheus.name.endswith(".prom"):
            # node_exporter's textfile collector reads only *.prom files.
            warn(f"--prometheus {prometheus}: node_exporter reads only files ending in .prom")
        try:
            write_textfile(report, prometheus)
        except OSError as exc:
            _error(f"cannot write {prometheus}: {exc.strerror or exc}")
            code = EXIT_INPUT
    return code


def _write_what_if_page(report: Report, target: Path, title: str) -> None:
    """The --what-if page, written whole or not at all (before the text report)."""
    from ipvslab.report.what_if_page import build

    assert report.what_if is not None
    node = report.node
    facts = [("kernel", f"{node.kernel.release or '?'} (preset {node.kernel.preset or 'none'})")]
    if node.kube_proxy is not None:
        facts.append(("kube-proxy", f"{node.kube_proxy.version or '?'} ({node.kube_proxy.mode})"))
    facts.extend(
        (f"net.ipv4.vs.{name}", f"{s.value} ({s.detail})") for name, s in node.sysctls.items()
    )
    facts.append(("ipvslab", report.generated_by.version))
    html = build(report.what_if, facts, title).render()
    try:
        write_atomic(target, lambda tmp: tmp.write_text(html, encoding="utf-8"))
    except OSError as exc:
        _fail(f"--report {target}: cannot write ({exc.strerror or exc})")
    sys.stderr.write(f"what-if page written to {target}\n")


def _tolerant_output() -> None:
    """A character the terminal's encoding lacks is escaped, not an error mid-report."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="backslashreplace")


def _console(plain: bool) -> Console:
    return make_console(plain)


def _capture_files(sources: Sequence[str]) -> Capture:
    from ipvslab.doctor.capture import capture_from

    return capture_from(sources, stdin=sys.stdin)


def _capture_live(root: Path, *, exec_version: bool) -> Capture:
    from ipvslab.doctor.live import capture_live

    return capture_live(root, exec_version=exec_version)


def apply_overrides(
    snapshot: NodeSnapshot, *, kernel: str | None, kube_proxy_version: str | None
) -> NodeSnapshot:
    """Fills the kernel release / kube-proxy version from the command line when missing."""
    from ipvslab.doctor.parsers import parse_kernel_release, parse_kube_proxy_version

    notes = list(snapshot.notes)
    if kernel is not None:
        try:
            resolution = checked_kernel(kernel)
        except typer.BadParameter as exc:
            _fail(f"--kernel {kernel!r}: {exc.message}")
        release = parse_kernel_release(kernel, "--kernel").value
        if release is None:  # a preset name: its base version, resolved by name later
            major, minor, patch = resolution.version
            release = KernelRelease(kernel.strip(), major, minor, patch)
        if snapshot.kernel_release is None:
            snapshot = replace(snapshot, kernel_release=release)
            notes.append(f"kernel release {release.text} from --kernel")
        elif snapshot.kernel_release.text != release.text:
            notes.append(
                f"--kernel {kernel} ignored: the inputs say {snapshot.kernel_release.text}"
            )
    if kube_proxy_version is not None and kube_proxy_version.strip().lower() == "none":
        if snapshot.kube_proxy is not None:
            notes.append("--kube-proxy none ignored: the inputs show a kube-proxy")
        else:
            snapshot = replace(snapshot, no_kube_proxy=True)
            notes.append(
                "no kube-proxy on this node (--kube-proxy none): values not captured are the"
                " kernel defaults"
            )
        kube_proxy_version = None
    if kube_proxy_version is not None:
        version = parse_kube_proxy_version(kube_proxy_version, "--kube-proxy").value
        if version is None:
            _fail(f"--kube-proxy {kube_proxy_version!r}: not a version (like v1.28.2)")
        try:
            checked_kube_proxy(kube_proxy_version)
        except typer.BadParameter as exc:
            _fail(f"--kube-proxy {kube_proxy_version!r}: {exc.message}")
        kp = snapshot.kube_proxy
        if kp is None:
            kp = KubeProxyInfo(settings=KubeProxySettings(), source="--kube-proxy")
        if kp.version is None:
            snapshot = replace(snapshot, kube_proxy=replace(kp, version=version))
            notes.append(f"kube-proxy version {version.text} from --kube-proxy")
        elif kp.version.text != version.text:
            notes.append(
                f"--kube-proxy {kube_proxy_version} ignored: the inputs say {kp.version.text}"
            )
    captured = snapshot.kube_proxy.version if snapshot.kube_proxy is not None else None
    if captured is not None and kube_proxy_version is None:
        # The flag warns on stderr (checked_kube_proxy); a captured version says it here.
        warning = kube_version_warning(captured.version)
        if warning is not None:
            notes.append(f"kube-proxy {captured.text}: {warning}")
        if captured.version[0] == 1 and captured.version[:2] > LAST_IPVS_KUBE_PROXY:
            notes.append(
                f"kube-proxy {captured.text}: the KubeProxyIPVS gate is planned locked off from"
                " v1.43 (KEP-5495): this version should not run in IPVS mode at all"
            )
    return replace(snapshot, notes=tuple(notes))


# --------------------------------------------------------------------------- collect

# What a live read is expected to find (ipvsadm output is only ever pasted).
LIVE_KINDS = tuple(
    k for k in InputKind if k is not InputKind.MANIFEST and not k.path.startswith("ipvsadm")
)


def _root_problem(root: Path) -> str | None:
    """Why ``--root`` cannot be read from, if it cannot."""
    if str(root).startswith("-"):
        return f"--root needs a PATH, got the option {root} (write --root PATH {root})"
    if root.exists() and not root.is_dir():
        return f"--root {root}: not a directory"
    if not root.is_dir():
        return f"--root {root}: no such directory"
    return None


def _collect(output: Path | None, root: Path, *, exec_version: bool, force: bool = False) -> int:
    from ipvslab.doctor.archive import write_archive

    if (bad_root := _root_problem(root)) is not None:
        _error(bad_root)
        return EXIT_INPUT
    if output is not None and output.exists() and not output.is_dir() and not force:
        _error(f"{output} exists; pass --force to overwrite it")
        return EXIT_INPUT

    capture = _capture_live(root, exec_version=exec_version)
    collected_at = datetime.now(UTC)
    hostname = node_hostname(root)
    target = output if output is not None else Path.cwd()
    try:
        written = write_archive(
            capture,
            target,
            collected_at=collected_at,
            hostname=hostname,
            ipvslab_version=__version__,
        )
    except OSError as exc:
        _error(f"cannot write the archive to {target}: {exc.strerror or exc}")
        return EXIT_INPUT
    from ipvslab.doctor.human import printable

    def echo(text: str) -> None:
        sys.stdout.write(printable(text.removesuffix("\n")) + "\n")

    echo(f"wrote {written}\n")
    captured = [k for k in LIVE_KINDS if k in capture.files]
    missing = [k for k in LIVE_KINDS if k not in capture.files]
    echo(f"captured ({len(captured)}): {', '.join(k.path for k in captured) or 'nothing'}\n")
    if missing:
        echo(f"not captured ({len(missing)}): {', '.join(k.path for k in missing)}\n")
    if capture.ipvs_present is False:
        echo("no IPVS on this node: /proc/net/ip_vs does not exist\n")
    for note in capture.notes:
        echo(f"note: {note}\n")
    for problem in capture.problems:
        echo(f"problem: {problem}\n")
    echo(f"diagnose it with: ipvslab doctor --from {written}\n")
    if not capture.files:
        _error("nothing could be captured")
        return EXIT_INPUT
    return EXIT_HEALTHY


def node_hostname(root: Path) -> str:
    """The node's name: from the root's /proc or /etc when reading another root."""
    if root != Path("/"):
        for rel in ("proc/sys/kernel/hostname", "etc/hostname"):
            try:
                text = (root / rel).read_text(encoding="utf-8", errors="replace").strip()
            except OSError:
                continue
            if text:
                return text.splitlines()[0].strip()
    return socket.gethostname() or "node"
