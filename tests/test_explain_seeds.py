"""The symptoms of the seed write-ups, reproduced through `explain`."""

from __future__ import annotations

from ipvslab.explain import ExplainRequest, ServerCondition, explain
from ipvslab.kernel.decision import Outcome
from ipvslab.kernel.tcp_states import TcpState


def test_cce_faq_centos_7_6_and_euleros_2_5_get_the_1s_delay_with_kube_proxy_1_19() -> None:
    # Seed 002: kube-proxy >= 1.19 leaves conn_reuse_mode=1 on kernels it reads as < 4.1,
    # and these kernels carry the first-SYN drop.
    for kernel in ("centos-7.6", "euleros-2.5"):
        e = explain(ExplainRequest(kernel=kernel, kube_proxy="v1.19.16"))
        assert e.sysctls.conn_reuse_mode == 1
        assert e.outcome is Outcome.DROP_SYN
        assert e.problem == "problem 2"


def test_cce_faq_ubuntu_18_04_sends_reused_ports_to_the_deleted_pod() -> None:
    e = explain(ExplainRequest(kernel="ubuntu-18.04", kube_proxy="v1.19.16"))
    assert e.sysctls.conn_reuse_mode == 0
    assert e.outcome is Outcome.FORWARD_EXISTING
    assert e.destination == "old server"
    assert "no route to host" in e.symptom


def test_cce_faq_ubuntu_22_04_and_hce_2_0_are_fixed() -> None:
    for kernel in ("ubuntu-22.04", "hce-2.0"):
        e = explain(ExplainRequest(kernel=kernel, kube_proxy="v1.25.0"))
        assert e.outcome is Outcome.RESCHEDULE
        assert e.destination == "other server"


def test_seed_000_mode_0_keeps_load_on_a_draining_pod_before_5_16() -> None:
    e = explain(
        ExplainRequest(kernel="5.10.0", kube_proxy="v1.20.0", server=ServerCondition.WEIGHT0)
    )
    assert e.sysctls.conn_reuse_mode == 0
    # 5.10.0 predates the c95c07836fa4 stable backport (5.10.83).
    assert e.destination == "old server"


def test_seed_000_tencentos_with_mode_1_reschedules_without_dropping() -> None:
    e = explain(ExplainRequest(kernel="tencentos-5.4", kube_proxy=None, conntrack=1))
    assert e.sysctls.conn_reuse_mode == 1
    assert e.outcome is Outcome.RESCHEDULE


def test_seed_003_persistence_keeps_sending_to_a_weight_0_server_without_quiescent_expiry() -> None:
    request = ExplainRequest(
        kernel="4.4",
        kube_proxy=None,
        persistence=10800,
        server=ServerCondition.WEIGHT0,
        old_state=TcpState.TIME_WAIT,
        expire_quiescent_template=0,
    )
    e = explain(request)
    # The old entry is controlled by the template, so conn_reuse_mode=1 does not
    # reschedule it; the SYN follows it to the weight-0 server.
    assert e.destination == "old server"


def test_an_old_entry_that_already_expired_is_reported_and_the_syn_is_scheduled() -> None:
    e = explain(ExplainRequest(kernel="6.1", age=200))
    assert e.outcome is Outcome.SCHEDULE
    assert any("expired" in w for w in e.warnings)
