"""Fingerprint: which kernel preset does a real kernel behave like?

A fixed probe script (``fingerprint.yaml``) runs once on the kernel. The model
runs the same script once per preset; every preset whose trace agrees with the
kernel's on every step matches. When none does, the nearest are those with the
fewest disagreeing steps, shown with the steps. A feature flag some probe looks
at is decided when the matching (or nearest) presets agree on it; the flags no
probe looks at are reported as those presets have them, and said to be so.

The decision is pure: observed rows and predicted rows in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources

from ipvslab.cluster.script import StepResult
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.presets import get_preset, list_presets, resolve_kernel
from ipvslab.lab.compare import StepComparison, compare, model_steps
from ipvslab.scenario import load_model_text
from ipvslab.scenario.model import Scenario

PROBES = "fingerprint.yaml"
# The flags some step of fingerprint.yaml looks at (its comments say which).
# The others (preestablished_active, reuse_old_conntrack, sctp_new_state_machine)
# are reported as the chosen presets have them, not as observed.
PROBED = frozenset(
    {
        "conn_reuse_mode",
        "first_syn_drop",
        "unconfirmed_conntrack_reuse",
        "close_state_reuse",
        "weight0_reschedule_any_mode",
        "nodest_reschedule",
    }
)


@dataclass(frozen=True)
class Candidate:
    preset: str
    rows: tuple[StepComparison, ...]

    @property
    def disagreements(self) -> tuple[StepComparison, ...]:
        return tuple(r for r in self.rows if not r.agrees)


@dataclass(frozen=True)
class Verdict:
    matches: tuple[str, ...]  # presets that agree on every step
    nearest: tuple[str, ...]  # when nothing matches: the fewest disagreements
    candidates: tuple[Candidate, ...]  # every preset, closest first
    decided: dict[str, bool]  # probed flag -> value, where the chosen presets agree
    undecided: tuple[str, ...]  # probed flags the chosen presets differ on
    unprobed: dict[str, bool]  # the other flags, where the chosen presets agree

    @property
    def chosen(self) -> tuple[str, ...]:
        return self.matches or self.nearest


def probe_scenario() -> Scenario:
    text = resources.files("ipvslab.lab").joinpath(PROBES).read_text()
    return load_model_text(text, PROBES, Scenario)


def flags(features: KernelFeatures) -> dict[str, bool]:
    return {f.name: bool(getattr(features, f.name)) for f in fields(features)}


def _decide_flags(
    presets: tuple[str, ...], extra: Mapping[str, KernelFeatures]
) -> tuple[dict[str, bool], tuple[str, ...], dict[str, bool]]:
    if not presets:
        return {}, (), {}
    sets = [flags(extra[name] if name in extra else get_preset(name).features) for name in presets]
    shared = {k: v for k, v in sets[0].items() if all(s[k] == v for s in sets)}
    decided = {k: v for k, v in shared.items() if k in PROBED}
    undecided = tuple(k for k in sets[0] if k in PROBED and k not in shared)
    unprobed = {k: v for k, v in shared.items() if k not in PROBED}
    return decided, undecided, unprobed


def decide(
    observed: list[StepResult],
    predicted: dict[str, list[StepResult]],
    extra: Mapping[str, KernelFeatures] | None = None,
) -> Verdict:
    """The presets the observed trace matches, or the nearest ones. ``extra``:
    the features of candidates that are no preset (an era module's kernel)."""
    candidates = sorted(
        (Candidate(name, tuple(compare(rows, observed))) for name, rows in predicted.items()),
        key=lambda c: (len(c.disagreements), c.preset),
    )
    matches = tuple(c.preset for c in candidates if not c.disagreements)
    nearest: tuple[str, ...] = ()
    if not matches and candidates:
        fewest = len(candidates[0].disagreements)
        nearest = tuple(c.preset for c in candidates if len(c.disagreements) == fewest)
    decided, undecided, unprobed = _decide_flags(matches or nearest, extra or {})
    return Verdict(matches, nearest, tuple(candidates), decided, undecided, unprobed)


def predictions(scenario: Scenario, with_rules: bool) -> dict[str, list[StepResult]]:
    """The model's trace of the probe script for every preset."""
    return {p.name: model_steps(scenario, p.name, with_rules) for p in list_presets()}


def era_candidate(
    scenario: Scenario, kernel: str, overrides: Mapping[str, bool], label: str, with_rules: bool
) -> tuple[str, list[StepResult], KernelFeatures]:
    """A candidate that is no preset: ``kernel`` with an era module's features
    (its name, the model's trace of the probes, its features)."""
    features = resolve_kernel(kernel).features.overridden(overrides)
    return label, model_steps(scenario, kernel, with_rules, dict(overrides)), features
