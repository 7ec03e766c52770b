"""Probe steps: a scenario's script steps as the guest runner's commands.

Pure: a step in, a JSON-ready dict out. Times become seconds; names become the
lab node's (the model's) client and service names; a pod stays an index among
the service's live pods, oldest first, which the runner resolves as the model's
``find_pod()`` does.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from ipvslab.lab.node import LabNode, LabSetupError
from ipvslab.scenario.model import Connect, Scenario, Step, UdpRequest

SECOND_US = 1_000_000
# A connect that nothing answers gives up after this long at most (the client's
# own SYN schedule may end it sooner): it keeps one probe from holding the VM.
CONNECT_GIVE_UP_S = 30.0
# Steps the lab does not carry out yet, and why.
UNSUPPORTED = {
    "set_ready": "readiness is kube-proxy's business; the lab runs no kube-proxy",
}


def _client(node: LabNode, name: str, where: str) -> str:
    names = [c.name for c in node.clients]
    if name in names:
        return name
    replicas = [c for c in names if c.rsplit("-", 1)[0] == name]
    if replicas:
        return replicas[0]
    raise LabSetupError(f"{where}.client: no client {name!r} (clients: {', '.join(names)})")


def _service_of(scenario: Scenario, client: str, named: str | None) -> str:
    if named is not None:
        return named
    base = client.rsplit("-", 1)[0]
    for spec in scenario.clients:
        if spec.name in (client, base):
            return spec.service
    raise LabSetupError(f"no client spec for {client!r}")


def _traffic(
    scenario: Scenario, node: LabNode, target: Connect | UdpRequest, where: str
) -> dict[str, Any]:
    """Who sends, to which Service, from which port (0: the kernel picks)."""
    client = _client(node, target.client, where)
    return {
        "client": client,
        "service": _service_of(scenario, client, target.service),
        "port": target.port or 0,
    }


def probe(scenario: Scenario, node: LabNode, index: int, step: Step) -> dict[str, Any]:
    """One script step as a runner command."""
    where = f"script[{index}]"
    action = step.action
    if action in UNSUPPORTED:
        raise LabSetupError(f"{where}.{action}: not run in the lab: {UNSUPPORTED[action]}")
    out: dict[str, Any] = {"action": action}
    if step.at is not None:
        out["at"] = step.at / SECOND_US
    if step.connect is not None:
        out.update(_traffic(scenario, node, step.connect, f"{where}.connect"))
        out.update(
            close=str(step.connect.close),
            hold=step.connect.hold / SECOND_US,
            timeout=CONNECT_GIVE_UP_S,
        )
    elif step.release is not None:
        out.update(
            client=_client(node, step.release.client, f"{where}.release"),
            port=step.release.port,
            close=str(step.release.close),
        )
    elif step.udp is not None:
        out.update(_traffic(scenario, node, step.udp, f"{where}.udp"))
        out.update(
            tries=step.udp.tries,
            timeout=step.udp.timeout / SECOND_US,
        )
    elif step.wait is not None:
        out["seconds"] = step.wait / SECOND_US
    elif step.set_weight is not None:
        ref = step.set_weight
        out.update(service=ref.service, pod=ref.pod, weight=ref.weight)
    elif step.delete_real_server is not None:
        out.update(service=step.delete_real_server.service, pod=step.delete_real_server.pod)
    elif step.kill_pod is not None:
        out.update(service=step.kill_pod.service, pod=step.kill_pod.pod)
    elif step.add_real_server is not None:
        add = step.add_real_server
        host, _, port_text = add.address.partition(":")
        try:
            ip = str(IPv4Address(host))
            port = int(port_text) if port_text else None
        except ValueError:
            raise LabSetupError(
                f"{where}.add_real_server.address: {add.address!r} is not ip or ip:port"
            ) from None
        target = next((s.target_port for s in node.services if s.name == add.service), None)
        if target is None:
            raise LabSetupError(f"{where}.add_real_server.service: no service {add.service!r}")
        out.update(service=add.service, ip=ip, port=port or target, weight=add.weight)
    elif step.sysctl is not None:
        name = step.sysctl.name.replace("/", ".")
        if not name.startswith("net.ipv4.vs."):
            name = "net.ipv4.vs." + name
        out.update(name=name, value=step.sysctl.value)
    elif step.client_sysctl is not None:
        change = step.client_sysctl
        name = change.name.replace("/", ".")
        if not name.startswith("net.ipv4."):
            name = "net.ipv4." + name
        out.update(
            client=_client(node, change.client, f"{where}.client_sysctl"),
            name=name,
            value=change.value,
        )
    return out


def probes(scenario: Scenario, node: LabNode) -> list[dict[str, Any]]:
    """The scenario's whole script as runner commands (the first step it cannot
    run is reported, naming the step)."""
    return [probe(scenario, node, i, step) for i, step in enumerate(scenario.script)]
