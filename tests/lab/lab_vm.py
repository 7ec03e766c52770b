"""What the VM tests share: their gate (IPVSLAB_LAB_VM=1) and `ipvslab lab`
invoked so that a kernel, module or VM that cannot be had (exit 3) skips with
the reason while a disagreement (exit 1) fails."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner, Result

from ipvslab.cli.main import app

needs_vm = pytest.mark.skipif(
    os.environ.get("IPVSLAB_LAB_VM") != "1",
    reason="boots a kernel under QEMU (slow): set IPVSLAB_LAB_VM=1 to run",
)


def lab(*args: str) -> Result:
    result = CliRunner().invoke(app, ["lab", *args], env={"COLUMNS": "160"})
    if result.exit_code == 3:
        pytest.skip("LAB UNAVAILABLE: " + " | ".join(result.output.strip().splitlines()[-5:]))
    return result
