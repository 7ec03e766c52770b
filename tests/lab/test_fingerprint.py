"""The fingerprint's decision: a kernel that behaves like a preset is named as
that preset; one that behaves like none gets the nearest and the steps that differ."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from ipvslab.cluster.script import StepResult
from ipvslab.lab.fingerprint import decide, predictions, probe_scenario


@cache
def _predicted() -> dict[str, list[StepResult]]:
    return predictions(probe_scenario(), with_rules=True)


def _trace(preset: str) -> list[StepResult]:
    return [replace(r) for r in _predicted()[preset]]


def test_the_probe_set_tells_the_reuse_eras_apart() -> None:
    distinct = {
        tuple((r.result, r.pod, r.syn_retransmits) for r in t) for t in _predicted().values()
    }
    assert len(distinct) >= 5


def test_a_kernel_like_debian_12_is_named_with_its_look_alikes() -> None:
    verdict = decide(_trace("debian-12"), _predicted())
    assert "debian-12" in verdict.matches
    assert "ubuntu-18.04" not in verdict.matches
    # 6.1 reschedules a reused port without dropping its first SYN (f0a5e4d7a594)
    # and reschedules off a weight-0 server in mode 0 (c95c07836fa4).
    assert verdict.decided["unconfirmed_conntrack_reuse"] is True
    assert verdict.decided["weight0_reschedule_any_mode"] is True
    # No probe looks at ActiveConn counting: reported apart, not as observed.
    assert "preestablished_active" not in verdict.decided
    assert "preestablished_active" in verdict.unprobed


def test_a_kernel_with_the_first_syn_drop_is_named_as_a_drop_era_preset() -> None:
    verdict = decide(_trace("ubuntu-18.04"), _predicted())
    assert "ubuntu-18.04" in verdict.matches
    assert "debian-12" not in verdict.matches
    assert verdict.decided["first_syn_drop"] is True
    assert verdict.decided["unconfirmed_conntrack_reuse"] is False


def test_a_kernel_that_drops_for_a_deleted_server_lacks_04231e52d355() -> None:
    # Step 14: the SYN for an entry whose server was deleted is dropped once and
    # retransmitted, as on a 5.4 kernel; everything else as on 6.1.
    observed = _trace("debian-12")
    observed[14] = _trace("ubuntu-20.04")[14]
    assert observed[14].syn_retransmits == 1
    verdict = decide(observed, _predicted())
    assert verdict.matches == ("ubuntu-20.04",)
    assert verdict.decided["nodest_reschedule"] is False


def test_a_kernel_like_no_preset_gets_the_nearest_with_the_step_that_differs() -> None:
    observed = _trace("debian-12")
    observed[5] = replace(observed[5], pod="web-9")
    verdict = decide(observed, _predicted())
    assert verdict.matches == ()
    assert "debian-12" in verdict.nearest
    best = verdict.candidates[0]
    assert [(r.index, r.differences[0].field) for r in best.disagreements] == [(5, "pod")]
