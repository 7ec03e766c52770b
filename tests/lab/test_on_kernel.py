"""The probe corpus on a real kernel under QEMU: model and kernel agree on every step.

Needs virtme-ng, qemu-system-x86, busybox-static and a Debian kernel package
(fetched on first use): a boot takes one to two minutes under emulation, so these
run only when IPVSLAB_LAB_VM=1. A VM that cannot be had (exit 3: package, boot or
runner failure) skips with the reason; a disagreement (exit 1) fails.
"""

from __future__ import annotations

from pathlib import Path

from lab_vm import lab, needs_vm

CORPUS = sorted((Path(__file__).resolve().parents[2] / "examples" / "lab").glob("*.yaml"))

pytestmark = needs_vm


def test_model_and_debian_kernel_agree_on_every_step_of_the_corpus() -> None:
    # One boot runs every script, one node after the other.
    result = lab("compare", *map(str, CORPUS))
    assert result.exit_code == 0, result.output
    assert len(CORPUS) >= 4
    steps = int(result.output.split(" of ")[-1].split()[0])
    assert steps >= 40


def test_without_kube_proxys_rules_conntrack_0_works_on_both_sides() -> None:
    script = next(p for p in CORPUS if p.stem == "conntrack-0")
    result = lab("compare", str(script), "--no-rules")
    assert result.exit_code == 0, result.output


def test_debian_kernel_is_fingerprinted_as_debian_12() -> None:
    result = lab("fingerprint")
    assert result.exit_code == 0, result.output
    assert "its release names preset debian-12: the probes agree" in result.output
