"""Compare: the model's trace of a script beside the kernel's, step by step.

Both sides are ``StepResult`` rows keyed by the step index. What is compared is
what a user would notice: the outcome (established or the errno), the pod that
answered, the SYN retransmissions, and the IPVS entry and persistence template
before and after (state and real server; the remaining lifetime differs by the
time the steps took and is shown, not compared). Connect times are shown side by
side, not compared: emulation stretches them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipvslab.cluster.run import run_scenario
from ipvslab.cluster.script import StepResult
from ipvslab.scenario.model import IpvsRules, Scenario

# Columns compared on connect and UDP steps; other steps compare their result.
TRAFFIC_FIELDS = (
    "result",
    "pod",
    "syn_retransmits",
    "entry_before",
    "entry_after",
    "template_before",
    "template_after",
)
TRAFFIC_ACTIONS = frozenset({"connect", "udp", "release"})


@dataclass(frozen=True)
class Difference:
    field: str
    model: str
    lab: str


@dataclass(frozen=True)
class StepComparison:
    index: int
    action: str
    model: StepResult | None
    lab: StepResult | None
    differences: tuple[Difference, ...]

    @property
    def agrees(self) -> bool:
        return not self.differences


def entry_key(view: str) -> str:
    """``STATE ip:port 119.010s`` -> ``STATE ip:port`` (lifetimes are not compared)."""
    return " ".join(view.split()[:2])


def _value(row: StepResult, name: str) -> str:
    value = str(getattr(row, name))
    if name.startswith(("entry_", "template_")):
        return entry_key(value)
    if name == "result" and row.action not in TRAFFIC_ACTIONS:
        # A node change either worked or did not: the model's and the kernel's
        # error messages are not the same words ("error: …").
        return value.split(":", 1)[0]
    return value


def compare_step(model: StepResult | None, lab: StepResult | None) -> StepComparison:
    known = model or lab
    assert known is not None
    if model is None or lab is None:
        side = "model" if model is None else "lab"
        missing = Difference("step", "" if model is None else "ran", "" if lab is None else "ran")
        return StepComparison(
            known.index, f"{known.action} (no {side} row)", model, lab, (missing,)
        )
    names = TRAFFIC_FIELDS if model.action in TRAFFIC_ACTIONS else ("result",)
    differences = tuple(
        Difference(name, _value(model, name), _value(lab, name))
        for name in names
        if _value(model, name) != _value(lab, name)
    )
    return StepComparison(model.index, model.action, model, lab, differences)


def compare(model: list[StepResult], lab: list[StepResult]) -> list[StepComparison]:
    """The join on the step index (a step either side lacks is a disagreement)."""
    by_model = {r.index: r for r in model}
    by_lab = {r.index: r for r in lab}
    return [
        compare_step(by_model.get(i), by_lab.get(i))
        for i in sorted(by_model.keys() | by_lab.keys())
    ]


def model_scenario(
    scenario: Scenario, kernel: str, with_rules: bool, overrides: dict[str, bool] | None = None
) -> Scenario:
    """The scenario as the lab ran it: on the lab's kernel, with or without
    kube-proxy's iptables rules, with the features an era module changed."""
    cluster = scenario.cluster.model_copy(update={"kernel": kernel})
    if overrides:
        merged = {**cluster.kernel_overrides, **overrides}
        cluster = cluster.model_copy(update={"kernel_overrides": merged})
    if not with_rules:
        # No rules at all: nothing drops INVALID packets, nothing masquerades.
        cluster = cluster.model_copy(
            update={"rules": IpvsRules(drop_invalid=False, masquerade_all=False)}
        )
    return scenario.model_copy(update={"cluster": cluster})


def model_steps(
    scenario: Scenario, kernel: str, with_rules: bool, overrides: dict[str, bool] | None = None
) -> list[StepResult]:
    return run_scenario(model_scenario(scenario, kernel, with_rules, overrides)).steps
