"""The "what ran" block of a report: scenario, kernel preset, kube-proxy profile,
sysctls in effect and the ipvslab version, from the ``setup`` object a run writes
(summary.json's ``setup``, or a reproduce run's run.json)."""

from __future__ import annotations

from typing import Any

import yaml

from ipvslab.report.page import Facts

NOT_RECORDED = (
    "not recorded: this folder was written by an ipvslab that did not record its setup;"
    " run it again to have it here"
)


def _kernel(node: Any) -> str:
    if not isinstance(node, dict):
        return str(node)
    preset = node.get("preset")
    version = node.get("kernel_version", "?")
    kernel = node.get("kernel", "?")
    return f"{kernel} (preset {preset}, {version})" if preset else f"{kernel} (mainline {version})"


def _kube_proxy(profile: Any) -> str:
    if not isinstance(profile, dict):
        return str(profile)
    version = profile.get("version", "?")
    condition = profile.get("tcp_delete", "?")
    details = [
        "deletes a terminating server at once (no graceful termination)"
        if condition == "immediate"
        else f"deletes a weight-0 TCP server when {condition}",
        "UDP servers at once" if profile.get("udp_immediate") else "UDP servers drained",
    ]
    if profile.get("timeout_flags"):
        details.append("--ipvs-*-timeout flags")
    if profile.get("terminating_fallback"):
        details.append("serving-terminating fallback")
    return f"{version}: {', '.join(details)}"


def _sysctls(values: Any) -> str:
    if not isinstance(values, dict):
        return str(values)
    return " ".join(f"{k}={v}" for k, v in values.items())


def config_label(setup: dict[str, Any] | None) -> str:
    """A short name of the configuration: kernels, kube-proxy, dataplane."""
    if not setup:
        return "this run"
    nodes = setup.get("nodes")
    kernels = (
        sorted({str(n.get("kernel", "?")) for n in nodes.values() if isinstance(n, dict)})
        if isinstance(nodes, dict)
        else []
    )
    profile = setup.get("kube_proxy")
    version = profile.get("version", "?") if isinstance(profile, dict) else "?"
    return f"{'/'.join(kernels) or '?'}, kube-proxy {version}, {setup.get('dataplane', '?')}"


def setup_facts(setup: dict[str, Any] | None, rerun: str = "") -> list[Facts]:
    """The facts, then the scenario as run (folded)."""
    if not setup:
        return [Facts([("setup", NOT_RECORDED), *([("run again", rerun)] if rerun else [])])]
    items: list[tuple[str, str]] = [
        ("ipvslab", str(setup.get("ipvslab_version", "?"))),
        ("dataplane", str(setup.get("dataplane", "?"))),
    ]
    nodes = setup.get("nodes")
    if isinstance(nodes, dict):
        items += [(f"kernel {name}", _kernel(node)) for name, node in nodes.items()]
    items.append(("kube-proxy", _kube_proxy(setup.get("kube_proxy"))))
    sysctls = setup.get("sysctls")
    if isinstance(sysctls, dict):
        items += [(f"net.ipv4.vs {name}", _sysctls(v)) for name, v in sysctls.items()]
    if rerun:
        items.append(("run again", rerun))
    blocks = [Facts(items)]
    spec = setup.get("scenario_spec")
    if isinstance(spec, dict):
        text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
        blocks.append(
            Facts(
                [("scenario", text)],
                folded="the scenario as run (durations in µs)",
            )
        )
    return blocks
