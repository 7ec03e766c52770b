"""capture_live on a fake node root built from the doctor fixtures."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from ipvslab.doctor.capture import InputKind, snapshot_from_capture
from ipvslab.doctor.live import capture_live
from ipvslab.doctor.parsers import parse_proc_ip_vs
from ipvslab.doctor.records import KubeProxySettings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "doctor"
KUBE_PROXY_PID = 4242
CONFIG_DIR = "var/lib/kube-proxy"


def write_exe(path: Path, body: str) -> Path:
    """A small executable Python script standing in for /proc/<pid>/exe."""
    path.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def make_node_root(
    root: Path,
    *,
    ipvs: bool = True,
    kube_proxy: bool = True,
    version_body: str = "print('Kubernetes v1.22.3')",
) -> Path:
    """A node's root: /proc/net/ip_vs*, /proc/sys, /etc/os-release and a kube-proxy process
    whose --config file lives in its own root (ConfigMap-style symlinks, one absolute)."""
    proc = root / "proc"
    (proc / "net").mkdir(parents=True)
    if ipvs:
        for name in ("ip_vs", "ip_vs_conn", "ip_vs_stats"):
            shutil.copy(FIXTURES / f"proc_{name}.txt", proc / "net" / name)
        vs = proc / "sys/net/ipv4/vs"
        vs.mkdir(parents=True)
        for name, value in {
            "conn_reuse_mode": "1",
            "expire_nodest_conn": "0",
            "expire_quiescent_template": "0",
            "est_cpulist": "",
        }.items():
            (vs / name).write_text(f"{value}\n")
    ipv4 = proc / "sys/net/ipv4"
    ipv4.mkdir(parents=True, exist_ok=True)
    (ipv4 / "ip_local_port_range").write_text("32768\t60999\n")
    (ipv4 / "tcp_tw_reuse").write_text("2\n")
    netfilter = proc / "sys/net/netfilter"
    netfilter.mkdir(parents=True)
    (netfilter / "nf_conntrack_tcp_timeout_time_wait").write_text("120\n")
    (proc / "sys/kernel").mkdir(parents=True)
    (proc / "sys/kernel/osrelease").write_text("5.15.0-91-generic\n")
    (proc / "version").write_text(
        "Linux version 5.15.0-91-generic (buildd@lcy02-amd64-045) (gcc (Ubuntu"
        " 11.4.0-1ubuntu1~22.04) 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38)"
        " #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023\n"
    )
    (proc / "version_signature").write_text("Ubuntu 5.15.0-91.101-generic 5.15.131\n")
    (root / "usr/lib").mkdir(parents=True)
    shutil.copy(FIXTURES / "os_release_ubuntu.txt", root / "usr/lib/os-release")
    (root / "etc").mkdir()
    # Absolute, as some distributions ship it: must resolve inside root, not on this host.
    (root / "etc/os-release").symlink_to("/usr/lib/os-release")
    (proc / "1").mkdir()
    (proc / "1/cmdline").write_bytes(b"/sbin/init\0splash\0")
    if kube_proxy:
        pid_dir = proc / str(KUBE_PROXY_PID)
        pid_dir.mkdir()
        shutil.copy(FIXTURES / "kube_proxy_cmdline.bin", pid_dir / "cmdline")
        container = pid_dir / "root"
        data = container / "configmap/..2024_01_01"
        data.mkdir(parents=True)
        shutil.copy(FIXTURES / "kube_proxy_configmap.yaml", data / "config.conf")
        (container / "configmap/..data").symlink_to("..2024_01_01")
        (container / "configmap/config.conf").symlink_to("..data/config.conf")
        (container / "var/lib").mkdir(parents=True)
        (container / CONFIG_DIR).symlink_to("/configmap")
        write_exe(pid_dir / "exe", version_body)
    return root


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its mtime and size (symlinks not followed)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size)
    return out


@pytest.fixture
def node(tmp_path: Path) -> Path:
    return make_node_root(tmp_path / "node")


def test_live_node_gives_every_input(node: Path) -> None:
    capture = capture_live(node, exec_version=False)
    snap = snapshot_from_capture(capture)
    assert capture.live and capture.ipvs_present is True
    assert capture.problems == ()
    expected = parse_proc_ip_vs((FIXTURES / "proc_ip_vs.txt").read_text()).value
    assert snap.ipvs == expected and snap.ipvs is not None and snap.ipvs.services
    assert snap.conns is not None and snap.conns.total == 9
    assert snap.stats is not None and snap.stats.totals.conns == 500
    assert dict(snap.sysctls.values) == {
        "net.ipv4.vs.conn_reuse_mode": "1",
        "net.ipv4.vs.est_cpulist": "",
        "net.ipv4.vs.expire_nodest_conn": "0",
        "net.ipv4.vs.expire_quiescent_template": "0",
        "net.ipv4.ip_local_port_range": "32768\t60999",
        "net.ipv4.tcp_tw_reuse": "2",
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait": "120",
    }
    assert snap.kernel_release is not None and snap.kernel_release.version == (5, 15, 0)
    assert snap.proc_version is not None and snap.proc_version.release == "5.15.0-91-generic"
    assert snap.version_signature is not None
    assert snap.version_signature.upstream == (5, 15, 131)
    assert snap.os_release is not None and snap.os_release.version_id == "20.04"
    assert snap.issues == ()
    # Sources name the real files.
    assert snap.sources["proc/net/ip_vs_conn"] == str(node / "proc/net/ip_vs_conn")


def test_kube_proxy_flags_win_over_its_config_read_through_its_root(node: Path) -> None:
    capture = capture_live(node, exec_version=False)
    config = capture.files[InputKind.KUBE_PROXY_CONFIG]
    assert config.source == f"{node}/proc/{KUBE_PROXY_PID}/root/var/lib/kube-proxy/config.conf"
    kube_proxy = snapshot_from_capture(capture).kube_proxy
    assert kube_proxy is not None
    assert kube_proxy.settings == KubeProxySettings(
        mode="ipvs",
        ipvs_scheduler="wrr",  # the flag; the config file says rr
        ipvs_sync_period=30.0,
        ipvs_min_sync_period=1.0,
        ipvs_tcp_timeout=900.0,
        ipvs_tcpfin_timeout=90.0,
        ipvs_udp_timeout=0.3,
        ipvs_strict_arp=True,
        masquerade_all=False,
        cluster_cidr="10.244.0.0/16",  # only in the config file
        config_file="/var/lib/kube-proxy/config.conf",
    )
    assert kube_proxy.version is None
    assert any("--version was not run" in note for note in capture.notes)


def test_version_comes_from_running_exe_with_an_argv_list(tmp_path: Path) -> None:
    root = make_node_root(
        tmp_path / "node",
        version_body="print('Kubernetes v1.22.3'); print('argv', sys.argv[1:])",
    )
    capture = capture_live(root)
    kube_proxy = snapshot_from_capture(capture).kube_proxy
    assert kube_proxy is not None and kube_proxy.version is not None
    assert kube_proxy.version.version == (1, 22, 3)
    with capture.files[InputKind.KUBE_PROXY_VERSION].open() as stream:
        assert "argv ['--version']" in stream.read()
    assert capture.notes == ()


def test_hanging_version_becomes_a_note(tmp_path: Path) -> None:
    pid_file = tmp_path / "version.pid"
    body = f"import os; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    root = make_node_root(tmp_path / "node", version_body=body)
    capture = capture_live(root, timeout=0.5)
    # The hung `kube-proxy --version` is not left behind on the node: it was killed.
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    assert InputKind.KUBE_PROXY_VERSION not in capture.files
    assert any("did not finish within 0.5 s" in note for note in capture.notes)
    snap = snapshot_from_capture(capture)
    assert snap.kube_proxy is not None and snap.kube_proxy.version is None


def test_failing_version_becomes_a_note(tmp_path: Path) -> None:
    root = make_node_root(
        tmp_path / "node", version_body="print('boom: no such flag', file=sys.stderr); sys.exit(3)"
    )
    capture = capture_live(root)
    assert any("exited with status 3: boom: no such flag" in n for n in capture.notes)


def test_unrunnable_exe_becomes_a_note(node: Path) -> None:
    (node / f"proc/{KUBE_PROXY_PID}/exe").unlink()
    capture = capture_live(node)
    assert any("could not run" in note for note in capture.notes)
    assert capture.problems == ()


def test_no_ipvs_says_so_and_still_reads_the_rest(tmp_path: Path) -> None:
    root = make_node_root(tmp_path / "node", ipvs=False)
    capture = capture_live(root)
    assert capture.ipvs_present is False
    note = next(n for n in capture.notes if "IPVS is not loaded here" in n)
    assert "ip_vs kernel module is not loaded" in note
    assert "hostNetwork" in note and "nsenter -t 1 -n" in note
    snap = snapshot_from_capture(capture)
    assert snap.ipvs_present is False and snap.ipvs is None and snap.conns is None
    assert snap.sysctls.get("net.ipv4.ip_local_port_range") == "32768\t60999"
    assert snap.kernel_release is not None and snap.os_release is not None
    assert snap.kube_proxy is not None and snap.kube_proxy.version is not None


def test_hyperkube_is_found(tmp_path: Path) -> None:
    root = make_node_root(tmp_path / "node", kube_proxy=False)
    pid_dir = root / "proc/77"
    pid_dir.mkdir()
    (pid_dir / "cmdline").write_bytes(b"/hyperkube\0proxy\0--proxy-mode=ipvs\0")
    capture = capture_live(root, exec_version=False)
    assert capture.files[InputKind.KUBE_PROXY_CMDLINE].source == str(pid_dir / "cmdline")
    kube_proxy = snapshot_from_capture(capture).kube_proxy
    assert kube_proxy is not None and kube_proxy.ipvs_mode


def test_no_kube_proxy_process_is_a_note(tmp_path: Path) -> None:
    root = make_node_root(tmp_path / "node", kube_proxy=False)
    capture = capture_live(root)
    assert any("no kube-proxy process" in n and "hostPID" in n for n in capture.notes)
    assert snapshot_from_capture(capture).kube_proxy is None


def test_missing_config_file_is_a_note(node: Path) -> None:
    shutil.rmtree(node / f"proc/{KUBE_PROXY_PID}/root/configmap")
    capture = capture_live(node, exec_version=False)
    assert InputKind.KUBE_PROXY_CONFIG not in capture.files
    assert any(
        "--config file /var/lib/kube-proxy/config.conf was not found" in n for n in capture.notes
    )


def test_unreadable_files_become_problems(node: Path) -> None:
    conn = node / "proc/net/ip_vs_conn"
    conn.unlink()
    conn.mkdir()  # opening it fails (EISDIR) like EACCES would for a non-root user
    (node / "proc/sys/kernel/osrelease").unlink()
    (node / "proc/sys/kernel/osrelease").mkdir()
    capture = capture_live(node, exec_version=False)
    assert [(p.source, p.line_no, p.field) for p in capture.problems] == [
        (str(conn), 0, "file"),
        (str(node / "proc/sys/kernel/osrelease"), 0, "file"),
    ]
    assert all("cannot read" in p.message for p in capture.problems)
    snap = snapshot_from_capture(capture)
    assert snap.conns is None and snap.ipvs is not None
    assert set(capture.problems) <= set(snap.issues)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_a_problem(node: Path) -> None:
    conn = node / "proc/net/ip_vs_conn"
    conn.chmod(0)
    capture = capture_live(node, exec_version=False)
    assert [(p.source, p.message) for p in capture.problems] == [
        (str(conn), "cannot read: Permission denied")
    ]


def test_capture_never_writes_under_root(node: Path) -> None:
    before = tree_state(node)
    capture = capture_live(node)
    snapshot_from_capture(capture)
    assert tree_state(node) == before


def test_exec_version_false_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    root = make_node_root(
        tmp_path / "node", version_body=f"open({str(marker)!r}, 'w').close(); print('v1.2.3')"
    )
    capture_live(root, exec_version=False)
    assert not marker.exists()
    capture_live(root)
    assert marker.exists()
