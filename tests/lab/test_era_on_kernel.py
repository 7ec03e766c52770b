"""The drop era module on a real kernel under QEMU (IPVSLAB_LAB_VM=1, as
test_on_kernel.py; .ci/run runs both). The first run downloads 153 MB and builds
the ipvs modules (about 50 s), then boots twice (one to two minutes each).
Exit 3 (no kernel, no module, no VM) skips with the reason; a disagreement fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab_vm import lab, needs_vm

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "lab" / "era-drop.yaml"

pytestmark = needs_vm


def test_the_drop_era_module_drops_a_reused_ports_first_syn_as_the_model_says() -> None:
    # The booted kernel's ip_vs rebuilt with f0a5e4d7a594 reverted (built on first use).
    result = lab("compare", str(SCRIPT), "--era", "drop", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["era"] == "drop" and "unconfirmed_conntrack_reuse off" in report["model"]
    reused = [row["kernel"] for row in report["scripts"][0]["rows"] if row["index"] in (3, 5)]
    for step in reused:
        # Dropped first SYN, retransmitted after the 1 s initial RTO.
        assert step["syn_retransmits"] == 1
        assert step["connect_us"] >= 1_000_000


def test_the_drop_era_module_is_fingerprinted_as_the_drop_era() -> None:
    result = lab("fingerprint", "--era", "drop")
    assert result.exit_code == 0, result.output
    assert "with the drop era module: the probes agree with" in result.output
