"""deploy/: the collector DaemonSet, validated offline against Kubernetes' own schemas.

`kubernetes-validate` ships the OpenAPI-derived JSON schemas of each Kubernetes release,
so this runs without a cluster or network. Beyond schema validity, the manifest must do
what docs/doctor.md promises: the script of src/ipvslab/doctor/collect.sh, a stock
busybox image, hostPID, read-only host mounts and nothing more privileged than needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "ipvslab-collector.yaml"
SCRIPT = REPO / "src" / "ipvslab" / "doctor" / "collect.sh"
KUBERNETES = ["1.29.0", "1.33.0", "1.35.0"]


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def by_kind(kind: str) -> dict[str, Any]:
    [doc] = [d for d in documents() if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("version", KUBERNETES)
def test_every_document_validates_strictly(version: str) -> None:
    for doc in documents():
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_typo_would_be_caught() -> None:
    daemonset = by_kind("DaemonSet")
    daemonset["spec"]["template"]["spec"]["hostPid"] = True  # not hostPID
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, "1.35.0", strict=True)


def test_the_configmap_holds_the_collector_script_unchanged() -> None:
    assert by_kind("ConfigMap")["data"]["collect.sh"] == SCRIPT.read_text(), (
        "stale: run .venv/bin/python deploy/sync-script.py"
    )


def test_the_daemonset_runs_the_script_with_least_privilege() -> None:
    pod = by_kind("DaemonSet")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True and pod["hostNetwork"] is True
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["image"].startswith("busybox:")
    security = container["securityContext"]
    assert security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["SYS_PTRACE"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["IPVSLAB_ROOT"] == "/host"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name, volume in volumes.items():
        if "hostPath" in volume:
            assert mounts[name]["readOnly"] is True, name
            assert mounts[name]["mountPath"] == "/host" + volume["hostPath"]["path"]
    host_paths = {v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v}
    assert host_paths == {"/proc", "/etc", "/usr/lib"}  # not the whole of /
    assert "sh /scripts/collect.sh /out" in " ".join(container["command"])
