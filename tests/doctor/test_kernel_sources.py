"""Cloud and distro kernel names: /proc/version, /proc/version_signature and vendor trees.

Real strings: Debian prints the stable version after the build number of /proc/version
(``#1 SMP Debian 4.19.289-2``), Ubuntu in /proc/version_signature (``Ubuntu
5.4.0-1103.111-aws 5.4.231``). RHEL 8/9 and Oracle UEK do not say which IPVS fixes
they carry: the doctor says "exposure uncertain" rather than a confident verdict.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvslab.cli.main import app
from ipvslab.doctor.capture import InputKind, capture_from, snapshot_from_capture
from ipvslab.doctor.diagnose import diagnose
from ipvslab.doctor.facts import node_facts
from ipvslab.doctor.finding import FindingKind
from ipvslab.doctor.parsers import (
    DoctorFormat,
    parse_proc_version,
    parse_version_signature,
    sniff_format,
)

NODES = Path(__file__).resolve().parent.parent / "fixtures" / "doctor" / "nodes"
AWS = NODES / "kernel-focal-aws-signature"
BUSTER = NODES / "kernel-buster-proc-version"
RHEL8 = NODES / "kernel-rhel8-vendor"
runner = CliRunner()

DEBIAN_10 = (
    "Linux version 4.19.0-25-amd64 (debian-kernel@lists.debian.org) (gcc version 8.3.0"
    " (Debian 8.3.0-6)) #1 SMP Debian 4.19.289-2 (2023-08-08)\n"
)
DEBIAN_12 = (
    "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14)"
    " 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1"
    " (2024-02-01)\n"
)
UBUNTU = (
    "Linux version 5.4.0-150-generic (buildd@bos03-amd64-012) (gcc version 9.4.0 (Ubuntu"
    " 9.4.0-1ubuntu1~20.04.1)) #167-Ubuntu SMP Mon May 15 17:35:05 UTC 2023\n"
)


def test_proc_version_gives_debians_stable_version_not_the_compilers() -> None:
    buster = parse_proc_version(DEBIAN_10).value
    assert buster is not None
    assert (buster.release, buster.upstream) == ("4.19.0-25-amd64", (4, 19, 289))
    bookworm = parse_proc_version(DEBIAN_12).value
    assert bookworm is not None and bookworm.upstream == (6, 1, 76)
    # Ubuntu's /proc/version has no stable version; the compiler's "(Ubuntu 9.4.0-...)"
    # is not one.
    focal = parse_proc_version(UBUNTU).value
    assert focal is not None and (focal.release, focal.upstream) == ("5.4.0-150-generic", None)


def test_version_signature_names_the_release_and_its_stable_base() -> None:
    aws = parse_version_signature("Ubuntu 5.4.0-1103.111-aws 5.4.231\n").value
    assert aws is not None
    assert (aws.release, aws.upstream) == ("5.4.0-1103-aws", (5, 4, 231))
    generic = parse_version_signature("Ubuntu 5.15.0-91.101-generic 5.15.131\n").value
    assert generic is not None and generic.release == "5.15.0-91-generic"


@pytest.mark.parametrize("text", ["", "Linux version\n", "hello\n", "Linux version x" * 1000])
def test_bad_proc_version_is_one_bounded_issue(text: str) -> None:
    result = parse_proc_version(text)
    assert result.value is None
    [issue] = result.issues
    assert len(issue.message) < 200


def test_both_files_are_recognised_when_pasted() -> None:
    assert sniff_format([DEBIAN_10]) is DoctorFormat.PROC_VERSION
    assert sniff_format(["Ubuntu 5.4.0-150.167-generic 5.4.233\n"]) is (
        DoctorFormat.VERSION_SIGNATURE
    )
    assert sniff_format(["5.4.0-150-generic\n"]) is DoctorFormat.KERNEL_RELEASE


def test_pasted_proc_version_alone_gives_the_release_and_the_stable_version(
    tmp_path: Path,
) -> None:
    pasted = tmp_path / "version.txt"
    pasted.write_text(DEBIAN_10)
    snapshot = snapshot_from_capture(capture_from([str(pasted)]))
    assert snapshot.kernel_release is not None
    assert snapshot.kernel_release.text == "4.19.0-25-amd64"
    facts = node_facts(snapshot)
    assert facts.kernel is not None and facts.kernel.version == (4, 19, 289)
    assert facts.kernel.uncertain is None


def _findings(root: Path) -> set[tuple[FindingKind, str]]:
    diagnosis = diagnose(snapshot_from_capture(capture_from([str(root)])))
    return {(f.kind, f.severity.value) for f in diagnosis.findings}


def test_ubuntu_aws_kernel_is_judged_like_its_generic_twin(tmp_path: Path) -> None:
    # Same node, same sysctls: 5.4.0-1103-aws and 5.4.0-150-generic are both focal 2023
    # builds with 5.4.163's c95c07836fa4; neither may get a WARNING the other does not.
    generic = tmp_path / "generic"
    shutil.copytree(AWS, generic)
    (generic / "uname-r.txt").write_text("5.4.0-150-generic\n")
    (generic / "proc" / "version_signature").write_text("Ubuntu 5.4.0-150.167-generic 5.4.233\n")
    assert _findings(AWS) == _findings(generic)
    without_signature = tmp_path / "aws"
    shutil.copytree(AWS, without_signature)
    (without_signature / "proc" / "version_signature").unlink()
    assert _findings(without_signature) == _findings(AWS)
    facts = node_facts(snapshot_from_capture(capture_from([str(AWS)])))
    assert facts.kernel is not None and facts.kernel.preset is not None
    assert facts.kernel.preset.name == "ubuntu-20.04"
    assert facts.exposure is not None and not facts.exposure.stale_forwarding


def doctor_json(root: Path) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["doctor", "--from", str(root), "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_debian_node_uses_the_stable_version_of_proc_version(tmp_path: Path) -> None:
    code, report = doctor_json(BUSTER)
    assert code == 0, report
    kernel = report["node"]["kernel"]  # type: ignore[index]
    assert kernel["version"] == "4.19.289"
    # 4.19.219 brought c95c07836fa4: with expire_nodest_conn=1 a reused port no longer
    # follows its old entry to a weight-0 pod (4.19 never got the 5.9 removed-server fix).
    assert report["exposure"]["stale_forwarding"] is False  # type: ignore[index]
    # Without /proc/version, 4.19.0-25-amd64 could be 4.19.118 (no fixes) or 4.19.289.
    hidden = tmp_path / "buster"
    shutil.copytree(BUSTER, hidden)
    (hidden / "proc" / "version").unlink()
    code, report = doctor_json(hidden)
    assert code == 3
    assert report["exposure"]["verdict"] == "uncertain"  # type: ignore[index]
    assert "/proc/version" in report["exposure"]["reason"]  # type: ignore[index]
    # No exposure finding on a guess; only the (info) advice to leave IPVS mode.
    ids = [f["id"] for f in report["findings"]]  # type: ignore[attr-defined]
    assert ids == ["ipvs-mode-deprecated"]


def test_rhel8_node_is_exposure_uncertain_not_a_confident_verdict() -> None:
    result = runner.invoke(app, ["doctor", "--from", str(RHEL8)])
    assert result.exit_code == 3, result.output
    out = " ".join(result.output.split())
    assert "exposure uncertain" in out and "vendor" in out and "RHEL 8" in out
    assert "Result: inconclusive" in out
    assert "stale-forwarding-exposure" not in out and "syn-drop-exposure" not in out


def test_a_signature_of_another_boot_is_not_used(tmp_path: Path) -> None:
    root = tmp_path / "node"
    shutil.copytree(AWS, root)
    (root / "uname-r.txt").write_text("5.4.0-1020-aws\n")  # upgraded since the signature
    facts = node_facts(snapshot_from_capture(capture_from([str(root)])))
    assert facts.kernel is not None and facts.kernel.uncertain is not None


def test_layout_paths_of_the_new_inputs() -> None:
    assert InputKind.PROC_VERSION.path == "proc/version"
    assert InputKind.VERSION_SIGNATURE.path == "proc/version_signature"
