from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ipvslab.doctor.parsers.sniff import DoctorFormat, parse_any, sniff_format

Reader = Callable[[str], str]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "doctor"
F = DoctorFormat


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("proc_ip_vs.txt", F.PROC_IP_VS),
        ("proc_ip_vs_conn.txt", F.PROC_IP_VS_CONN),
        ("proc_ip_vs_conn_old.txt", F.PROC_IP_VS_CONN),
        ("proc_ip_vs_conn_sync.txt", F.PROC_IP_VS_CONN_SYNC),
        ("proc_ip_vs_stats.txt", F.PROC_IP_VS_STATS),
        ("ipvsadm_81775.txt", F.IPVSADM_LIST),
        ("ipvsadm_list.txt", F.IPVSADM_LIST),
        ("ipvsadm_stats.txt", F.IPVSADM_STATS),
        ("ipvsadm_conn.txt", F.IPVSADM_CONN),
        ("ipvsadm_conn_pe.txt", F.IPVSADM_CONN),
        ("sysctl_a.txt", F.SYSCTL),
        ("os_release_ubuntu.txt", F.OS_RELEASE),
        ("kube_proxy_cmdline.bin", F.KUBE_PROXY_CMDLINE),
        ("kube_proxy_configmap.yaml", F.KUBE_PROXY_CONFIG),
    ],
)
def test_each_fixture_is_recognised_and_parses_cleanly(name: str, fmt: DoctorFormat) -> None:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    assert sniff_format(text) is fmt
    found, result = parse_any(text, name)
    assert found is fmt
    assert [i for i in result.issues if "permission denied" not in i.message] == []


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        # Pasted without headers.
        ("TCP  172.16.255.241:80 rr\n  -> 172.16.8.106:80  Masq 0 10 14048\n", F.IPVSADM_LIST),
        ("TCP  0A000001:0050 rr  \n", F.PROC_IP_VS),
        ("TCP 0AF40105 D431 0A600001 01BB C0A8010A 192B ESTABLISHED     899\n", F.PROC_IP_VS_CONN),
        ("TCP 14:59  ESTABLISHED 10.244.1.5:54321 10.96.0.1:443 192.168.1.10:6443\n",
         F.IPVSADM_CONN),
        ("5.15.0-91-generic\n", F.KERNEL_RELEASE),
        ("Kubernetes v1.22.3\n", F.KUBE_PROXY_VERSION),
        ("net.ipv4.vs.conn_reuse_mode = 0\n", F.SYSCTL),
        ("/usr/local/bin/kube-proxy --proxy-mode=ipvs\n", F.KUBE_PROXY_CMDLINE),
        ("hello world\n", F.UNKNOWN),
        ("", F.UNKNOWN),
    ],
)  # fmt: skip
def test_headerless_pastes(text: str, fmt: DoctorFormat) -> None:
    assert sniff_format(text) is fmt


def test_unknown_text_gives_an_issue_not_an_exception() -> None:
    fmt, result = parse_any("hello world\n")
    assert fmt is F.UNKNOWN and result.value is None and result.issues[0].field == "format"
