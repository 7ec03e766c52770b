"""One parser module per format; each parser takes a text stream and returns plain data."""

from ipvslab.doctor.parsers.ipvsadm_conn import iter_ipvsadm_conn, parse_ipvsadm_conn
from ipvslab.doctor.parsers.ipvsadm_list import parse_ipvsadm_list
from ipvslab.doctor.parsers.ipvsadm_stats import parse_ipvsadm_stats
from ipvslab.doctor.parsers.ipvsadm_timeout import parse_ipvsadm_timeout
from ipvslab.doctor.parsers.kernel_release import parse_kernel_release
from ipvslab.doctor.parsers.kube_proxy import (
    parse_go_duration,
    parse_kube_proxy_cmdline,
    parse_kube_proxy_config,
    parse_kube_proxy_version,
)
from ipvslab.doctor.parsers.os_release import parse_os_release
from ipvslab.doctor.parsers.proc_ip_vs import parse_proc_ip_vs
from ipvslab.doctor.parsers.proc_ip_vs_conn import (
    iter_proc_ip_vs_conn,
    iter_proc_ip_vs_conn_sync,
    parse_proc_ip_vs_conn,
    parse_proc_ip_vs_conn_sync,
)
from ipvslab.doctor.parsers.proc_ip_vs_stats import parse_proc_ip_vs_stats
from ipvslab.doctor.parsers.proc_version import parse_proc_version, parse_version_signature
from ipvslab.doctor.parsers.sniff import DoctorFormat, parse_any, sniff_format
from ipvslab.doctor.parsers.sysctl import parse_proc_sys_vs, parse_sysctl

__all__ = [
    "DoctorFormat",
    "iter_ipvsadm_conn",
    "iter_proc_ip_vs_conn",
    "iter_proc_ip_vs_conn_sync",
    "parse_any",
    "parse_go_duration",
    "parse_ipvsadm_conn",
    "parse_ipvsadm_list",
    "parse_ipvsadm_stats",
    "parse_ipvsadm_timeout",
    "parse_kernel_release",
    "parse_kube_proxy_cmdline",
    "parse_kube_proxy_config",
    "parse_kube_proxy_version",
    "parse_os_release",
    "parse_proc_ip_vs",
    "parse_proc_ip_vs_conn",
    "parse_proc_ip_vs_conn_sync",
    "parse_proc_ip_vs_stats",
    "parse_proc_sys_vs",
    "parse_proc_version",
    "parse_sysctl",
    "parse_version_signature",
    "sniff_format",
]
