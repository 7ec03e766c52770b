"""`ipvslab doctor` and `ipvslab doctor collect` as a user runs them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from ipvslab.cli.main import app
from ipvslab.doctor import diagnose as diagnose_module
from ipvslab.doctor.facts import NodeFacts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.human import printable
from ipvslab.doctor.prometheus import METRICS, PREFIX
from ipvslab.doctor.report import Report
from ipvslab.doctor.snapshot import NodeSnapshot

NODES = Path(__file__).resolve().parents[1] / "fixtures" / "doctor" / "cli"
HEALTHY = NODES / "healthy"
EXPOSED = NODES / "ubuntu-18.04-81775"
MALFORMED = NODES / "malformed"
PASTED = NODES / "pasted"

runner = CliRunner()


def doctor(*args: str | Path, input: str | None = None, **env: str) -> Result:
    result = runner.invoke(app, ["doctor", *map(str, args)], input=input, env=env or None)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    return result


def report_of(result: Result) -> Report:
    return Report.model_validate(json.loads(result.stdout))


@pytest.fixture
def findings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Replaces the checks by one that reports findings of the given severities."""

    def install(*severities: Severity) -> None:
        def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
            return [
                Finding(
                    FindingKind.STUCK_GRACEFUL_TERMINATION,
                    severity,
                    f"a {severity.value} finding",
                    ("10.244.1.10:8080 weight 0 with 43 entries", "[2001:db8::1]:80 [bold]x[/]"),
                    "what it does to traffic",
                    ("sysctl -w net.ipv4.vs.expire_nodest_conn=1",),
                    subject="TCP 10.96.33.7:80",
                    data={"entries": 43},
                )
                for severity in severities
            ]

        monkeypatch.setattr(diagnose_module, "all_checks", lambda: (check,))

    return install


# --------------------------------------------------------------------------- human output


def test_human_output_has_the_header_and_says_healthy() -> None:
    result = doctor("--from", HEALTHY)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "6.1.0-18-amd64 → preset debian-12" in out
    assert "Debian GNU/Linux 12 (bookworm)" in out
    assert "v1.31.0, mode ipvs" in out
    assert "net.ipv4.vs.conn_reuse_mode" in out and "read on the node" in out
    assert "not exposed to either reuse problem" in out
    assert "Result: healthy" in out


def test_human_output_shows_exposure_with_its_reason_and_the_stuck_server() -> None:
    result = doctor("--from", EXPOSED, "--fail-on", "critical")
    out = result.output
    assert "preset ubuntu-18.04" in out
    assert "exposed to problem 1" in out and "#81775" in out
    assert "conn_reuse_mode=0 skips the whole reuse block [d752c364571743d6]" in out
    assert "10.244.1.10:8080" in out and "weight 0" in out


def test_human_output_prints_each_finding(findings: Callable[..., None]) -> None:
    findings(Severity.CRITICAL, Severity.INFO)
    result = doctor("--from", HEALTHY)
    assert result.exit_code == 1
    out = result.output
    assert "Findings (2: 1 critical, 1 info)" in out
    assert "CRITICAL  a critical finding  [stuck-graceful-termination]" in out
    assert "about: TCP 10.96.33.7:80" in out
    assert "    10.244.1.10:8080 weight 0 with 43 entries" in out
    assert "[2001:db8::1]:80 [bold]x[/]" in out  # input text is never taken as markup
    assert "meaning: what it does to traffic" in out
    assert "    sysctl -w net.ipv4.vs.expire_nodest_conn=1" in out
    assert "Result: 1 finding at or above warning" in out


def test_colour_only_when_asked_for_and_never_with_no_color(findings: Callable[..., None]) -> None:
    findings(Severity.CRITICAL)
    assert "\x1b[" not in doctor("--from", HEALTHY).output  # not a terminal: plain
    assert "\x1b[" in doctor("--from", HEALTHY, FORCE_COLOR="1").output
    assert "\x1b[" not in doctor("--from", HEALTHY, "--no-color", FORCE_COLOR="1").output
    assert "\x1b[" not in doctor("--from", HEALTHY, FORCE_COLOR="1", NO_COLOR="1").output


# --------------------------------------------------------------------------- JSON


def test_json_output_is_the_report() -> None:
    result = doctor("--from", EXPOSED, "--json", "--fail-on", "critical")
    report = report_of(result)
    assert report.node.kernel.preset == "ubuntu-18.04"
    assert report.exposure.stale_forwarding is True
    assert [s.address for s in report.stuck_real_servers] == ["10.244.1.10"]
    assert report.input.live is False
    assert report.generated_at is not None
    assert result.stderr == ""


def test_json_validates_against_the_committed_schema(findings: Callable[..., None]) -> None:
    findings(Severity.WARNING)
    result = doctor("--from", MALFORMED, "--json")
    data = json.loads(result.stdout)
    schema = json.loads((Path(__file__).parents[2] / "docs/doctor-report.schema.json").read_text())
    assert set(data) == set(schema["properties"])
    assert set(schema["required"]) <= set(data)
    report = Report.model_validate(data)
    assert json.loads(report.model_dump_json()) == data
    assert report.findings[0].data == {"entries": 43}


# --------------------------------------------------------------------------- exit status


@pytest.mark.parametrize(
    ("severities", "fail_on", "code"),
    [
        ((), None, 0),
        ((Severity.INFO,), None, 0),
        ((Severity.WARNING,), None, 1),
        ((Severity.CRITICAL,), None, 1),
        ((Severity.INFO,), "info", 1),
        ((Severity.WARNING,), "critical", 0),
        ((Severity.WARNING, Severity.CRITICAL), "critical", 1),
        ((Severity.INFO,), "warning", 0),
    ],
)
def test_exit_status_follows_fail_on(
    findings: Callable[..., None],
    severities: tuple[Severity, ...],
    fail_on: str | None,
    code: int,
) -> None:
    findings(*severities)
    args = ["--from", str(HEALTHY)] + (["--fail-on", fail_on] if fail_on else [])
    assert doctor(*args).exit_code == code
    assert doctor(*args, "--json").exit_code == code


def test_a_ticket_without_a_kernel_release_is_inconclusive_not_healthy(tmp_path: Path) -> None:
    # The healthy node's tables, but not its kernel: nothing says whether a reused port is
    # forwarded to a deleted pod, so "healthy" with exit 0 would be a confident lie.
    root = tmp_path / "node"
    shutil.copytree(HEALTHY, root)
    (root / "uname-r.txt").unlink()
    result = doctor("--from", root)
    assert result.exit_code == 3, result.output
    out = " ".join(result.output.split())
    assert "Result: inconclusive" in out and "kernel release was not captured" in out
    assert "Result: healthy" not in out
    as_json = doctor("--from", root, "--json")
    assert as_json.exit_code == 3
    assert report_of(as_json).inconclusive and not report_of(as_json).exposure.known
    # Told that inconclusive is fine, or given the kernel, it passes.
    assert doctor("--from", root, "--inconclusive-ok").exit_code == 0
    assert doctor("--from", root, "--kernel", "6.1.0-18-amd64").exit_code == 0
    assert not report_of(doctor("--from", HEALTHY, "--json")).inconclusive


def test_findings_and_input_problems_win_over_inconclusive(
    findings: Callable[..., None],
) -> None:
    findings(Severity.WARNING)
    assert doctor("--from", PASTED).exit_code == 1
    assert doctor("--from", PASTED, "--fail-on", "critical").exit_code == 3
    assert doctor("--from", PASTED, "--from", "/nonexistent/ipvsadm.txt").exit_code == 2


def test_only_unreadable_inputs_are_never_healthy(tmp_path: Path) -> None:
    unreadable = tmp_path / "missing.txt"
    result = doctor("--from", unreadable, "--inconclusive-ok")
    assert result.exit_code == 2
    assert "Result: healthy" not in result.output


def test_a_malformed_line_is_reported_with_file_and_line_after_the_diagnosis(
    findings: Callable[..., None],
) -> None:
    findings(Severity.CRITICAL)
    result = doctor("--from", MALFORMED)
    assert result.exit_code == 2  # input problems win over findings
    out = result.output
    problem = "malformed/proc/net/ip_vs_conn:3: FPrt: expected 4 hex digits, got 'ZZZZ'"
    assert problem in out
    # The whole diagnosis came first: header, findings, then the problem.
    assert out.index("preset debian-12") < out.index("a critical finding") < out.index(problem)
    assert "7 connection entries" in " ".join(out.split())  # the other lines were read


def test_json_mode_reports_input_problems_in_the_report_and_on_stderr() -> None:
    result = doctor("--from", MALFORMED, "--json")
    assert result.exit_code == 2
    [problem] = report_of(result).input_problems
    assert (problem.line, problem.field) == (3, "FPrt")
    assert "ip_vs_conn:3: FPrt" in result.stderr


def test_a_sysctl_given_twice_with_different_values_is_an_input_problem(tmp_path: Path) -> None:
    # Two `sysctl -a` outputs pasted together (or sysctl.d files appended): which
    # conn_reuse_mode the node has decides the whole diagnosis, so the doctor must not
    # silently pick one and report "healthy" with exit 0.
    root = tmp_path / "node"
    shutil.copytree(HEALTHY, root)
    with (root / "sysctl.txt").open("a") as f:
        f.write("net.ipv4.vs.conn_reuse_mode = 0\n")
    result = doctor("--from", root)
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "sysctl.txt:6: net.ipv4.vs.conn_reuse_mode: given again with another value" in out
    # The same value twice is harmless.
    with (root / "sysctl.txt").open("a") as f:
        f.write("net.ipv4.vs.conntrack = 1\n")
    lines = (root / "sysctl.txt").read_text().splitlines()
    (root / "sysctl.txt").write_text("\n".join(lines[:-2] + lines[-1:]) + "\n")
    assert doctor("--from", root).exit_code == 0


def test_a_bad_override_is_one_line_and_exit_2() -> None:
    result = doctor("--from", PASTED, "--kernel", "not-a-kernel")
    assert result.exit_code == 2
    assert "--kernel 'not-a-kernel': not a kernel preset, mainline version" in result.output


def test_root_cannot_be_combined_with_from() -> None:
    assert doctor("--from", HEALTHY, "--root", "/host").exit_code == 2


def test_an_unexpected_error_is_one_line_unless_debugging(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(diagnose_module, "all_checks", broken)
    result = runner.invoke(app, ["doctor", "--from", str(HEALTHY)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "ipvslab doctor: internal error: RuntimeError: boom (set IPVSLAB_DEBUG=1 for details)"
    ]
    debug = runner.invoke(app, ["doctor", "--from", str(HEALTHY)], env={"IPVSLAB_DEBUG": "1"})
    assert isinstance(debug.exception, RuntimeError)


# --------------------------------------------------------------------------- pasted files, stdin


def test_pasted_files_with_overrides_fill_what_they_lack() -> None:
    args = ["--from", PASTED / "ipvsadm-Ln.txt", "--from", PASTED / "ipvsadm-Lnc.txt"]
    bare = report_of(doctor(*args, "--json"))
    assert not bare.exposure.known
    result = doctor(
        *args, "--kernel", "4.15.0-213-generic", "--kube-proxy-version", "v1.20.0", "--json"
    )
    report = report_of(result)
    assert report.node.kernel.preset == "ubuntu-18.04"
    assert report.node.kube_proxy is not None and report.node.kube_proxy.version == "v1.20.0"
    assert report.node.sysctls["conn_reuse_mode"].origin.value == "kube-proxy"
    assert report.exposure.known and report.exposure.stale_forwarding
    assert report.connections is not None and report.connections.total == 48
    assert any("from --kernel" in n for n in report.input.notes)


def test_overrides_do_not_replace_what_the_inputs_say() -> None:
    report = report_of(doctor("--from", EXPOSED, "--kernel", "6.1.0-18-amd64", "--json"))
    assert report.node.kernel.release == "4.15.0-213-generic"
    assert any("--kernel 6.1.0-18-amd64 ignored" in n for n in report.input.notes)


def test_stdin_is_read_with_a_dash() -> None:
    text = (PASTED / "ipvsadm-Ln.txt").read_text()
    report = report_of(doctor("--from", "-", "--json", "--fail-on", "critical", input=text))
    assert report.node.services == 2
    assert [s.address for s in report.stuck_real_servers] == ["10.244.1.10"]


def test_nothing_to_read_is_exit_2(tmp_path: Path) -> None:
    result = doctor("--from", tmp_path)
    assert result.exit_code == 2
    assert "Input problems" in result.output


# --------------------------------------------------------------------------- prometheus


def metrics(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.documentation, family.name  # every metric has HELP text
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_prometheus_textfile_is_written_and_parses(
    tmp_path: Path, findings: Callable[..., None]
) -> None:
    findings(Severity.CRITICAL, Severity.CRITICAL)
    prom = tmp_path / "ipvslab.prom"
    result = doctor("--from", EXPOSED, "--prometheus", prom)
    assert result.exit_code == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ipvslab.prom"]  # no temporary left
    m = metrics(prom)
    assert all(name.startswith("ipvslab_doctor_") for name in m)
    assert m["ipvslab_doctor_findings"][(("severity", "critical"),)] == 2
    assert m["ipvslab_doctor_findings"][(("severity", "info"),)] == 0
    kind = m["ipvslab_doctor_finding"]
    assert kind[(("kind", "stuck-graceful-termination"), ("severity", "critical"))] == 2
    assert kind[(("kind", "persistence-trap"), ("severity", "warning"))] == 0
    assert len(kind) == len(FindingKind) * len(Severity)
    assert m["ipvslab_doctor_stuck_real_servers"][()] == 1
    stuck = m["ipvslab_doctor_stuck_real_server_connections"]
    assert stuck[(("real_server", "10.244.1.10:8080"), ("service", "TCP 10.96.33.7:80"))] == 43
    entries = m["ipvslab_doctor_connection_entries"]
    assert entries == {(("state", "ESTABLISHED"),): 6, (("state", "TIME_WAIT"),): 42}
    exposure = m["ipvslab_doctor_exposure"]
    assert exposure[(("issue", "kubernetes#81775"), ("problem", "stale-forwarding"))] == 1
    assert exposure[(("issue", "kubernetes#70747"), ("problem", "syn-drop"))] == 1
    assert m["ipvslab_doctor_input_problems"][()] == 0
    assert m["ipvslab_doctor_worst_severity"][()] == 3


def test_prometheus_counts_input_problems(tmp_path: Path) -> None:
    prom = tmp_path / "x.prom"
    assert doctor("--from", MALFORMED, "--prometheus", prom, "--json").exit_code == 2
    m = metrics(prom)
    assert m["ipvslab_doctor_input_problems"][()] == 1
    assert (
        m["ipvslab_doctor_exposure"][
            (("issue", "kubernetes#81775"), ("problem", "stale-forwarding"))
        ]
        == 0
    )


def test_prometheus_unwritable_is_exit_2_after_the_output(tmp_path: Path) -> None:
    result = doctor("--from", HEALTHY, "--prometheus", tmp_path / "missing" / "x.prom")
    assert result.exit_code == 2
    assert "Result: healthy" in result.output
    assert "cannot write" in result.output


# --------------------------------------------------------------------------- live, collect


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def no_ipvs_root(tmp_path: Path) -> Path:
    """A node without the ip_vs module: /proc/sys and /etc but no /proc/net/ip_vs."""
    root = tmp_path / "host"
    _write(
        root,
        {
            "proc/sys/kernel/osrelease": "6.1.0-18-amd64\n",
            "proc/sys/kernel/hostname": "node-9\n",
            "proc/net/dev": "Inter-|   Receive\n",
            "etc/os-release": (HEALTHY / "etc/os-release").read_text(),
        },
    )
    return root


@pytest.fixture
def ipvs_root(tmp_path: Path) -> Path:
    """A node with IPVS: the 81775 fixture laid out as /proc and /etc of a host."""
    root = tmp_path / "host"
    files = {
        "proc/sys/kernel/osrelease": (EXPOSED / "uname-r.txt").read_text(),
        "proc/sys/kernel/hostname": "node-2\n",
        "etc/os-release": (EXPOSED / "etc/os-release").read_text(),
        "proc/net/ip_vs": (EXPOSED / "proc/net/ip_vs").read_text(),
        "proc/net/ip_vs_conn": (EXPOSED / "proc/net/ip_vs_conn").read_text(),
        "proc/net/ip_vs_stats": (HEALTHY / "proc/net/ip_vs_stats").read_text(),
        "proc/4242/comm": "kube-proxy\n",
    }
    for line in (EXPOSED / "sysctl.txt").read_text().splitlines():
        name, value = (part.strip() for part in line.split("="))
        files["proc/sys/" + name.replace(".", "/")] = value + "\n"
    _write(root, files)
    shutil.copy(EXPOSED / "kube-proxy/cmdline", root / "proc/4242/cmdline")
    return root


def test_live_node_without_ipvs_says_so_and_is_healthy(no_ipvs_root: Path) -> None:
    result = doctor("--root", no_ipvs_root, "--no-exec")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.splitlines()[1].startswith("No IPVS on this node")
    assert "6.1.0-18-amd64" in out and "net.ipv4.vs.conn_reuse_mode" in out
    report = report_of(doctor("--root", no_ipvs_root, "--no-exec", "--json"))
    assert report.node.ipvs_present is False and report.input.live is True


def test_live_node_with_ipvs(ipvs_root: Path) -> None:
    result = doctor("--root", ipvs_root, "--no-exec", "--json", "--fail-on", "critical")
    report = report_of(result)
    assert report.node.ipvs_present is True
    assert report.node.kernel.preset == "ubuntu-18.04"
    assert report.node.sysctls["conn_reuse_mode"].origin.value == "node"
    assert report.connections is not None and report.connections.total == 48


def test_a_live_read_writes_every_metric(ipvs_root: Path, tmp_path: Path) -> None:
    prom = tmp_path / "ipvslab.prom"
    doctor("--root", ipvs_root, "--no-exec", "--prometheus", prom, "--json")
    # A live read does not run ipvsadm, so the --stats counters only come from pastes.
    pasted_only = {"service_stats", "real_server_stats"}
    assert set(metrics(prom)) == {PREFIX + name for name, _ in METRICS if name not in pasted_only}


def test_collect_then_from_gives_the_same_report(ipvs_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    collected = runner.invoke(
        app, ["doctor", "collect", "--root", str(ipvs_root), "--no-exec", "--output", str(out)]
    )
    assert collected.exit_code == 0, collected.output
    [archive] = out.iterdir()
    assert f"wrote {archive}" in collected.output
    assert "node-2" in archive.name
    live = json.loads(doctor("--root", ipvs_root, "--no-exec", "--json").stdout)
    again = json.loads(doctor("--from", archive, "--json").stdout)
    assert again["input"]["hostname"] == "node-2"
    for report in (live, again):
        del report["generated_at"], report["input"]
        if report["node"]["kube_proxy"] is not None:
            del report["node"]["kube_proxy"]["source"]
    assert again == live


def test_collect_with_nothing_to_capture_is_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(
        app, ["doctor", "collect", "--root", str(empty), "--no-exec", "--output", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- never a traceback


SAMPLES = sorted(p for p in NODES.rglob("*") if p.is_file())


def check_never_a_traceback(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    for extra in ([], ["--json"]):
        result = doctor("--from", path, *extra)
        assert result.exit_code in (0, 1, 2, 3), result.output
        assert "\x1b" not in result.output  # no escape sequence from the input reaches a terminal


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_produce_a_traceback(tmp_path: Path, data: bytes) -> None:
    check_never_a_traceback(tmp_path / "pasted.txt", data)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sample=st.sampled_from(SAMPLES),
    at=st.floats(min_value=0, max_value=1),
    junk=st.binary(min_size=1, max_size=64),
    cut=st.booleans(),
)
def test_damaged_inputs_never_produce_a_traceback(
    tmp_path: Path, sample: Path, at: float, junk: bytes, cut: bool
) -> None:
    original = sample.read_bytes()
    i = int(len(original) * at)
    data = original[:i] + junk + (b"" if cut else original[i + len(junk) :])
    check_never_a_traceback(tmp_path / sample.name, data)


def test_printable_shows_control_characters() -> None:
    assert printable("a\x1b[31mb\x07\tc\nd\x9b") == "a\\x1b[31mb\\x07\tc\nd\\x9b"


def test_a_terminal_without_unicode_gets_escapes_not_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
        return [Finding(FindingKind.PORT_REUSE_PRESSURE, Severity.WARNING, "N ≈ 40/s", (), "", ())]

    monkeypatch.setattr(diagnose_module, "all_checks", lambda: (check,))
    result = CliRunner(charset="ascii").invoke(app, ["doctor", "--from", str(HEALTHY)])
    assert result.exit_code == 1, result.output
    assert "N \\u2248 40/s" in result.output
    assert "6.1.0-18-amd64 -> preset debian-12" in result.output


def test_a_captured_kube_proxy_newer_than_known_is_said_as_for_the_flag(tmp_path: Path) -> None:
    # The flag warns that v1.38 is assumed to behave like the newest known; a version
    # read from the node must say the same, not pass silently.
    root = tmp_path / "node"
    (root / "kube-proxy").mkdir(parents=True)
    (root / "uname-r.txt").write_text("6.1.0-18-amd64\n")
    (root / "kube-proxy" / "version.txt").write_text("Kubernetes v1.38.2\n")
    (root / "kube-proxy" / "cmdline").write_text("kube-proxy --proxy-mode=ipvs\n")
    result = doctor("--from", root, "--json")
    notes = json.loads(result.stdout)["input"]["notes"]
    assert any("v1.38.2 is newer than any kube-proxy ipvslab knows" in n for n in notes)


def test_the_header_says_a_cloud_kernel_has_backports_beyond_its_era(tmp_path: Path) -> None:
    # 5.4.0-1103-aws is 5.4 by number (era 4.14 - <5.9) but Ubuntu's focal kernels carry
    # f0a5e4d7a594 (5.9) and c95c07836fa4 (5.16): "era 4.14 - <5.9" alone misleads.
    root = tmp_path / "node"
    (root / "kube-proxy").mkdir(parents=True)
    (root / "uname-r.txt").write_text("5.4.0-1103-aws\n")
    result = doctor("--from", root, "--no-color")
    header = " ".join(result.stdout.split())
    assert "era 4.14 - <5.9 by number, with backported unconfirmed_conntrack_reuse" in header
    (root / "uname-r.txt").write_text("6.1.0-18-amd64\n")
    assert "backported" not in doctor("--from", root, "--no-color").stdout


def test_kube_proxy_none_judges_a_keepalived_node_on_the_kernel_defaults(tmp_path: Path) -> None:
    # keepalived's IPVS on a node without kube-proxy: nothing writes net.ipv4.vs, so the
    # kernel defaults are in force (conn_reuse_mode=1, conntrack=0): judged on them, not
    # "unknown" as for a table with neither sysctls nor kube-proxy.
    listing = tmp_path / "ipvsadm-Ln.txt"
    listing.write_text(
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  192.168.10.100:443 wlc\n"
        "  -> 192.168.10.11:443            Route   1      12         40\n"
        "  -> 192.168.10.12:443            Route   0      0          7\n"
    )
    unknown = json.loads(
        doctor("--from", listing, "--kernel", "5.15.0-91-generic", "--json").stdout
    )
    assert unknown["exposure"]["known"] is False
    result = doctor(
        "--from", listing, "--kernel", "5.15.0-91-generic", "--kube-proxy", "none", "--json"
    )
    report = json.loads(result.stdout)
    assert report["exposure"]["known"] is True
    assert report["node"]["sysctls"]["conntrack"]["value"] == 0
    assert any("--kube-proxy none" in n for n in report["input"]["notes"])
