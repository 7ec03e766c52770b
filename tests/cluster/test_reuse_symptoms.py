"""The symptoms users meet, from whole simulated runs.

Expectations come from the kernel's and kube-proxy's documented behaviour
(../shared/reference/, the seeds), never from the model's own output:
- kernel 4.19 with kube-proxy 1.17 sets conn_reuse_mode=0: a SYN from a reused
  port follows its old entry whatever the real server's weight (ipvs-sysctl.rst,
  kubernetes#81775), so a busy client keeps reaching terminating pods during a
  rollout and gets "no route to host" once they are gone; the old real servers
  keep connections counted and kube-proxy never deletes them.
- kernel >= 5.9 with kube-proxy >= 1.22 keeps conn_reuse_mode=1 and the kernel
  reschedules a reused port without the drop (f0a5e4d7, #102122): no errors.
- conn_reuse_mode=1 with conntrack=1 on a kernel with f719e3754 and without
  f0a5e4d7 drops the first SYN of a reused port: the client connects after its
  1 s retransmission (#70747) and a closed-loop client's rate collapses.
- the sequential port choice of kernels 4.6-5.11 reuses a port within the 120 s
  IPVS TIME_WAIT once a client opens more than ~118 connections/s
  (client-tcp-ports.md §5.3), so the rates below are chosen above that edge.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from .simulate import Ran, simulate


def rollout(kernel: str, kube_proxy: str, **cluster: Any) -> dict[str, Any]:
    return {
        "name": f"rollout {kernel} {kube_proxy}",
        "duration": cluster.pop("duration", "130s"),
        "cluster": {"kernel": kernel, "kube_proxy": {"version": kube_proxy}, **cluster},
        "services": [
            {
                "name": "web",
                "deployment": {
                    "replicas": 2,
                    "readiness_delay": "2s",
                    "serve_after_sigterm": "5s",
                },
            }
        ],
        "clients": [
            {
                "name": "busy",
                "service": "web",
                "load": {"kind": "open", "rate": 250},
                "duration": "5ms",
            }
        ],
        "events": [{"at": "70s", "rollout": {"service": "web"}}],
    }


OLD_PODS = ("web-0", "web-1")


def test_mode0_on_4_19_sends_a_busy_client_to_terminating_then_dead_pods() -> None:
    ran = simulate(rollout("4.19", "v1.17.0"))
    before = ran.window(60, 70)
    # Reused ports follow their old entries (conn_reuse_mode=0: no rescheduling).
    assert (before["decision"] == "FORWARD_EXISTING").mean() > 0.9
    during = ran.window(72, 76)
    # Old pods are weight 0 but still alive: connections succeed to them.
    to_old = during.filter(pl.col("weight0") & (pl.col("result") == "established"))
    assert to_old.height > 0.5 * during.height
    assert set(to_old["pod"].unique()) <= set(OLD_PODS)
    after = ran.window(86, 110)
    errors = ran.results(after)
    # Once the old pods are gone, reused ports still go there: no route to host.
    assert errors.get("EHOSTUNREACH", 0) > 0.5 * after.height
    assert (after.filter(pl.col("result") == "EHOSTUNREACH")["pod_gone"]).all()


def test_mode0_on_4_19_old_real_servers_are_never_deleted_while_reuse_continues() -> None:
    ran = simulate(rollout("4.19", "v1.17.0"))
    weight0 = [rs for rs in ran.summary["real_servers"] if rs["service"] == "web"]
    assert len(weight0) == 2
    for rs in weight0:
        assert rs["never_deleted"], rs
        # kube-proxy's 1-minute check saw connections and kept it.
        assert rs["checks_kept"] >= 1
        assert rs["active_at_end"] + rs["inactive_at_end"] > 0


def test_kernel_5_10_with_kube_proxy_1_22_rolls_out_without_errors() -> None:
    spec = rollout("5.10", "v1.22.0", duration="245s")
    spec["clients"][0]["load"]["rate"] = 150
    ran = simulate(spec)
    assert ran.summary["errors"] == {
        "EHOSTUNREACH": 0,
        "ECONNREFUSED": 0,
        "ETIMEDOUT": 0,
        "EADDRNOTAVAIL": 0,
    }
    # Reused ports were rescheduled (no drop: the SYN's conntrack was new).
    assert (ran.trace["decision"] == "RESCHEDULE").sum() > 0
    assert (ran.trace["decision"] == "DROP_SYN").sum() == 0
    after = ran.window(80, 245)
    assert not after["pod"].is_in(OLD_PODS).any()
    # The old servers drained (TIME_WAIT 120 s) and kube-proxy deleted them.
    for rs in ran.summary["real_servers"]:
        assert rs["deleted_at_s"] is not None, rs


def _closed_loop(kernel: str, kube_proxy: str) -> Ran:
    return simulate(
        {
            "name": f"closed loop {kernel}",
            "duration": "120s",
            "cluster": {"kernel": kernel, "kube_proxy": {"version": kube_proxy}},
            "services": [{"name": "web", "deployment": {"replicas": 2}}],
            "clients": [
                {
                    "name": "bench",
                    "service": "web",
                    "load": {"kind": "closed", "workers": 5},
                    "duration": "10ms",
                }
            ],
        }
    )


def test_first_syn_drop_on_centos_7_6_costs_reused_ports_one_second_and_collapses_the_rate() -> (
    None
):
    dropped = _closed_loop("centos-7.6", "v1.19.0")
    clean = _closed_loop("5.10", "v1.22.0")
    drops = dropped.trace.filter(pl.col("decision") == "DROP_SYN")
    assert drops.height > 0
    # The SYN that was dropped is retransmitted after TCP_TIMEOUT_INIT (1 s).
    assert drops["connect_us"].min() >= 1_000_000
    assert drops["syn_retransmits"].min() >= 1
    assert dropped.summary["connect_ms"]["p99"] >= 1000
    # Steady state, once every port has been used: the closed loop collapses.
    late_dropped = dropped.window(60, 120).filter(pl.col("result") == "established").height
    late_clean = clean.window(60, 120).filter(pl.col("result") == "established").height
    assert late_dropped < late_clean / 10
    assert clean.summary["first_syn_dropped"] == 0


def test_vs_conntrack_0_with_kube_proxy_rules_times_out_every_connection() -> None:
    spec: dict[str, Any] = {
        "duration": "10s",
        "cluster": {
            "kernel": "5.15",
            "kube_proxy": {"version": "v1.28.0"},
            "sysctls": {"net.ipv4.vs.conntrack": 0},
        },
        "services": [{"name": "web"}],
        "clients": [
            {
                "name": "c",
                "service": "web",
                "load": {"kind": "open", "rate": 5},
                "connect_timeout": "5s",
            }
        ],
    }
    ran = simulate(spec)
    assert ran.trace.height > 20
    assert ran.results() == {"ETIMEDOUT": ran.trace.height}
    # Without KUBE-FORWARD's INVALID drop the same node works.
    spec["cluster"]["rules"] = {"drop_invalid": False}
    assert simulate(spec).results() == {"established": ran.trace.height}


def test_iptables_mode_rolls_out_the_same_busy_client_without_errors() -> None:
    ran = simulate(rollout("4.19", "v1.17.0", dataplane="iptables"))
    assert ran.summary["error_rate"] == 0
    after = ran.window(86, 110)
    assert not after["pod"].is_in(OLD_PODS).any()
    assert after.height > 0
