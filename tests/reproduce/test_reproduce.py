"""`ipvslab reproduce` at quick scale: each seed symptom shows, in the direction and
rough size the seeds state, and the configurations meant to cure it do.

Expectations come from the seeds and the kernel's behaviour: rollout errors with
conn_reuse_mode=0 on 4.19 and none on 5.9 + kube-proxy 1.22 (seed 000/001/002,
#102122); the closed-loop rate with the first-SYN drop below a tenth of the rate
without it (seed 000: 30,000 -> 1,500); new pods' share after a scale-out well
below fair in mode 0 and near fair in mode 1 on 5.9+ (seed 000 item 3);
expire_quiescent_template=1 moving affinity off the dead pod (seed 003); the
CCE table of seed 002.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvslab.cli.main import app
from ipvslab.reproduce import cce
from ipvslab.reproduce.measure import Measures
from ipvslab.reproduce.runner import execute, plan, report


def measures(symptom: str, *configurations: str) -> dict[str, Measures]:
    tasks = [t for t in plan(quick=True, only=[symptom]) if t.label in configurations]
    assert len(tasks) == len(configurations)
    found: dict[str, Measures] = {}
    for outcome in execute(tasks, 1, None):
        assert outcome.measures is not None, outcome.error
        found[outcome.task.label] = outcome.measures
    return found


def test_no_route_to_host_with_mode_0_on_4_19_and_none_on_5_9_with_kube_proxy_1_22() -> None:
    m = measures("no-route-to-host", "baseline", "kernel-5.9-kube-proxy-1.22")
    assert m["baseline"].error_rate_after_event > 0.01
    assert m["baseline"].stuck_servers == 1
    assert m["kernel-5.9-kube-proxy-1.22"].error_rate == 0
    assert m["kernel-5.9-kube-proxy-1.22"].stuck_servers == 0


def test_first_syn_drop_cuts_the_closed_loop_rate_below_a_tenth() -> None:
    m = measures("one-second-delay", "baseline", "conn-reuse-mode-0")
    drop, no_drop = m["baseline"], m["conn-reuse-mode-0"]
    assert drop.late_rate < no_drop.late_rate / 10
    assert drop.late_connect_p50_ms is not None and drop.late_connect_p50_ms >= 900
    assert no_drop.first_syn_dropped == 0


def test_load_frozen_on_terminating_pods_in_mode_0_only() -> None:
    m = measures("frozen-load", "baseline", "kernel-5.9-kube-proxy-1.22")
    assert m["baseline"].frozen_share > 0.5
    assert m["kernel-5.9-kube-proxy-1.22"].frozen_share < 0.05


def test_new_pods_starved_in_mode_0_and_fed_on_5_9() -> None:
    m = measures("starved-scale-out", "baseline", "kernel-5.9-kube-proxy-1.22", "kernel-5.16")
    base, fixed, weight0_fix = (m["baseline"], m["kernel-5.9-kube-proxy-1.22"], m["kernel-5.16"])
    assert base.fair_share == pytest.approx(0.5)
    assert base.new_pods_share is not None and base.new_pods_share < base.fair_share / 2
    assert fixed.new_pods_share is not None and abs(fixed.new_pods_share - 0.5) < 0.1
    # c95c07836fa4 only moves reused ports off weight-0 servers: the old pods keep
    # weight 1 after a scale-out, so mode 0 still starves the new ones.
    assert weight0_fix.new_pods_share is not None and weight0_fix.new_pods_share < 0.25


def test_session_affinity_pinned_to_the_dead_pod_until_expire_quiescent_template() -> None:
    m = measures("sticky-dead-pod", "baseline", "expire-quiescent-template")
    assert m["baseline"].failed_after_event > 0
    # Until kube-proxy's next 1-minute check deletes the old server (seed 003).
    assert 0 < m["baseline"].failure_window_s <= 60
    assert m["expire-quiescent-template"].failed_after_event == 0


def test_the_derived_cce_matrix_equals_the_seed_table_but_for_its_blanket_row() -> None:
    outcomes = execute(plan(quick=True, only=["cce"]), 2, None)
    cells = report(outcomes).cce_cells
    assert len(cells) == len(cce.OSES) * len(cce.BANDS) == len(cce.SEED_TABLE)
    differ = {(c.preset, c.kube_proxy) for c in cells if not c.agrees}
    # The FAQ's "<= 1.17: problem 1 on every node" predates the kernels that carry
    # c95c07836fa4 (the presets of the fixed EulerOS 2.9, HCE 2.0, Ubuntu 22.04):
    # there mode 0 with expire_nodest_conn=1 leaves weight-0 servers. Every other
    # cell equals the seed's.
    assert differ == {
        ("euleros-2.9-fixed", "v1.17.0"),
        ("hce-2.0", "v1.17.0"),
        ("ubuntu-22.04", "v1.17.0"),
    }
    assert all(c.why == cce.BLANKET_ROW_NOTE for c in cells if not c.agrees)


def test_results_do_not_depend_on_the_number_of_processes() -> None:
    tasks = [t for t in plan(quick=True, only=["sticky-dead-pod"])][:3]
    one = [o.measures for o in execute(tasks, 1, None)]
    two = [o.measures for o in execute(tasks, 2, None)]
    assert one == two


def test_cli_refuses_an_unknown_symptom_and_writes_its_report(tmp_path: Path) -> None:
    bad = CliRunner().invoke(app, ["reproduce", "--only", "nope"])
    assert bad.exit_code == 2
    assert "no-route-to-host" in bad.output
    result = CliRunner().invoke(
        app,
        [
            "reproduce",
            "--quick",
            "--only",
            "sticky-dead-pod",
            "--jobs",
            "1",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "seed 003" in result.output
    assert (tmp_path / "report.json").exists()
    assert (tmp_path / "matrix.csv").read_text().startswith("symptom,configuration,verdict")
    assert list((tmp_path / "runs" / "sticky-dead-pod").glob("*/*/trace.parquet"))


def test_ctrl_c_says_no_report_was_written_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipvslab.reproduce import runner

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "execute", interrupted)
    result = CliRunner().invoke(app, ["reproduce", "--quick", "--out", str(tmp_path / "o")])
    assert result.exit_code == 130
    assert "interrupted: no report written" in result.output
    assert not (tmp_path / "o" / "report.json").exists()
