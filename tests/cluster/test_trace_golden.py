"""Golden determinism guard for `ipvslab run`: speed work must not change behaviour.

Each scenario below is a small run shaped like a real cluster, one per path the
simulator takes (IPVS reuse and EHOSTUNREACH during a rollout, first-SYN drops
in a closed loop, session affinity with a scale-out, kube-proxy iptables mode,
UDP). The test hashes everything a user reads back from the run (every trace
row, every real-server sample, kube-proxy's real-server log and the pod log)
and compares it with the hash recorded from the code as it was before the
simulator was made faster. A changed hash means a behaviour change: find out
which row moved before re-recording anything.

The behaviour checks next to each hash make sure a scenario still exercises the
path it is here for (they come from the kernel's and kube-proxy's documented
behaviour, not from the model's output).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest

from ipvslab.cluster.run import RunResult, run_scenario
from ipvslab.scenario.model import Scenario

NARROW_PORTS = "32768 33279"  # 512 ports: a busy client reuses them within seconds


def _scenario(**fields: Any) -> Scenario:
    return Scenario.model_validate(fields)


def _websockets(connections: int, reconnect_delay: str) -> dict[str, Any]:
    """A client "ws" holding long-lived connections to "web" (closed by the pods)."""
    return {
        "name": "ws",
        "service": "web",
        "load": {
            "kind": "long-lived",
            "connections": connections,
            "reconnect_delay": reconnect_delay,
        },
    }


# 4.19 + kube-proxy 1.17 (conn_reuse_mode=0): reused ports follow old entries to
# terminating pods, then EHOSTUNREACH once those pods are gone (#81775).
ROLLOUT_419 = _scenario(
    name="golden-4.19-rollout",
    seed=11,
    duration="8s",
    cluster={"kernel": "4.19", "nodes": 2, "kube_proxy": {"version": "v1.17.0"}},
    services=[
        {
            "name": "web",
            "deployment": {
                "replicas": 3,
                "readiness_delay": "500ms",
                "termination_grace": "3s",
                "serve_after_sigterm": "1s",
            },
        },
        {"name": "api", "port": 8080, "deployment": {"replicas": 2}},
    ],
    clients=[
        {
            "name": "busy",
            "service": "web",
            "load": {"kind": "open", "rate": 400},
            "duration": "5ms",
            "sysctls": {"ip_local_port_range": NARROW_PORTS},
        },
        {
            "name": "side",
            "service": "api",
            "replicas": 2,
            "placement": "spread",
            "load": {"kind": "open", "rate": 60, "arrivals": "constant"},
            "close": "client-first",
        },
        _websockets(12, "200ms"),
    ],
    events=[{"at": "2s", "rollout": {"service": "web"}}],
)

# CentOS 7.6 (3.10) + kube-proxy 1.19: conn_reuse_mode stays 1 (#88541) with
# vs.conntrack=1, so a SYN on a reused port is dropped and retransmitted 1 s later
# (#70747); a closed-loop client's rate falls.
CLOSED_CENTOS = _scenario(
    name="golden-centos-closed",
    seed=3,
    duration="6s",
    cluster={"kernel": "centos-7.6", "kube_proxy": {"version": "v1.19.0"}},
    services=[{"name": "web", "deployment": {"replicas": 4}}],
    clients=[
        {
            "name": "bench",
            "service": "web",
            "load": {"kind": "closed", "workers": 40},
            "duration": "2ms",
            "sysctls": {"ip_local_port_range": "40000 40299"},
        }
    ],
)

# 6.1 + kube-proxy 1.31: ClientIP affinity (persistence templates), a scale-out,
# a pod killed by hand and a client that aborts with RST.
AFFINITY_61 = _scenario(
    name="golden-6.1-affinity",
    seed=5,
    duration="6s",
    cluster={"kernel": "6.1", "nodes": 2, "kube_proxy": {"version": "v1.31.0"}},
    services=[
        {
            "name": "web",
            "session_affinity": "30s",
            "deployment": {"replicas": 2, "readiness_delay": "300ms"},
        }
    ],
    clients=[
        {
            "name": "sticky",
            "service": "web",
            "replicas": 3,
            "placement": "spread",
            "load": {"kind": "open", "rate": 300},
            "close": "client-rst",
            "sysctls": {"ip_local_port_range": NARROW_PORTS},
        }
    ],
    events=[
        {"at": "1s", "scale": {"service": "web", "replicas": 5}},
        {"at": "3s", "kill_pod": {"service": "web", "pod": 0}},
    ],
)

# kube-proxy iptables mode (conntrack picks the endpoint) through a rollout, and
# a UDP Service (DNS-like) on IPVS with a pod killed under it.
IPTABLES = _scenario(
    name="golden-iptables",
    seed=9,
    duration="6s",
    cluster={"kernel": "5.10", "dataplane": "iptables", "dead_pod_ip": "drop"},
    services=[
        {
            "name": "web",
            "deployment": {"replicas": 3, "readiness_delay": "500ms", "termination_grace": "2s"},
        }
    ],
    clients=[
        {
            "name": "busy",
            "service": "web",
            "load": {"kind": "open", "rate": 300},
            "connect_timeout": "2s",
            "sysctls": {"ip_local_port_range": NARROW_PORTS},
        },
        _websockets(6, "100ms"),
    ],
    events=[{"at": "1s", "rollout": {"service": "web"}}],
)

UDP = _scenario(
    name="golden-udp",
    seed=13,
    duration="5s",
    cluster={"kernel": "5.4", "kube_proxy": {"version": "v1.24.0"}},
    services=[
        {
            "name": "dns",
            "port": 53,
            "target_port": 53,
            "protocol": "UDP",
            "deployment": {"replicas": 2},
        }
    ],
    clients=[
        {
            "name": "resolver",
            "service": "dns",
            "load": {"kind": "udp", "rate": 200, "timeout": "500ms", "tries": 2},
            "sysctls": {"ip_local_port_range": "50000 50099"},
        }
    ],
    events=[{"at": "2s", "kill_pod": {"service": "dns", "pod": 1}}],
)


def run_digest(result: RunResult) -> str:
    """One hash of what the run shows: trace rows, samples, server and pod logs."""
    digest = hashlib.sha256()
    for row in result.trace.rows():
        digest.update(repr(dataclasses.astuple(row)).encode())
    digest.update(b"|samples|")
    for sample in result.samples:
        digest.update(repr(dataclasses.astuple(sample)).encode())
    digest.update(b"|servers|")
    for event in result.server_log:
        digest.update(repr(event).encode())
    digest.update(b"|pods|")
    digest.update(repr(result.pod_log).encode())
    digest.update(repr((result.end_us, result.warnings, result.event_errors)).encode())
    return digest.hexdigest()


# Recorded from the simulator before any speed work (branch perf, on f0db7ab).
GOLDEN: dict[str, str] = {
    "golden-4.19-rollout": "7b0fc2952efa19916394e6b37bfd54e58beab6532673afedf017eac142996c80",
    "golden-centos-closed": "4c5206489dd4d44ea3fd32b6c212e6a5df7c96a591844d66c33063d9ab90a508",
    "golden-6.1-affinity": "387b6cf146e950c6d84b8b7eaee089760ec183681d8468c993a94ba051712c79",
    "golden-iptables": "f7a88ea4c4829a9b92042060cdc82852d34780fa19ee93a5bd8f210d24b39d5f",
    "golden-udp": "fa4618bcfc4cda7eeff288fac30a635e04e55bcf831883311e6a2f221be49c2f",
}


@pytest.fixture(scope="module")
def runs() -> dict[str, RunResult]:
    scenarios = (ROLLOUT_419, CLOSED_CENTOS, AFFINITY_61, IPTABLES, UDP)
    return {s.name: run_scenario(s) for s in scenarios}


def _results(result: RunResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in result.trace.rows():
        counts[row.result] = counts.get(row.result, 0) + 1
    return counts


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_trace_matches_golden(runs: dict[str, RunResult], name: str) -> None:
    assert run_digest(runs[name]) == GOLDEN[name]


def test_same_scenario_twice_same_digest(runs: dict[str, RunResult]) -> None:
    assert run_digest(run_scenario(CLOSED_CENTOS)) == run_digest(runs[CLOSED_CENTOS.name])


def test_rollout_on_419_follows_old_entries_to_dead_pods(runs: dict[str, RunResult]) -> None:
    """#81775: with conn_reuse_mode=0 reused ports keep their old real server."""
    rows = runs[ROLLOUT_419.name].trace.rows()
    assert any(r.decision == "FORWARD_EXISTING" and r.weight0 for r in rows)
    unreachable = [r for r in rows if r.result == "EHOSTUNREACH"]
    assert unreachable and all(r.pod_gone and r.time_us > 2_000_000 for r in unreachable)


def test_centos_closed_loop_meets_one_second_syn_drops(runs: dict[str, RunResult]) -> None:
    """#70747: the first SYN on a reused port is dropped; the retry comes 1 s later."""
    dropped = [r for r in runs[CLOSED_CENTOS.name].trace.rows() if r.decision == "DROP_SYN"]
    assert dropped
    assert all(r.syn_retransmits == 1 and r.connect_us >= 1_000_000 for r in dropped)


def test_other_paths_are_exercised(runs: dict[str, RunResult]) -> None:
    affinity = runs[AFFINITY_61.name].trace.rows()
    assert {r.pod for r in affinity if r.time_us > 2_000_000} - {
        r.pod for r in affinity if r.time_us < 1_000_000
    }, "the scale-out's new pods get connections"
    iptables = _results(runs[IPTABLES.name])
    assert iptables == {"established": len(runs[IPTABLES.name].trace)}
    assert any(r.decision == "NAT_REOPEN" for r in runs[IPTABLES.name].trace.rows())
    udp = runs[UDP.name].trace.rows()
    assert {r.protocol for r in udp} == {"UDP"}
