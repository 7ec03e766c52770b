"""The POSIX sh collector (`ipvslab doctor collect-script`) against a fake node root.

The node is the 81775 fixture laid out as a host's /proc and /etc, with kube-proxy's
command line, its --config file behind its own root (an absolute symlink, as a
ConfigMap mount makes), /proc/version and an os-release symlink. The archive the script
writes must give the same diagnosis as `ipvslab doctor collect --root` on that root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ipvslab.cli.main import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "doctor"
EXPOSED = FIXTURES / "cli" / "ubuntu-18.04-81775"
SCRIPT = Path(__file__).resolve().parents[2] / "src" / "ipvslab" / "doctor" / "collect.sh"
runner = CliRunner()
SH = shutil.which("sh")


def make_root(root: Path) -> Path:
    files = {
        "proc/sys/kernel/osrelease": (EXPOSED / "uname-r.txt").read_text(),
        "proc/sys/kernel/hostname": "worker-7\n",
        "proc/version": "Linux version 4.15.0-213-generic (buildd@lcy02-amd64-079) (gcc version"
        " 7.5.0 (Ubuntu 7.5.0-3ubuntu1~18.04)) #224-Ubuntu SMP Mon Jun 19 13:30:12 UTC 2023\n",
        "proc/version_signature": "Ubuntu 4.15.0-213.224-generic 4.15.18\n",
        "proc/net/ip_vs": (EXPOSED / "proc/net/ip_vs").read_text(),
        "proc/net/ip_vs_conn": (EXPOSED / "proc/net/ip_vs_conn").read_text(),
        "proc/net/ip_vs_stats": (FIXTURES / "proc_ip_vs_stats.txt").read_text(),
        "proc/sys/net/ipv4/ip_local_port_range": "32768\t60999\n",
        "proc/sys/net/ipv4/tcp_tw_reuse": "2\n",
        "proc/1/cmdline": "/sbin/init\0splash\0",
        "usr/lib/os-release": (EXPOSED / "etc/os-release").read_text(),
        "proc/4242/root/configmap/..2024_01_01/config.conf": (
            FIXTURES / "kube_proxy_configmap.yaml"
        ).read_text(),
    }
    for line in (EXPOSED / "sysctl.txt").read_text().splitlines():
        name, value = (part.strip() for part in line.split("="))
        files["proc/sys/" + name.replace(".", "/")] = value + "\n"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "etc").mkdir()
    (root / "etc/os-release").symlink_to("/usr/lib/os-release")  # absolute: inside root
    pid = root / "proc/4242"
    cmdline = (EXPOSED / "kube-proxy/cmdline").read_bytes().rstrip(b"\0")
    (pid / "cmdline").write_bytes(cmdline + b"\0--config=/var/lib/kube-proxy/config.conf\0")
    (pid / "root/configmap/..data").symlink_to("..2024_01_01")
    (pid / "root/configmap/config.conf").symlink_to("..data/config.conf")
    (pid / "root/var/lib").mkdir(parents=True)
    (pid / "root/var/lib/kube-proxy").symlink_to("/configmap")
    return root


def comparable(stdout: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(stdout)
    del report["generated_at"], report["input"]
    if report["node"]["kube_proxy"] is not None:
        del report["node"]["kube_proxy"]["source"]
    return report


BUSYBOX = shutil.which("busybox")


def busybox_path(where: Path) -> str:
    """A PATH holding nothing but busybox's applets (what the busybox image has)."""
    assert BUSYBOX is not None
    where.mkdir(exist_ok=True)
    applets = subprocess.run(
        [BUSYBOX, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        (where / applet).symlink_to(BUSYBOX)
    return str(where)


def run_script(
    root: Path, out: Path | str, shell: str | None = None, path: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    assert SH is not None
    return subprocess.run(
        [shell or SH, str(SCRIPT), str(out)],
        env={"PATH": path or os.environ["PATH"], "IPVSLAB_ROOT": str(root), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(SH is None, reason="no sh")
@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_the_sh_collector_gives_the_same_diagnosis_as_doctor_collect(
    tmp_path: Path, shell: str
) -> None:
    if shell == "busybox" and BUSYBOX is None:
        pytest.skip("busybox is not installed (apt-get install busybox)")
    root = make_root(tmp_path / "host")
    before = sorted((p.relative_to(root), p.lstat().st_mtime_ns) for p in root.rglob("*"))
    script_archive = tmp_path / "sh.tar.gz"
    if shell == "busybox":
        assert BUSYBOX is not None
        path = busybox_path(tmp_path / "bin")
        done = run_script(root, script_archive, str(Path(path) / "sh"), path, IPVSLAB_NO_EXEC="1")
    else:
        done = run_script(root, script_archive, IPVSLAB_NO_EXEC="1")
    assert done.returncode == 0, done.stderr
    assert f"wrote {script_archive}" in done.stderr
    # The pod log (the DaemonSet's `kubectl logs`) says what was captured, as
    # `ipvslab doctor collect` does.
    [captured] = [line for line in done.stderr.splitlines() if line.startswith("captured (")]
    assert "proc/net/ip_vs_conn" in captured and "kube-proxy/cmdline" in captured
    assert oct(script_archive.stat().st_mode & 0o777) == "0o600"
    python_dir = tmp_path / "py"
    python_dir.mkdir()
    collected = runner.invoke(
        app, ["doctor", "collect", "--root", str(root), "--no-exec", "--output", str(python_dir)]
    )
    assert collected.exit_code == 0, collected.output
    [python_archive] = python_dir.iterdir()

    with tarfile.open(script_archive) as tar:
        names = set(tar.getnames())
    assert {
        "ipvslab-capture/manifest.json",
        "ipvslab-capture/proc/net/ip_vs_conn",
        "ipvslab-capture/proc/version",
        "ipvslab-capture/proc/version_signature",
        "ipvslab-capture/sysctl.txt",
        "ipvslab-capture/kube-proxy/cmdline",
        "ipvslab-capture/kube-proxy/config.yaml",
        "ipvslab-capture/etc/os-release",
        "ipvslab-capture/uname-r.txt",
    } <= names

    from_script = runner.invoke(app, ["doctor", "--from", str(script_archive), "--json"])
    from_python = runner.invoke(app, ["doctor", "--from", str(python_archive), "--json"])
    assert from_script.exit_code == from_python.exit_code == 1
    assert comparable(from_script.stdout) == comparable(from_python.stdout)
    script_report = json.loads(from_script.stdout)
    assert script_report["input"]["hostname"] == "worker-7"
    assert script_report["node"]["kernel"]["preset"] == "ubuntu-18.04"
    assert script_report["node"]["kube_proxy"]["settings"]["ipvs_scheduler"] is not None
    # Read-only: nothing under the root changed.
    assert sorted((p.relative_to(root), p.lstat().st_mtime_ns) for p in root.rglob("*")) == before


@pytest.mark.skipif(SH is None, reason="no sh")
def test_the_sh_collector_on_a_node_without_ipvs(tmp_path: Path) -> None:
    root = tmp_path / "host"
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.1.0-18-amd64\n")
    done = run_script(root, tmp_path, IPVSLAB_NO_EXEC="1")
    assert done.returncode == 0, done.stderr
    [archive] = tmp_path.glob("ipvslab-capture-*.tar.gz")
    report = json.loads(runner.invoke(app, ["doctor", "--from", str(archive), "--json"]).stdout)
    assert report["node"]["ipvs_present"] is False
    assert any("IPVS is not loaded here" in n for n in report["input"]["notes"])
    assert "no IPVS on this node" in done.stderr


@pytest.mark.skipif(SH is None, reason="no sh")
def test_the_sh_collector_fails_on_a_missing_root(tmp_path: Path) -> None:
    done = run_script(tmp_path / "nonexistent", tmp_path)
    assert done.returncode == 2
    assert "no such directory" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_collect_script_prints_the_script() -> None:
    result = runner.invoke(app, ["doctor", "collect-script"])
    assert result.exit_code == 0
    assert result.stdout == SCRIPT.read_text()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_the_script_is_plain_posix_sh() -> None:
    # -s sh: POSIX sh rules (no bashisms), which is all the busybox image has.
    checked = subprocess.run(
        ["shellcheck", "-s", "sh", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout


@pytest.mark.skipif(SH is None, reason="no sh")
def test_what_if_runs_on_a_capture_of_the_sh_collector(tmp_path: Path) -> None:
    root = make_root(tmp_path / "host")
    archive = tmp_path / "sh.tar.gz"
    assert run_script(root, archive, IPVSLAB_NO_EXEC="1").returncode == 0
    result = runner.invoke(
        app,
        [
            "doctor",
            "--from",
            str(archive),
            "--json",
            "--seeds",
            "1",
            "--jobs",
            "1",
            "--what-if",
            "rollout=10.96.33.7:80",
        ],
    )
    assert result.stdout.startswith("{"), result.output
    report = json.loads(result.stdout)
    [as_is] = report["what_if"]["variants"]
    assert as_is["refused"] is None and as_is["runs"][0]["connections"] > 0
