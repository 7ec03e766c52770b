"""``--what-if`` from end to end: parse the asks, model the node, run, advise."""

from __future__ import annotations

import dataclasses

from ipvslab.doctor.facts import NodeFacts, sysctl_fixes
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.what_if.advice import recommend
from ipvslab.what_if.changes import Kind, WhatIf, WhatIfError, split_what_ifs
from ipvslab.what_if.node_scenario import AFTER_S, node_model
from ipvslab.what_if.predict import Outcome, Variant, predict
from ipvslab.what_if.result import Range, WhatIfReport, WhatIfRun, WhatIfVariant

DEFAULT_SEEDS = 3


def what_if(
    snapshot: NodeSnapshot,
    facts: NodeFacts,
    asks: list[str],
    seeds: int = DEFAULT_SEEDS,
    jobs: int = 1,
) -> WhatIfReport:
    """The prediction for ``asks`` (``--what-if`` values); WhatIfError when it cannot be made."""
    if seeds < 1:
        raise WhatIfError("--seeds must be at least 1")
    actions, settings = split_what_ifs(asks)
    if actions and not settings:
        settings = suggested_settings(facts)
    targets = [w.service for w in actions if w.service is not None]
    model = node_model(snapshot, facts, targets)
    seed_list = list(range(1, seeds + 1))
    variants = predict(model, actions, settings, seed_list, jobs)
    if variants[0].refused is not None:
        raise WhatIfError(f"the cluster twin cannot run this node: {variants[0].refused}")
    persistent = any("session_affinity" in s for s in model.base["services"])
    action_text = " and ".join(w.text for w in actions) or "no action (the node as it runs)"
    return WhatIfReport(
        actions=[w.text for w in actions],
        action_at_s=model.action_at_s,
        after_s=AFTER_S,
        seeds=seed_list,
        services={ref.label: name for ref, name in model.services.items()},
        assumptions=model.assumptions,
        variants=[_variant(v) for v in variants],
        recommendation=recommend(variants, facts, action_text, persistent),
    )


SUGGESTED = 2  # sysctl changes tried when only actions are asked


def suggested_settings(facts: NodeFacts) -> list[WhatIf]:
    """With only actions asked: the doctor's own sysctl fixes for this node (checked with
    the kernel twin on its kernel, best first), so the answer can say which one to make
    before the rollout."""
    out = []
    for fix in sysctl_fixes(facts)[:SUGGESTED]:
        text = ",".join(f"{n}={v}" for n, v in fix.changes.items())
        out.append(
            WhatIf(Kind.SYSCTL, f"sysctl={text} (suggested)", changes=tuple(fix.changes.items()))
        )
    return out


def _variant(v: Variant) -> WhatIfVariant:
    runs = v.outcomes

    def span(values: list[float | None]) -> Range:
        known = [x for x in values if x is not None]
        return Range(low=min(known), high=max(known)) if known else Range(low=None, high=None)

    def rate(o: Outcome) -> float | None:
        return o.error_total / o.connections if o.connections else None

    return WhatIfVariant(
        label=v.label,
        settings=[w.text for w in v.settings],
        refused=v.refused,
        runs=[WhatIfRun(**dataclasses.asdict(o)) for o in runs],
        errors=span([o.error_total for o in runs]),
        error_rate=span([rate(o) for o in runs]),
        to_old_pods=span([o.to_old_pods for o in runs]),
        connect_p99_ms=span([o.connect_p99_ms for o in runs]),
        longest_stay_s=span([o.longest_stay_s for o in runs]),
        old_servers_kept=span([o.old_servers_kept for o in runs]),
        new_pods_share=span([o.new_pods_share for o in runs]),
        fair_share=span([o.fair_share for o in runs]),
    )
