"""The CLI as a shell user meets it: pipes, one spelling per option, checked values.

Each test is something a user on call hits: `ipvslab doctor | head` reported as
"findings", `--kernel ubuntu-20.04` working in `explain` but not in `doctor`, a typo'd
`--kube-proxy v9.99.0` silently answered, `collect -o` overwriting last week's archive.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ipvslab.cli.main import app

NODES = Path(__file__).resolve().parents[1] / "fixtures" / "doctor" / "cli"
HEALTHY = NODES / "healthy"
EXPOSED = NODES / "ubuntu-18.04-81775"
PASTED = NODES / "pasted"
runner = CliRunner()


def run(*args: str | Path, **env: str) -> Result:
    result = runner.invoke(app, list(map(str, args)), env=env or None)
    assert "Traceback" not in result.output
    return result


def closed_stdout(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """Runs ipvslab with a stdout whose reader is already gone (`| head` after one line)."""
    read, write = os.pipe()
    os.close(read)  # every write now fails with EPIPE
    try:
        return subprocess.run(
            [sys.executable, "-m", "ipvslab.cli.main", *map(str, args)],
            stdout=write,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)


# --------------------------------------------------------------------------- pipes


def test_doctor_into_a_closed_pipe_keeps_its_exit_status_and_metrics(tmp_path: Path) -> None:
    prom = tmp_path / "node.prom"
    healthy = closed_stdout("doctor", "--from", HEALTHY, "--prometheus", prom)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stderr == b""
    assert prom.read_text().startswith("# HELP")
    exposed = closed_stdout("doctor", "--from", EXPOSED, "--json")
    assert exposed.returncode == 1  # its findings, not the pipe
    assert b"Traceback" not in exposed.stderr and b"Broken pipe" not in exposed.stderr


@pytest.mark.parametrize("args", [("explain",), ("presets",), ("presets", "--json")])
def test_explain_and_presets_into_a_closed_pipe_exit_0(args: tuple[str, ...]) -> None:
    result = closed_stdout(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""


# --------------------------------------------------------------------------- one spelling


def test_kube_proxy_is_spelled_the_same_in_doctor_and_explain() -> None:
    new = run(
        "doctor", "--from", PASTED, "--kernel", "4.15.0-213-generic", "--kube-proxy", "v1.20.0"
    )
    old = run(
        "doctor",
        "--from",
        PASTED,
        "--kernel",
        "4.15.0-213-generic",
        "--kube-proxy-version",
        "v1.20.0",
    )
    assert new.exit_code == old.exit_code == 1
    assert "v1.20.0" in new.output
    assert run("explain", "--kernel", "4.19", "--kube-proxy", "v1.20.0").exit_code == 0


def test_doctor_kernel_takes_preset_names_like_explain() -> None:
    result = run("doctor", "--from", PASTED, "--kernel", "ubuntu-18.04", "--kube-proxy", "v1.20.0")
    assert result.exit_code == 1, result.output
    short = run("doctor", "--from", PASTED, "-k", "ubuntu-18.04", "--kube-proxy", "v1.20.0")
    assert short.exit_code == 1  # -k as in explain
    assert "preset ubuntu-18.04" in result.output
    assert "exposed to problem 1" in " ".join(result.output.split())


@pytest.mark.parametrize(
    "args",
    [
        ("explain", "--kernel", "4.19"),
        ("explain",),
        ("presets",),
        ("doctor", "--from", str(EXPOSED), "--fail-on", "critical"),
    ],
)
def test_no_color_everywhere(args: tuple[str, ...]) -> None:
    coloured = run(*args, FORCE_COLOR="1")
    assert "\x1b[" in coloured.output
    assert "\x1b[" not in run(*args, "--no-color", FORCE_COLOR="1").output


@pytest.mark.parametrize(
    "args", [("explain", "--kernel", "4.19"), ("presets",), ("doctor", "--from", str(HEALTHY))]
)
def test_json_is_a_flag_everywhere(args: tuple[str, ...]) -> None:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().startswith(("{", "["))


# --------------------------------------------------------------------------- checked values


@pytest.mark.parametrize(
    "args",
    [
        ("explain", "--kernel", "2.6.32"),
        ("doctor", "--from", str(PASTED), "--kernel", "2.6.32"),
        ("explain", "--kernel", "4.19", "--kube-proxy", "v9.99.0"),
        ("doctor", "--from", str(PASTED), "--kernel", "4.19", "--kube-proxy", "v9.99.0"),
    ],
)
def test_out_of_range_values_are_errors_not_answers(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "older than 3.10" in result.output or "not a Kubernetes 1.x version" in result.output


def test_a_kube_proxy_newer_than_known_is_a_warning() -> None:
    # v1.36-v1.42 still have IPVS mode (from v1.43 it is refused, as `run` refuses it).
    result = run("explain", "--kernel", "5.15", "--kube-proxy", "v1.38.0")
    assert result.exit_code == 0
    assert "newer than any kube-proxy ipvslab knows (v1.35)" in result.stderr


def test_tencentos_only_sysctl_elsewhere_is_a_warning() -> None:
    result = run("explain", "--kernel", "5.15.0-91-generic", "--conn-reuse-old-conntrack", "1")
    assert "exists only in TencentOS kernels" in result.stderr
    quiet = run("explain", "--kernel", "tencentos-5.4", "--conn-reuse-old-conntrack", "1")
    assert "TencentOS" not in quiet.stderr


def test_prometheus_file_not_ending_in_prom_is_a_warning(tmp_path: Path) -> None:
    result = run("doctor", "--from", HEALTHY, "--prometheus", tmp_path / "ipvslab.txt")
    assert result.exit_code == 0
    assert "node_exporter reads only files ending in .prom" in result.stderr
    assert (tmp_path / "ipvslab.txt").exists()
    assert (
        ".prom" not in run("doctor", "--from", HEALTHY, "--prometheus", tmp_path / "a.prom").stderr
    )


# --------------------------------------------------------------------------- collect


def test_collect_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    root = tmp_path / "host"
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.1.0-18-amd64\n")
    target = tmp_path / "last-week.tar.gz"
    target.write_bytes(b"precious")
    args = ("doctor", "collect", "--root", root, "--no-exec", "--output", target)
    refused = run(*args)
    assert refused.exit_code == 2
    assert "exists; pass --force" in refused.output
    assert target.read_bytes() == b"precious"
    assert run(*args, "--force").exit_code == 0
    assert target.read_bytes() != b"precious"


def test_collect_from_a_missing_root_fails(tmp_path: Path) -> None:
    result = run("doctor", "collect", "--root", tmp_path / "nonexistent", "--output", tmp_path)
    assert result.exit_code == 2
    assert "no such directory" in result.output
    assert list(tmp_path.iterdir()) == []


def test_doctor_from_a_missing_root_fails_before_any_report(tmp_path: Path) -> None:
    # A typo in --root is not "a node without IPVS": no report, just the error.
    result = run("doctor", "--root", tmp_path / "nonexistent")
    assert result.exit_code == 2
    assert "no such directory" in result.output
    assert "No IPVS" not in result.output and "Findings" not in result.output


@pytest.mark.parametrize("command", [("doctor",), ("doctor", "collect")])
def test_root_without_its_path_is_not_read_as_a_flag(command: tuple[str, ...]) -> None:
    result = run(*command, "--root", "--no-exec")
    assert result.exit_code == 2
    assert "--root needs a PATH" in result.output


# --------------------------------------------------------------------------- grammar


def test_counts_agree_with_their_nouns(tmp_path: Path) -> None:
    result = run("doctor", "--from", EXPOSED, "--fail-on", "critical")
    out = " ".join(result.output.split())
    assert "1 of 1 client with" in out
    assert not re.search(r"(?<![\d.])1 (clients|entries|templates|servers)\b", out)
