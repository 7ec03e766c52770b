"""A sweep file expanded onto its base scenario, and every way it can be wrong.

What a user writes is a grid or a list of dotted scenario fields; what they must get
is one run per combination in a predictable order, each run's scenario changed where
the key says, and any mistake reported before anything runs, at the line and column
of the sweep file (or of the base scenario) that holds it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvslab.scenario import ScenarioError
from ipvslab.sweep.expand import MAX_RUNS, expand, swept_keys

from .support import BASE, load, runs


def problems(tmp_path: Path, sweep: str, base: str | None = BASE) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        runs(tmp_path, sweep, base)
    return [str(p) for p in caught.value.problems]


def test_grid_runs_every_combination_first_key_slowest_seeds_innermost(tmp_path: Path) -> None:
    got = runs(
        tmp_path,
        """
        base: base.yaml
        grid:
          cluster.kernel: ["4.19", "5.10"]
          clients.0.load.rate: [2, 8, 32]
        seeds: 2
        """,
    )
    assert len(got) == 2 * 3 * 2
    expected = [
        {"cluster.kernel": k, "clients.0.load.rate": r, "seed": s}
        for k, r, s in itertools.product(["4.19", "5.10"], [2, 8, 32], [1, 2])
    ]
    assert [run.parameters for run in got] == expected
    assert [run.index for run in got] == list(range(12))
    for run in got:
        assert run.scenario.cluster.kernel == run.parameters["cluster.kernel"]
        assert run.scenario.clients[0].load.rate == run.parameters["clients.0.load.rate"]  # type: ignore[union-attr]
        assert run.scenario.seed == run.parameters["seed"]
        # What the grid does not name stays as the base scenario has it.
        assert run.scenario.clients[0].sysctls.ip_local_port_range == (40000, 40039)
    assert len({run.scenario_hash for run in got}) == 12


def test_sysctl_names_with_dots_list_indexes_and_fields_the_base_left_out(tmp_path: Path) -> None:
    got = runs(
        tmp_path,
        """
        base: base.yaml
        set:
          duration: 5s
          cluster.kube_proxy.tcp_timeout: 900s
        list:
          - cluster.sysctls.net.ipv4.vs.conntrack: 0
            services.1.deployment.max_surge: 1
          - clients.0.sysctls.ip_local_port_range: "32768 60999"
            cluster.dataplane: iptables
        seeds: [7]
        """,
    )
    first, second = (run.scenario for run in got)
    assert first.cluster.sysctls == {"net.ipv4.vs.conn_reuse_mode": 1, "net.ipv4.vs.conntrack": 0}
    assert first.services[1].deployment.max_surge == 1
    assert first.services[0].deployment.max_surge == "25%"
    assert second.clients[0].sysctls.ip_local_port_range == (32768, 60999)
    assert second.cluster.dataplane == "iptables"
    for scenario in (first, second):
        assert scenario.duration == 5_000_000
        assert scenario.cluster.kube_proxy.tcp_timeout == 900_000_000
        assert scenario.seed == 7
    # A list's columns are every key any run names; a run that does not name one
    # keeps the base scenario's value (no value in its column).
    assert got[1].parameters.get("cluster.sysctls.net.ipv4.vs.conntrack") is None
    sweep = load(tmp_path, (tmp_path / "sweep.yaml").read_text())
    assert swept_keys(sweep) == [
        "cluster.sysctls.net.ipv4.vs.conntrack",
        "services.1.deployment.max_surge",
        "clients.0.sysctls.ip_local_port_range",
        "cluster.dataplane",
        "seed",
    ]


def test_the_same_scenario_spelt_twice_is_one_hash_and_a_seed_is_another(tmp_path: Path) -> None:
    got = runs(
        tmp_path,
        """
        base: base.yaml
        grid:
          duration: ["120s", "2m", 120]
        seeds: [1, 2]
        """,
    )
    hashes = [run.scenario_hash for run in got]
    assert hashes[0] == hashes[2] == hashes[4]
    assert hashes[1] == hashes[3] == hashes[5]
    assert hashes[0] != hashes[1]


def test_an_inline_base_and_a_seeds_only_sweep(tmp_path: Path) -> None:
    inline = "base:\n" + "".join(f"  {line}\n" for line in BASE.splitlines()) + "seeds: 3\n"
    got = runs(tmp_path, inline, base=None)
    assert [run.parameters for run in got] == [{"seed": 1}, {"seed": 2}, {"seed": 3}]


def test_an_unknown_field_is_named_at_its_key_with_the_field_meant(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        base: base.yaml
        grid:
          cluster.kernel: ["4.19"]
          cluster.kube_proxy.verison: [v1.22.0]
        """,
    )
    assert found == [
        f"{tmp_path / 'sweep.yaml'}:4:3: grid['cluster.kube_proxy.verison']: expected a field"
        " of cluster.kube_proxy (did you mean 'version'?), got 'verison'"
    ]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("clients.2.load.rate", "expected an index below 1 (clients has 1 entry in the base"),
        ("clients.first.load.rate", "expected a list index (0, 1, …) after clients, got 'first'"),
        ("seed.value", "expected nothing after seed (it is a single value), got 'value'"),
        ("cluster..kernel", "expected a dotted path like clients.0.load.rate"),
        ("cluster.nodes.0.kernel", "expected a list at cluster.nodes in the base scenario"),
    ],
)
def test_a_path_the_base_scenario_cannot_take(tmp_path: Path, key: str, message: str) -> None:
    found = problems(tmp_path, f'base: base.yaml\ngrid:\n  "{key}": [1]\n')
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'sweep.yaml'}:3:3: ")
    assert message in found[0]


def test_a_bad_value_is_reported_once_at_its_line_and_column(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        base: base.yaml
        grid:
          cluster.kernel: ["4.19", "5.10"]
          clients.0.load.rate:
            - 10
            - -3
        seeds: 3
        """,
    )
    # Six runs carry the -3; the user sees it once, where it is written.
    assert found == [
        f"{tmp_path / 'sweep.yaml'}:6:7: grid['clients.0.load.rate'][1]: expected a number"
        " > 0 and <= 10000000, got -3"
    ]


def test_an_unquoted_kernel_version_is_read_as_a_number_and_said_so(tmp_path: Path) -> None:
    found = problems(tmp_path, "base: base.yaml\ngrid:\n  cluster.kernel: [4.19, 5.10]\n")
    assert len(found) == 2
    assert found[1].startswith(f"{tmp_path / 'sweep.yaml'}:3:26: grid['cluster.kernel'][1]: ")
    assert "YAML reads '5.10' unquoted as a number: quote it" in found[1]


def test_what_only_the_cluster_layout_finds_is_found_before_any_run(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        base: base.yaml
        grid:
          clients.0.load.rate: [1, 2]
          cluster.kernel:
            - "5.10"
            - ubuntu-20.4
        """,
    )
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'sweep.yaml'}:6:7: grid['cluster.kernel'][1]: ")
    assert "not a kernel preset" in found[0]


def test_a_change_that_breaks_a_check_across_fields_is_placed_at_the_change(
    tmp_path: Path,
) -> None:
    found = problems(
        tmp_path,
        """\
        base: base.yaml
        list:
          - clients.0.load.rate: 3
          - clients.0.service: cache
        """,
    )
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'sweep.yaml'}:4:24: list[1]['clients.0.service']")
    assert "client 'c' names service 'cache'; services are web, api" in found[0]


def test_the_base_scenario_s_own_problems_name_its_file(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "base: base.yaml\nseeds: 2\n",
        base=BASE.replace("rate: 1", "rate: fast"),
    )
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'base.yaml'}:15:30: ")
    assert "clients[0].load.rate" in found[0]


def test_a_missing_base_file_is_named_where_the_sweep_names_it(tmp_path: Path) -> None:
    found = problems(tmp_path, "seeds: 2\nbase: nowhere.yaml\n", base=None)
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'sweep.yaml'}:2:7: base: expected a scenario file")
    assert str(tmp_path / "nowhere.yaml") in found[0]
    assert found[0].endswith("got no such file")


def test_an_inline_base_s_problems_are_placed_in_the_sweep_file(tmp_path: Path) -> None:
    inline = "base:\n" + "".join(f"  {line}\n" for line in BASE.splitlines()) + "seeds: 3\n"
    found = problems(tmp_path, inline.replace("replicas: 3", "replicas: many"), base=None)
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'sweep.yaml'}:12:")
    assert "base.services[1].deployment.replicas" in found[0]


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("base: base.yaml\n", "a sweep needs a grid, a list of runs or seeds"),
        (
            "base: base.yaml\ngrid: {seed: [1]}\nlist: [{seed: 2}]\n",
            "a grid or a list of runs, not both",
        ),
        ("base: base.yaml\ngrid: {seed: [1, 2]}\nseeds: 2\n", "seeds or a swept seed field"),
        ("base: base.yaml\ngrid: {seed: []}\n", "grid field 'seed' has no values"),
        ("base: base.yaml\nseeds: 0\n", "expected a number of seeds from 1 to 10,000"),
        ("base: base.yaml\nseeds: [3, 3]\n", "each seed once"),
        ("base: base.yaml\ngird: {seed: [1]}\n", "did you mean 'grid'?"),
    ],
)
def test_a_sweep_file_that_is_not_a_sweep(tmp_path: Path, sweep: str, message: str) -> None:
    found = problems(tmp_path, sweep)
    assert any(message in line for line in found), found
    assert all(line.startswith(f"{tmp_path / 'sweep.yaml'}:") for line in found)


def test_a_grid_too_large_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    values = ", ".join(str(n) for n in range(1, 401))
    found = problems(
        tmp_path,
        f"base: base.yaml\ngrid:\n  duration: [{values}]\n  clients.0.load.rate: [{values}]\n",
    )
    assert found == [
        f"{tmp_path / 'sweep.yaml'}:2:1: grid: expected at most {MAX_RUNS:,} runs,"
        " got 160,000 (400 x 400)"
    ]


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    seeds=st.integers(1, 3),
)
def test_runs_are_the_product_in_order(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], seeds: int
) -> None:
    folder = tmp_path_factory.mktemp("grid")
    keys = ["clients.0.load.rate", "services.0.deployment.replicas", "duration"][: len(sizes)]
    axes = [[n + 1 for n in range(size)] for size in sizes]
    grid = "".join(f"  {key}: {values}\n" for key, values in zip(keys, axes, strict=True))
    got = runs(folder, f"base: base.yaml\ngrid:\n{grid}seeds: {seeds}\n")
    combos = list(itertools.product(*axes, range(1, seeds + 1)))
    assert len(got) == len(combos)
    for run, combo in zip(got, combos, strict=True):
        assert run.parameters == {**dict(zip(keys, combo[:-1], strict=True)), "seed": combo[-1]}
    # Every combination is a different scenario.
    assert len({run.scenario_hash for run in got}) == len(got)


def test_the_example_sweeps_expand_cleanly() -> None:
    from ipvslab.sweep.spec import load_sweep

    examples = sorted((Path(__file__).resolve().parents[2] / "examples" / "sweeps").glob("*.yaml"))
    assert examples
    for path in examples:
        sweep = load_sweep(path)
        assert sweep.name == path.stem
        got = expand(sweep)
        assert len(got) == len({run.scenario_hash for run in got}) > 1
