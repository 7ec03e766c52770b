"""Times the scenario loader on a typical scenario and on the worst files it accepts.

Run: ``.venv/bin/python benchmarks/bench_scenario_load.py``. Prints figures;
asserts nothing (timings depend on the machine).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ipvslab.scenario import ScenarioError, load_model_text
from ipvslab.scenario.yaml_source import MAX_BYTES


class Client(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    node: str
    rate: float = Field(ge=0)
    close: Literal["server-first", "client-first"] = "server-first"


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    clients: list[Client]
    values: list[int] = []


def typical() -> str:
    clients = "".join(
        f"  - name: loadgen-{i}\n    node: node-{i % 3}\n    rate: {100 * i}\n" for i in range(50)
    )
    return "name: rollout\nclients:\n" + clients


def tiny_values() -> str:
    """Two million one-digit integers: the most YAML values under the size limit."""
    count = (MAX_BYTES - 40) // 2
    return "name: worst\nclients: []\nvalues: [" + "0," * (count - 1) + "0]\n"


def bad_clients() -> str:
    """Every client wrong: hundreds of thousands of validation errors to locate."""
    line = "  - {name: c, node: n, rate: fast}\n"
    return "name: worst\nclients:\n" + line * ((MAX_BYTES - 40) // len(line))


def measure(label: str, text: str, repeat: int = 1) -> None:
    started = time.perf_counter()
    outcome = "loaded"
    for _ in range(repeat):
        try:
            load_model_text(text, "bench.yaml", Scenario)
        except ScenarioError as err:
            outcome = f"refused: {len(err.problems)} problems listed, {err.omitted} more"
    elapsed = (time.perf_counter() - started) / repeat
    size = len(text.encode()) / 1024
    print(f"{label:<34} {size:>8.0f} KiB {elapsed * 1000:>10.1f} ms  {outcome}")


def main() -> None:
    print(f"python {sys.version.split()[0]}, {Path(__file__).name}")
    measure("typical scenario (50 clients)", typical(), repeat=50)
    measure("4 MiB of one-digit values", tiny_values())
    measure("4 MiB of clients, all invalid", bad_clients())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
