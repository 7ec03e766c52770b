"""Script mode: what a person types on a node, step by step, with the errno the
client sees and the IPVS entry before and after each step.

Expectations: client-tcp-ports.md §2.2 (a bound socket may take over its own
TIME_WAIT only when the old connection had timestamps, else EADDRNOTAVAIL),
ipvs-sysctl.rst and the reuse decision per era (linux-ipvs.md)."""

from __future__ import annotations

from typing import Any

from ipvslab.cluster.run import run_scenario
from ipvslab.cluster.script import StepResult
from ipvslab.scenario.model import Scenario


def script(steps: list[dict[str, Any]], **cluster: Any) -> list[StepResult]:
    scenario = Scenario.model_validate(
        {
            "duration": "600s",
            "cluster": {"kernel": "6.1", **cluster},
            "services": [{"name": "web"}],
            "clients": [
                # The client exists for the script; its own load starts after the run.
                {
                    "name": "c",
                    "service": "web",
                    "load": {"kind": "open", "rate": 1},
                    "start": "900s",
                }
            ],
            "script": steps,
        }
    )
    return run_scenario(scenario).steps


def test_bound_port_in_client_time_wait_without_timestamps_is_eaddrnotavail() -> None:
    steps = script(
        [
            {"client_sysctl": {"client": "c", "name": "net.ipv4.tcp_timestamps", "value": 0}},
            {"connect": {"client": "c", "port": 40000, "close": "client-first"}},
            {"connect": {"client": "c", "port": 40000, "close": "client-first"}},
        ]
    )
    assert [s.result for s in steps] == ["ok", "established", "EADDRNOTAVAIL"]
    assert steps[2].client_port == 40000
    # IPVS still holds the first connection's entry in TIME_WAIT.
    assert steps[2].entry_before.startswith("TIME_WAIT")


def test_bound_port_takes_over_its_time_wait_when_timestamps_were_on() -> None:
    steps = script(
        [
            {"connect": {"client": "c", "port": 40000, "close": "client-first"}},
            {"connect": {"client": "c", "port": 40000, "close": "client-first"}},
        ]
    )
    assert [s.result for s in steps] == ["established", "established"]


def test_reused_port_on_6_1_is_rescheduled_and_the_entry_shows_it() -> None:
    steps = script(
        [
            {"connect": {"client": "c", "port": 40000}},
            {"connect": {"client": "c", "port": 40000}},
        ]
    )
    first, second = steps
    assert first.entry_before == ""
    assert first.entry_after.startswith("TIME_WAIT ")
    # kube-proxy v1.31 leaves conn_reuse_mode=1 on >= 5.9: the SYN on the TIME_WAIT
    # entry expires it and rr schedules the other server, with no drop.
    assert second.entry_before.startswith("TIME_WAIT ")
    assert second.detail == "RESCHEDULE"
    assert second.syn_retransmits == 0
    assert second.entry_after.split()[1] != first.entry_after.split()[1]


def _weight0_reuse(kernel: str) -> list[StepResult]:
    """A connection, its server set to weight 0 by hand, the port reused, in mode 0."""
    first = script([{"connect": {"client": "c", "port": 40000}}], kernel=kernel)[0]
    served = int(first.pod.rsplit("-", 1)[1])  # web-N: the N-th pod, oldest first
    return script(
        [
            {"sysctl": {"name": "net.ipv4.vs.conn_reuse_mode", "value": 0}},
            {"connect": {"client": "c", "port": 40000}},
            {"set_weight": {"service": "web", "pod": served, "weight": 0}},
            {"connect": {"client": "c", "port": 40000}},
        ],
        kernel=kernel,
    )


def test_mode0_reused_port_stays_on_its_weight0_server_before_5_16() -> None:
    steps = _weight0_reuse("5.10")
    old_server = steps[1].entry_after.split()[1]
    # ipvs-sysctl.rst: mode 0 delivers the new connection to the same real server.
    assert steps[3].detail == "FORWARD_EXISTING"
    assert steps[3].result == "established"
    assert steps[3].entry_after.split()[1] == old_server


def test_mode0_reused_port_leaves_its_weight0_server_from_5_16() -> None:
    steps = _weight0_reuse("6.1")
    old_server = steps[1].entry_after.split()[1]
    # c95c07836fa4 (5.16): expire_nodest_conn=1 (kube-proxy) moves it in any mode.
    assert steps[3].detail == "RESCHEDULE"
    assert steps[3].result == "established"
    assert steps[3].entry_after.split()[1] != old_server


def test_no_schedulable_server_refuses_the_connection_at_once() -> None:
    steps = script(
        [
            {"connect": {"client": "c", "port": 40000}},
            {"set_weight": {"service": "web", "pod": 0, "weight": 0}},
            {"set_weight": {"service": "web", "pod": 1, "weight": 0}},
            {"connect": {"client": "c", "port": 40000}},
        ]
    )
    last = steps[-1]
    assert last.detail == "NO_DEST_AVAILABLE"
    # ip_vs_leave(): ICMP port unreachable whatever the protocol, so connect()
    # fails at once with ECONNREFUSED (no SYN retransmission).
    assert last.result == "ECONNREFUSED"
    assert last.syn_retransmits == 0
    assert last.connect_us < 1_000


def test_killed_pod_with_kube_proxy_deleting_its_server_gives_ehostunreach_on_4_19_mode0() -> None:
    steps = script(
        [
            {"connect": {"client": "c", "port": 40000}},
            {"kill_pod": {"service": "web", "pod": 0}},
            {"kill_pod": {"service": "web", "pod": 0}},
            {"connect": {"client": "c", "port": 40000}},
        ],
        kernel="4.19",
        kube_proxy={"version": "v1.17.0"},
        dead_pod_ip="ehostunreach",
    )
    first, _, _, last = steps
    # Both original pods are gone; their servers sit at weight 0 on kube-proxy's
    # list (TIME_WAIT entries count), and mode 0 sends the reused port to its old
    # server: no route to host.
    assert first.result == "established"
    assert last.detail == "FORWARD_EXISTING"
    assert last.result == "EHOSTUNREACH"


def test_pod_not_ready_then_ready_again_is_weighted_0_then_deleted_and_re_added() -> None:
    scenario = Scenario.model_validate(
        {
            "cluster": {"kernel": "5.10", "kube_proxy": {"version": "v1.28.0"}},
            "services": [{"name": "web", "deployment": {"replicas": 2}}],
            "clients": [
                {
                    "name": "c",
                    "service": "web",
                    "load": {"kind": "open", "rate": 1},
                    "start": "900s",
                }
            ],
            "script": [
                {"connect": {"client": "c", "port": 40000, "close": "held"}},
                {"connect": {"client": "c", "port": 40001, "close": "held"}},
                {"set_ready": {"service": "web", "pod": 0, "ready": False}},
                {"wait": "5s"},
                {"set_ready": {"service": "web", "pod": 0, "ready": True}},
                {"wait": "1s"},
            ],
        }
    )
    run = run_scenario(scenario)
    web0 = next(e.server for e in run.server_log if e.action == "added")
    actions = [(e.time // 1_000_000, e.action) for e in run.server_log if e.server == web0]
    # §1.1 point 6 and #117205: weight 0 while not ready (it still holds a
    # connection), then deleted and re-added with weight 1 when ready again.
    assert actions == [(0, "added"), (0, "weight-0"), (5, "deleted"), (5, "re-added")]


def test_a_script_carries_on_past_the_duration_and_clients_need_no_load() -> None:
    scenario = Scenario.model_validate(
        {
            "duration": "1s",
            "cluster": {"kernel": "6.1"},
            "services": [{"name": "web"}],
            "clients": [{"name": "c", "service": "web"}],
            "events": [{"at": "3s", "scale": {"service": "web", "replicas": 3}}],
            "script": [
                {"connect": {"client": "c"}},
                {"wait": "5s"},
                {"connect": {"client": "c"}},
            ],
        }
    )
    run = run_scenario(scenario)
    assert [s.result for s in run.steps] == ["established", "ok", "established"]
    assert run.end_us >= 5_000_000
    assert any(what == "created" and t == 3_000_000 for t, _, what in run.pod_log)


def test_a_held_connection_can_be_released_by_the_very_next_step() -> None:
    # A held connect may be established inside connect() itself (no wait in between):
    # the release right after it must find it, as a user writing these two steps expects.
    steps = script(
        [
            {"connect": {"client": "c", "port": 40002, "close": "held"}},
            {"release": {"client": "c", "port": 40002}},
        ]
    )
    assert [s.result for s in steps] == ["established", "ok"]
    assert steps[1].entry_after.startswith(("FIN_WAIT", "CLOSE", "TIME_WAIT"))
