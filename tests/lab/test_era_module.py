"""The era module's pure parts: packages, command lines, the patch, the model's
override. Building and booting it is in test_on_kernel.py (IPVSLAB_LAB_VM=1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from ipvslab.cli.main import app
from ipvslab.kernel.features import Feature
from ipvslab.kernel.presets import list_presets, resolve_kernel
from ipvslab.lab import compare, era_module
from ipvslab.lab.era_module import ERAS, DebianKernel, EraModuleError
from ipvslab.lab.kernel_image import KernelImage
from ipvslab.scenario import ScenarioError, load_model
from ipvslab.scenario.model import Scenario

DROP = ERAS["drop"]
CORE = Path("net/netfilter/ipvs/ip_vs_core.c")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lab" / "era-drop.yaml"


def _pre_image(patch: str) -> str:
    """A small ip_vs_core.c stand-in: the lines each hunk expects to find (its
    context and removed lines), with unrelated lines between the hunks."""
    out: list[str] = []
    for line in patch.splitlines()[2:]:
        if line.startswith("@@"):
            out += ["/* unrelated */"] * 5
        elif line.startswith((" ", "-")):
            out.append(line[1:])
        elif line == "":
            out.append("")
    return "\n".join(out) + "\n"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    if shutil.which("patch") is None:
        pytest.skip("patch(1) is not installed")
    (tmp_path / CORE).parent.mkdir(parents=True)
    (tmp_path / CORE).write_text(_pre_image(DROP.patch_text()))
    return tmp_path


def test_the_drop_patch_applies_and_restores_the_pre_5_9_drop(source: Path) -> None:
    era_module.apply_patch(DROP, source)
    patched = (source / CORE).read_text()
    # f0a5e4d7a594 cleared the old entry's NFCT flag on a reschedule; the era keeps it.
    assert "cp->flags &= ~IP_VS_CONN_F_NFCT" not in patched
    # Both reuse branches ask "any conntrack on an NFCT entry", not "confirmed conntrack".
    assert "ip_vs_conn_uses_old_conntrack" not in patched
    assert patched.count("old_ct = ipvslab_era_uses_conntrack(cp, skb);") == 2
    assert "nf_ct_is_confirmed" not in patched
    assert "MODULE_INFO(ipvslab_era" in patched and "f0a5e4d7a594" in patched


def test_a_source_the_patch_does_not_fit_is_refused_and_left_as_it_was(source: Path) -> None:
    era_module.apply_patch(DROP, source)
    once = (source / CORE).read_text()
    with pytest.raises(EraModuleError, match=r"does not apply to .*net/netfilter/ipvs"):
        era_module.apply_patch(DROP, source)
    assert (source / CORE).read_text() == once


def test_the_patch_touches_only_ip_vs_core_c() -> None:
    files = [line for line in DROP.patch_text().splitlines() if line.startswith(("---", "+++"))]
    assert files == [f"--- a/{CORE}", f"+++ b/{CORE}"]


def test_the_era_says_which_commits_it_reverts_and_keeps() -> None:
    text = DROP.describe()
    assert "reverts: f0a5e4d7a594" in text
    assert "04231e52d355" in text and "c95c07836fa4" in text


@pytest.mark.parametrize(
    ("release", "common", "series"),
    [
        ("6.1.0-57-amd64", "6.1.0-57-common", "6.1"),
        ("6.1.0-57-cloud-amd64", "6.1.0-57-common", "6.1"),
        ("6.12.48-1-rt-arm64", "6.12.48-1-common", "6.12"),
    ],
)
def test_debian_packages_at_the_booted_kernels_version(
    release: str, common: str, series: str
) -> None:
    kernel = DebianKernel(release, "6.1.192-3")
    assert kernel.packages() == [
        f"linux-source-{series}=6.1.192-3",
        f"linux-headers-{release}=6.1.192-3",
        f"linux-headers-{common}=6.1.192-3",
        f"linux-kbuild-{series}=6.1.192-3",
    ]
    assert era_module.download_command(kernel)[:2] == ["apt-get", "download"]


@pytest.mark.parametrize("release", ["6.1.0-57", "3.10.0-957.el7.x86_64", "6.1"])
def test_a_release_that_is_not_debians_is_refused_by_name(release: str) -> None:
    with pytest.raises(EraModuleError, match=release.replace(".", r"\.")):
        DebianKernel(release, "1").packages()


def test_the_package_version_comes_from_the_cached_image_deb(tmp_path: Path) -> None:
    (tmp_path / "linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb").write_bytes(b"")
    image = KernelImage("6.1.0-57-amd64", tmp_path / "x", tmp_path / "6.1.0-57-amd64")
    assert era_module.debian_kernel(image) == DebianKernel("6.1.0-57-amd64", "6.1.192-3")


def test_apt_cache_show_version_is_the_first_listed() -> None:
    shown = "Package: linux-image-6.1.0-57-amd64\nVersion: 6.1.192-3\n\nVersion: 6.1.192-2\n"
    assert era_module.version_of(shown) == "6.1.192-3"
    assert era_module.version_of("Package: x\n") is None


def test_build_and_patch_command_lines(tmp_path: Path) -> None:
    headers, ipvs = tmp_path / "h", tmp_path / "src" / "net" / "netfilter" / "ipvs"
    assert era_module.build_command(headers, ipvs, 2) == [
        "make",
        "-C",
        str(headers),
        f"M={ipvs}",
        "-j2",
        "modules",
    ]
    dry = era_module.patch_command(tmp_path, dry_run=True)
    assert dry[:2] == ["patch", "-p1"] and "--dry-run" in dry and "--forward" in dry
    assert "--dry-run" not in era_module.patch_command(tmp_path, dry_run=False)


def _connects(overrides: dict[str, bool] | None) -> list[tuple[str, int, int]]:
    scenario = load_model(EXAMPLE, Scenario)
    steps = compare.model_steps(scenario, "6.1.0-57-amd64", True, overrides)
    return [(s.pod, s.connect_us, s.syn_retransmits) for s in steps if s.action == "connect"]


def _drop_overrides() -> dict[str, bool]:
    return {
        **dict.fromkeys(DROP.features_on, True),
        **dict.fromkeys(DROP.features_off, False),
    }


def test_the_model_with_the_drop_era_delays_a_reused_ports_first_syn_by_1s() -> None:
    stock = _connects(None)
    era = _connects(_drop_overrides())
    # Steps 3 and 5 reuse a TIME_WAIT entry in mode 1 with conntrack on.
    for reused in (1, 3):
        assert stock[reused][2] == 0 and stock[reused][1] < 100_000
        assert era[reused][2] == 1 and 1_000_000 <= era[reused][1] < 1_100_000
        # After the drop the retransmitted SYN is scheduled afresh, as on 6.1.
        assert era[reused][0] == stock[reused][0]
    # Fresh ports and mode 0 reuse are the same in both.
    for same in (0, 2, 4, 5):
        assert era[same] == stock[same]


def test_the_override_leaves_the_presets_as_they_are() -> None:
    before = {p.name: p.features for p in list_presets()}
    _connects(_drop_overrides())
    assert {p.name: p.features for p in list_presets()} == before
    assert resolve_kernel("debian-12").features.has(Feature.UNCONFIRMED_CONNTRACK_REUSE)


def test_an_unknown_feature_override_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        EXAMPLE.read_text().replace(
            '  kernel: "6.1"\n', '  kernel: "6.1"\n  kernel_overrides: {first_syn_dorp: true}\n'
        )
    )
    with pytest.raises(ScenarioError) as err:
        load_model(path, Scenario)
    assert "kernel_overrides" in str(err.value) and "first_syn_dorp" in str(err.value)


@given(st.dictionaries(st.sampled_from([f.value for f in Feature]), st.booleans()))
def test_overrides_set_exactly_the_named_features(overrides: dict[str, bool]) -> None:
    base = resolve_kernel("6.1.0-57-amd64").features
    changed = base.overridden(overrides)
    for feature in Feature:
        expected = overrides.get(feature.value, base.has(feature))
        assert changed.has(feature) is expected


runner = CliRunner()


def test_an_unknown_era_exits_2_naming_the_known_ones() -> None:
    result = runner.invoke(app, ["lab", "run", str(EXAMPLE), "--era", "ancient", "--host"])
    assert result.exit_code == 2
    assert "unknown era 'ancient'" in result.output and "drop" in result.output
    assert "Traceback" not in result.output


def test_an_era_needs_a_vm() -> None:
    result = runner.invoke(app, ["lab", "compare", str(EXAMPLE), "--era", "drop", "--host"])
    assert result.exit_code == 2
    assert "--era needs a VM" in result.output


def test_the_fingerprint_tells_the_drop_era_from_the_stock_kernel() -> None:
    from ipvslab.lab import fingerprint

    scenario = fingerprint.probe_scenario()
    predicted = fingerprint.predictions(scenario, True)
    label, steps, features = fingerprint.era_candidate(
        scenario, "6.1.0-57-amd64", _drop_overrides(), "6.1.0-57-amd64 + era drop", True
    )
    predicted[label] = steps
    verdict = fingerprint.decide(steps, predicted, {label: features})
    assert label in verdict.matches and "debian-12" not in verdict.matches
    assert verdict.decided["unconfirmed_conntrack_reuse"] is False
    assert verdict.decided["first_syn_drop"] is True


def test_era_module_without_a_kernel_is_said_loudly_with_exit_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lab", "era-module", "drop", "--vmlinuz", str(tmp_path / "no")])
    assert result.exit_code == 3
    assert "LAB UNAVAILABLE" in result.output and "Traceback" not in result.output


def test_era_module_of_an_unknown_era_exits_2() -> None:
    result = runner.invoke(app, ["lab", "era-module", "1999"])
    assert result.exit_code == 2
    assert "unknown era '1999'" in result.output


def test_a_build_that_fails_names_the_step_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boot = tmp_path / "6.1.0-57-amd64" / "boot"
    boot.mkdir(parents=True)
    (boot / "vmlinuz-6.1.0-57-amd64").write_bytes(b"")
    (tmp_path / "linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb").write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # No registry here: apt-get is made to fail as it would without network.
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "apt-get"
    fake.write_text(
        "#!/bin/sh\necho 'E: Unable to locate package linux-source-6.1' >&2\nexit 100\n"
    )
    fake.chmod(0o755)
    result = runner.invoke(
        app, ["lab", "era-module", "--vmlinuz", str(boot / "vmlinuz-6.1.0-57-amd64")]
    )
    assert result.exit_code == 3, result.output
    assert "apt-get download linux-source-6.1=6.1.192-3" in result.output
    assert "Unable to locate package" in result.output and "Traceback" not in result.output
