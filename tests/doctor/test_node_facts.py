from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ipvslab.doctor.parsers.kernel_release import parse_kernel_release
from ipvslab.doctor.parsers.kube_proxy import (
    parse_go_duration,
    parse_kube_proxy_cmdline,
    parse_kube_proxy_config,
    parse_kube_proxy_version,
)
from ipvslab.doctor.parsers.os_release import parse_os_release
from ipvslab.doctor.parsers.proc_ip_vs_stats import parse_proc_ip_vs_stats
from ipvslab.doctor.parsers.sysctl import parse_proc_sys_vs, parse_sysctl
from ipvslab.doctor.records import GlobalStats, KubeProxySettings, StatsCounters

Reader = Callable[[str], str]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "doctor"


def test_proc_stats_reads_hex_totals_and_rates(fixture_text: Reader) -> None:
    result = parse_proc_ip_vs_stats(fixture_text("proc_ip_vs_stats.txt"))
    assert result.issues == ()
    assert result.value == GlobalStats(
        StatsCounters(500, 10000, 9000, 2_000_000, 3_000_000),
        StatsCounters(3, 30, 28, 3200, 3840),
    )


def test_proc_stats_bad_and_empty() -> None:
    bad = parse_proc_ip_vs_stats("   Total Incoming\n 1F 2 3 4\n")
    assert bad.value is None
    assert [i.line_no for i in bad.issues] == [2, 0]
    assert [i.message for i in parse_proc_ip_vs_stats("").issues] == ["empty input"]


def test_sysctl_reads_both_separators_and_reports_error_lines(fixture_text: Reader) -> None:
    result = parse_sysctl(fixture_text("sysctl_a.txt"))
    sysctls = result.value
    assert sysctls.get_int("net.ipv4.vs.conn_reuse_mode") == 1
    assert sysctls.get("kernel.hostname") == "node-1"
    assert sysctls.get("net.ipv4.tcp_rmem") == "4096\t131072\t6291456"
    assert sysctls.get_int("net.ipv4.tcp_rmem") is None
    assert sysctls.ipvs() == {
        "am_droprate": "10",
        "conn_reuse_mode": "1",
        "expire_nodest_conn": "0",
        "expire_quiescent_template": "0",
    }
    assert [(i.line_no, i.field) for i in result.issues] == [(6, "line")]


def test_proc_sys_vs_files_become_dotted_keys() -> None:
    result = parse_proc_sys_vs(
        [
            ("conn_reuse_mode", "0\n"),
            ("/proc/sys/net/ipv4/vs/expire_nodest_conn", "1\n"),
            ("net.ipv4.vs.sync_ports", "1"),
            ("../etc/passwd", "x\n"),
        ]
    )
    assert dict(result.value.values) == {
        "net.ipv4.vs.conn_reuse_mode": "0",
        "net.ipv4.vs.expire_nodest_conn": "1",
        "net.ipv4.vs.sync_ports": "1",
    }
    assert [(i.line_no, i.field) for i in result.issues] == [
        (3, "net.ipv4.vs.sync_ports"),
        (4, "name"),
    ]


def test_os_release_unquotes_values(fixture_text: Reader) -> None:
    result = parse_os_release(fixture_text("os_release_ubuntu.txt"))
    assert result.issues == ()
    rel = result.value
    assert (rel.id, rel.id_like, rel.version_id, rel.version_codename) == (
        "ubuntu",
        ("debian",),
        "20.04",
        "focal",
    )
    assert rel.pretty_name == "Ubuntu 20.04.6 LTS"
    bad = parse_os_release('ID="unterminated\nNOT A LINE\n')
    assert [(i.line_no, i.field) for i in bad.issues] == [(1, "ID"), (2, "line")]


@pytest.mark.parametrize(
    ("text", "version", "local"),
    [
        ("5.15.0-91-generic\n", (5, 15, 0), "-91-generic"),
        ("5.10.186-179.751.amzn2.x86_64", (5, 10, 186), "-179.751.amzn2.x86_64"),
        ("3.10.0-1160.el7.x86_64", (3, 10, 0), "-1160.el7.x86_64"),
        ("6.8-rc3", (6, 8, 0), "-rc3"),
        ("4.14.138+", (4, 14, 138), "+"),
        (
            "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) ...",
            (6, 1, 0),
            "-18-amd64",
        ),
    ],
)
def test_kernel_release_split(text: str, version: tuple[int, int, int], local: str) -> None:
    result = parse_kernel_release(text)
    assert result.value is not None
    assert (result.value.version, result.value.local) == (version, local)


@pytest.mark.parametrize("text", ["", "linux", "5", "5.4 extra words"])
def test_kernel_release_unreadable(text: str) -> None:
    result = parse_kernel_release(text)
    assert result.value is None and len(result.issues) == 1


def test_kube_proxy_cmdline_nul_separated() -> None:
    raw = (FIXTURES / "kube_proxy_cmdline.bin").read_bytes().decode()
    result = parse_kube_proxy_cmdline(raw)
    assert result.issues == ()
    assert result.value.argv[0] == "/usr/local/bin/kube-proxy"
    assert result.value.settings == KubeProxySettings(
        mode="ipvs",
        ipvs_scheduler="wrr",
        ipvs_sync_period=30.0,
        ipvs_min_sync_period=1.0,
        ipvs_tcp_timeout=900.0,
        ipvs_tcpfin_timeout=90.0,
        ipvs_udp_timeout=0.3,
        ipvs_strict_arp=True,
        masquerade_all=False,
        config_file="/var/lib/kube-proxy/config.conf",
    )
    assert result.value.flags["hostname-override"] == "node-1"


def test_kube_proxy_cmdline_space_separated_with_problems() -> None:
    text = "kube-proxy --proxy-mode ipvs --masquerade-all --ipvs-sync-period=soon stray --v\n"
    result = parse_kube_proxy_cmdline(text)
    settings = result.value.settings
    assert (settings.mode, settings.masquerade_all, settings.ipvs_sync_period) == (
        "ipvs",
        True,
        None,
    )
    assert [i.field for i in result.issues] == ["argument", "v", "ipvs-sync-period"]


def test_kube_proxy_config_from_kubeadm_configmap(fixture_text: Reader) -> None:
    result = parse_kube_proxy_config(fixture_text("kube_proxy_configmap.yaml"))
    assert result.issues == ()
    assert result.value == KubeProxySettings(
        mode="ipvs",
        ipvs_scheduler="rr",
        ipvs_sync_period=30.0,
        ipvs_min_sync_period=0.0,
        ipvs_tcp_timeout=0.0,
        ipvs_tcpfin_timeout=0.0,
        ipvs_udp_timeout=0.0,
        ipvs_strict_arp=True,
        masquerade_all=False,
        cluster_cidr="10.244.0.0/16",
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("kind: KubeProxyConfiguration\nipvs: {syncPeriod: 30}\n", "ipvs.syncPeriod"),
        ("kind: KubeProxyConfiguration\nipvs: {strictARP: maybe}\n", "ipvs.strictARP"),
        ("mode: [unclosed\n", "yaml"),
        ("apiVersion: v1\nkind: Pod\n", "kind"),
        ("", "input"),
    ],
)
def test_kube_proxy_config_problems(text: str, field: str) -> None:
    assert [i.field for i in parse_kube_proxy_config(text).issues] == [field]


@pytest.mark.parametrize(
    ("text", "version", "suffix"),
    [
        ("Kubernetes v1.22.3\n", (1, 22, 3), ""),
        ("v1.28.2-eks-a5df82a", (1, 28, 2), "-eks-a5df82a"),
        ("registry.k8s.io/kube-proxy:v1.27.3+k3s1", (1, 27, 3), "+k3s1"),
    ],
)
def test_kube_proxy_version(text: str, version: tuple[int, int, int], suffix: str) -> None:
    result = parse_kube_proxy_version(text)
    assert result.value is not None
    assert (result.value.version, result.value.suffix) == (version, suffix)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("0s", 0.0), ("1m30s", 90.0), ("15m0s", 900.0), ("1h", 3600.0),
     ("300ms", 0.3), ("1.5s", 1.5), ("-2s", -2.0), ("5", None), ("s", None), ("1x", None)],
)  # fmt: skip
def test_go_durations(text: str, seconds: float | None) -> None:
    assert parse_go_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_hyperkube_command_line_is_kube_proxy() -> None:
    from ipvslab.doctor.parsers import parse_kube_proxy_cmdline

    result = parse_kube_proxy_cmdline("/hyperkube proxy --proxy-mode=ipvs --ipvs-scheduler=wrr\n")
    assert result.issues == ()
    assert (result.value.settings.mode, result.value.settings.ipvs_scheduler) == ("ipvs", "wrr")
