"""The Deployment controller's rolling update, as Kubernetes documents it: never
more than replicas + maxSurge pods that are not terminating, never fewer than
replicas - maxUnavailable ready ones once the rollout starts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ipvslab.cluster.pods import Deployment, IpAllocator, PodPhase, PodTemplate
from ipvslab.engine import Engine

SECOND = 1_000_000


def _deployment(
    replicas: int, surge: int | str, unavailable: int | str, engine: Engine
) -> Deployment:
    return Deployment(
        service="web",
        replicas=replicas,
        template=PodTemplate(2 * SECOND, 30 * SECOND, 5 * SECOND),
        max_surge=surge,
        max_unavailable=unavailable,
        place=lambda index: 0,
        engine=engine,
        ips=IpAllocator(0x0AF40000, 1),
        on_change=lambda: None,
        registry={},
    )


@settings(max_examples=40, deadline=None)
@given(
    replicas=st.integers(1, 12),
    surge=st.one_of(st.integers(0, 4), st.sampled_from(["25%", "50%", "0%"])),
    unavailable=st.one_of(st.integers(0, 4), st.sampled_from(["25%", "0%"])),
)
def test_rolling_update_respects_surge_and_unavailability(
    replicas: int, surge: int | str, unavailable: int | str
) -> None:
    engine = Engine()
    deployment = _deployment(replicas, surge, unavailable, engine)
    deployment.start()
    deployment.rollout()

    def resolved(value: int | str, up: bool) -> int:
        if isinstance(value, int):
            return value
        share = int(value[:-1]) * replicas / 100
        return -int(-share // 1) if up else int(share)

    max_surge = resolved(surge, True)
    max_unavailable = resolved(unavailable, False)
    if max_surge == 0 and max_unavailable == 0:
        max_unavailable = 1
    for _ in range(400):
        active = [p for p in deployment.pods if p.phase in (PodPhase.PENDING, PodPhase.READY)]
        ready = [p for p in active if p.ready]
        assert len(active) <= replicas + max_surge
        assert len(ready) >= replicas - max_unavailable
        if engine.peek() is None:
            break
        engine.run(until=engine.peek())
    live = [p for p in deployment.pods if p.phase is PodPhase.READY]
    assert len(live) == replicas
    assert all(p.revision == 1 for p in live)


def test_terminating_pod_serves_then_its_ip_goes_away() -> None:
    engine = Engine()
    deployment = _deployment(1, 1, 0, engine)
    deployment.start()
    old = deployment.pods[0]
    deployment.rollout()
    engine.run(until=2 * SECOND)  # the new pod is ready: the old one terminates
    assert old.phase is PodPhase.TERMINATING and old.listening
    assert old.ip in deployment.registry
    engine.run(until=7 * SECOND)  # serve_after_sigterm 5 s later the process exits
    assert old.phase is PodPhase.GONE
    assert old.ip not in deployment.registry
