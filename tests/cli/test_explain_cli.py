"""`ipvslab explain` and `ipvslab presets` as a user runs them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ipvslab.cli.main import app
from ipvslab.kernel.presets import list_presets

runner = CliRunner()


def test_explain_without_kernel_compares_every_preset() -> None:
    result = runner.invoke(app, ["explain"])
    assert result.exit_code == 0, result.output
    for preset in list_presets():
        assert preset.name in result.output


def test_explain_json_answers_for_every_preset() -> None:
    result = runner.invoke(app, ["explain", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert {r["kernel"]["preset"] for r in rows} == {p.name for p in list_presets()}
    assert all(r["path"] for r in rows)


def test_explain_4_19_with_old_kube_proxy_shows_the_first_syn_drop_and_its_commit() -> None:
    result = runner.invoke(app, ["explain", "-k", "4.19", "--kube-proxy", "v1.12.0"])
    assert result.exit_code == 0, result.output
    assert "drop this SYN" in result.output
    assert "f719e3754ee2f727" in result.output


def test_explain_json_names_the_reschedule_on_6_1() -> None:
    result = runner.invoke(app, ["explain", "-k", "6.1.192", "--json"])
    data = json.loads(result.output)
    assert data["outcome"] == "RESCHEDULE"
    assert data["destination"] == "other server"
    assert data["kernel"]["version"] == "6.1.192"


def test_explain_mode_0_without_nodest_on_6_1_follows_the_old_entry() -> None:
    args = ["explain", "-k", "6.1", "--conn-reuse-mode", "0", "--expire-nodest-conn", "0"]
    data = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert data["outcome"] == "FORWARD_EXISTING"
    assert data["problem"] == "problem 1"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-k", "not-a-kernel"], "not-a-kernel"),
        (["-k", "6.1", "--conn-reuse-mode", "7"], "conn_reuse_mode"),
        (["-k", "6.1", "--conn-reuse-old-conntrack", "0"], "TencentOS"),
        (["-k", "6.1", "--kube-proxy", "banana"], "banana"),
        (["-k", "6.1", "--forward", "route", "--state", "CLOSE_WAIT"], "CLOSE_WAIT"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_2(args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["explain", *args])
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output


def test_presets_json_lists_evidence_for_every_preset() -> None:
    result = runner.invoke(app, ["presets", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert rows and all(r["evidence"] for r in rows)


def test_version_flag() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("ipvslab ")


def test_presets_table_shows_every_feature_and_evidence_at_80_columns() -> None:
    result = runner.invoke(app, ["presets"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    flat = " ".join(result.output.split())
    for preset in list_presets():
        assert preset.name in flat
        assert " ".join(preset.evidence.split()[:8]) in flat
        for feature in preset.features.enabled:
            assert feature.value in flat


def test_a_kube_proxy_without_ipvs_mode_is_refused_as_run_refuses_it() -> None:
    # The KubeProxyIPVS gate is planned locked off from v1.43 (KEP-5495): there is no
    # IPVS decision to explain.
    result = CliRunner().invoke(app, ["explain", "--kernel", "6.1", "--kube-proxy", "v1.43.0"])
    assert result.exit_code == 2
    assert "has no IPVS mode" in result.output


def test_weight0_with_a_kube_proxy_before_graceful_termination_is_flagged() -> None:
    # Before #66012 (v1.12.2, v1.13.0) kube-proxy deleted the real server with its
    # endpoint: a terminating pod was never at weight 0.
    result = CliRunner().invoke(app, ["explain", "--kernel", "4.19", "--kube-proxy", "v1.11.5"])
    assert result.exit_code == 0
    assert "never sets weight 0" in result.output and "--server removed" in result.output
    later = CliRunner().invoke(app, ["explain", "--kernel", "4.19", "--kube-proxy", "v1.12.2"])
    assert "never sets weight 0" not in later.output
