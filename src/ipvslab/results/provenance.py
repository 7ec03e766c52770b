"""What a run was: the scenario as run, each node's kernel (text, preset, version),
kube-proxy's version and the behaviour of its IPVS proxier, the sysctls in effect
at the end, and the ipvslab version. Written with a run's output so that a report
can say exactly what to run again."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ipvslab import __version__
from ipvslab.cluster.kube_proxy import kube_proxy_profile, parse_kube_version
from ipvslab.cluster.run import RunResult
from ipvslab.kernel.presets import resolve_kernel


def _node(kernel_text: str) -> dict[str, Any]:
    resolution = resolve_kernel(kernel_text)  # a run only starts with kernels that resolve
    return {
        "kernel": kernel_text,
        "preset": None if resolution.preset is None else resolution.preset.name,
        "kernel_version": ".".join(str(n) for n in resolution.version),
    }


def provenance(run: RunResult) -> dict[str, Any]:
    """The facts a report prints so that the run can be reproduced."""
    scenario = run.scenario
    cluster = scenario.cluster
    version = parse_kube_version(cluster.kube_proxy.version)
    profile = asdict(kube_proxy_profile(version))
    profile["version"] = "v" + ".".join(str(n) for n in version)
    return {
        "ipvslab_version": __version__,
        "dataplane": cluster.dataplane.value,
        "nodes": {name: _node(text) for name, text in run.kernel.items()},
        "kube_proxy": profile,
        "sysctls": run.sysctls,
        "scenario_spec": scenario.model_dump(mode="json"),
    }
