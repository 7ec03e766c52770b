"""The probe corpus on a real kernel under QEMU: model and kernel agree on every step.

Needs virtme-ng, qemu-system-x86, busybox-static and a Debian kernel package
(fetched on first use): a boot takes one to two minutes under emulation, so these
run only when IPVSLAB_LAB_VM=1 (.ci/run sets it when it can have a VM).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvslab.cli.main import app

CORPUS = sorted((Path(__file__).resolve().parents[2] / "examples" / "lab").glob("*.yaml"))

pytestmark = pytest.mark.skipif(
    os.environ.get("IPVSLAB_LAB_VM") != "1",
    reason="boots a kernel under QEMU (slow): set IPVSLAB_LAB_VM=1 to run",
)


@pytest.mark.parametrize("script", CORPUS, ids=[p.stem for p in CORPUS])
def test_model_and_debian_kernel_agree_on_every_step(script: Path) -> None:
    result = CliRunner().invoke(app, ["lab", "compare", str(script)])
    assert result.exit_code == 0, result.output
