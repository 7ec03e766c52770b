"""What a person (or a controller) does to the cluster: shared by timed events
and script steps, so both change the cluster the same way."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from ipvslab.cluster.client_tcp import parse_port_list
from ipvslab.cluster.proxier import RealServerEvent
from ipvslab.cluster.syn_timing import syn_send_offsets
from ipvslab.kernel.sysctls import SysctlError, Sysctls
from ipvslab.scenario.model import (
    AddRealServer,
    ClientSysctl,
    NodeSysctl,
    PodRef,
    RealServerRef,
    SetReady,
    SetWeight,
)

if TYPE_CHECKING:
    from ipvslab.cluster.cluster import ClientPod, Cluster, Node
    from ipvslab.cluster.pods import Pod


class ActionError(ValueError):
    """An action that cannot be carried out at its time (named and why)."""


def find_pod(cluster: Cluster, ref: PodRef) -> Pod:
    """The service's ``ref.pod``-th pod still alive, oldest first."""
    live = cluster.deployments[ref.service].live_pods()
    if ref.pod >= len(live):
        raise ActionError(
            f"service {ref.service} has {len(live)} live pods; pod {ref.pod} does not exist"
        )
    return live[ref.pod]


def _nodes(cluster: Cluster, name: str | None) -> list[Node]:
    if name is None:
        return cluster.nodes
    found = [n for n in cluster.nodes if n.name == name]
    if not found:
        raise ActionError(f"no node {name!r} (nodes: {', '.join(n.name for n in cluster.nodes)})")
    return found


def find_clients(cluster: Cluster, name: str) -> list[ClientPod]:
    """A client name (all replicas) or one replica ``name-N``."""
    if name in cluster.clients_by_name:
        return cluster.clients_by_name[name]
    for pod in cluster.clients:
        if pod.name == name:
            return [pod]
    known = ", ".join(p.name for p in cluster.clients) or "none"
    raise ActionError(f"no client {name!r} (clients: {known})")


def kill_pod(cluster: Cluster, ref: PodRef) -> Pod:
    pod = find_pod(cluster, ref)
    cluster.deployments[ref.service].kill(pod)
    return pod


def set_ready(cluster: Cluster, ref: SetReady) -> Pod:
    pod = find_pod(cluster, ref)
    cluster.deployments[ref.service].set_ready(pod, ref.ready)
    return pod


def delete_real_server(cluster: Cluster, ref: RealServerRef) -> None:
    """ipvsadm -d on the node(s): the real server of that pod goes at once."""
    pod = find_pod(cluster, ref)
    done = False
    for node in _nodes(cluster, ref.node):
        if node.proxier is None:
            raise ActionError("delete_real_server needs the ipvs dataplane")
        done |= node.proxier.delete_by_hand(ref.service, pod.ip)
    if not done:
        raise ActionError(f"pod {pod.name} has no real server in service {ref.service}")


def set_weight(cluster: Cluster, ref: SetWeight) -> None:
    """ipvsadm -e -w on the node(s)."""
    pod = find_pod(cluster, ref)
    for node in _nodes(cluster, ref.node):
        if node.proxier is None:
            raise ActionError("set_weight needs the ipvs dataplane")
        if not node.proxier.set_weight_by_hand(ref.service, pod.ip, ref.weight):
            raise ActionError(f"pod {pod.name} has no real server in service {ref.service}")


def add_real_server(cluster: Cluster, step: AddRealServer) -> None:
    """ipvsadm -a -r ADDRESS on the node(s) (kube-proxy deletes it at its next sync
    unless an endpoint wants it)."""
    host, _, port_text = step.address.partition(":")
    info = cluster.services[step.service]
    try:
        addr = IPv4Address(host)
        port = int(port_text) if port_text else info.target_port
    except ValueError:
        raise ActionError(
            f"add_real_server.address: {step.address!r} is not ip or ip:port"
        ) from None
    for node in _nodes(cluster, step.node):
        if node.kernel is None or node.proxier is None:
            raise ActionError("add_real_server needs the ipvs dataplane")
        service = node.proxier.virtual[step.service]
        dest = node.kernel.add_dest(service, addr, port, step.weight)
        node.proxier.log.append(
            RealServerEvent(
                cluster.engine.now, node.name, step.service, dest.label, "added by hand"
            )
        )


def node_sysctl(cluster: Cluster, change: NodeSysctl) -> None:
    """sysctl -w net.ipv4.vs.NAME=VALUE on the node(s)."""
    name = change.name.removeprefix("net.ipv4.vs.").removeprefix("net/ipv4/vs/")
    if name not in Sysctls.names():
        raise ActionError(
            f"sysctl: {change.name!r} is not a net.ipv4.vs sysctl the model has"
            f" ({', '.join(Sysctls.names())})"
        )
    for node in _nodes(cluster, change.node):
        if node.kernel is None:
            raise ActionError("net.ipv4.vs sysctls need the ipvs dataplane")
        try:
            node.kernel.sysctls = replace(node.kernel.sysctls, **{name: change.value})
        except SysctlError as err:
            raise ActionError(f"sysctl on {node.name}: {err}") from None


_CLIENT_SYSCTLS = {
    "ip_local_port_range",
    "ip_local_reserved_ports",
    "tcp_tw_reuse",
    "tcp_timestamps",
    "tcp_syn_retries",
    "tcp_max_tw_buckets",
}


def client_sysctl(cluster: Cluster, change: ClientSysctl) -> None:
    """sysctl -w in the client pod's network namespace."""
    name = change.name.removeprefix("net.ipv4.").removeprefix("net/ipv4/")
    if name not in _CLIENT_SYSCTLS:
        raise ActionError(
            f"client_sysctl: {change.name!r} is not one the model has"
            f" ({', '.join(sorted(_CLIENT_SYSCTLS))})"
        )
    value: Any = change.value
    try:
        if name == "ip_local_port_range":
            low, high = str(value).split()
            value = (int(low), int(high))
        elif name == "ip_local_reserved_ports":
            value = parse_port_list(str(value))
        else:
            value = int(value)
        for pod in find_clients(cluster, change.client):
            pod.netns.set_sysctls(replace(pod.netns.sysctls, **{name: value}))
            if name == "tcp_syn_retries":
                pod.syn = syn_send_offsets(pod.kernel_version, pod.netns.sysctls.tcp_syn_retries)
    except (TypeError, ValueError) as err:
        raise ActionError(f"client_sysctl {change.name}={change.value!r}: {err}") from None


def carry_out(cluster: Cluster, action: str, target: Any) -> str:
    """A timed event's or a script step's action on the cluster (the model field's
    name and value); returns the pod it touched, or ""."""
    if action == "rollout":
        cluster.deployments[target.service].rollout()
    elif action == "scale":
        cluster.deployments[target.service].scale(target.replicas)
    elif action == "kill_pod":
        return kill_pod(cluster, target).name
    elif action == "set_ready":
        return set_ready(cluster, target).name
    elif action == "delete_real_server":
        delete_real_server(cluster, target)
    elif action == "set_weight":
        set_weight(cluster, target)
    elif action == "add_real_server":
        add_real_server(cluster, target)
    elif action == "sysctl":
        node_sysctl(cluster, target)
    elif action == "client_sysctl":
        client_sysctl(cluster, target)
    else:
        raise ActionError(f"{action} is not an action on the cluster")
    return ""
