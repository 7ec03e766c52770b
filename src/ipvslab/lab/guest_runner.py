"""The guest-side runner: builds a Kubernetes node out of network namespaces and
runs a probe list against the kernel's IPVS, one JSON line per result.

It runs inside the lab VM (or as root on a host whose kernel has IPVS), started
as ``python3 guest_runner.py PLAN.json``, and uses the standard library only, so
that it starts fast under software emulation and needs nothing installed. Every
line it prints for the host starts with ``IPVSLAB `` and holds one JSON object;
anything else on the console (kernel messages) is not its output.

One process does everything: it enters a namespace with setns(2) only to create
a socket or read /proc there (a socket stays in the namespace it was created
in), so the servers, the client sockets and the timing all live in one place and
connect times are measured inside the guest. Namespaces are deleted on the way
out, also after an error or SIGTERM.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

PREFIX = "IPVSLAB "
CLONE_NEWNET = 0x40000000
NODE_NS = "ipvslab-node"
# Pod wiring as Calico does it: the pod's default route points at a link-local
# next hop, which every node-side veth holds (so the node answers its ARP).
GATEWAY = "169.254.1.1"
# struct tcp_info: eight u8 fields, then u32s; tcpi_total_retrans is the 24th u32.
TCP_INFO_TOTAL_RETRANS = 8 + 23 * 4
TCP_INFO_SIZE = 104
SETTLE_S = 0.05  # lets the last ACK of a close pass IPVS before the table is read
READ_LIMIT = 4096


class RunnerError(Exception):
    """A set-up or step command that failed: reported, never a traceback."""


_plan_index = [0]  # the plan of a batch the lines are about


def emit(kind: str, **fields: Any) -> None:
    line = {"kind": kind, "plan": _plan_index[0], **fields}
    sys.stdout.write(PREFIX + json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()


def run(args: list[str], ns: str | None = None, check: bool = True) -> str:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + args
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RunnerError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


_libc = ctypes.CDLL(None, use_errno=True)


class Netns:
    """``with Netns(name):`` runs the block in that network namespace."""

    _home: int | None = None

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Netns:
        if Netns._home is None:
            Netns._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise RunnerError(f"setns {self.name}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        assert Netns._home is not None
        if _libc.setns(Netns._home, CLONE_NEWNET) != 0:
            raise RunnerError(f"setns back: {os.strerror(ctypes.get_errno())}")


def ip_hex(ip: str) -> str:
    return "".join(f"{int(part):02X}" for part in ip.split("."))


def ipvs_rows(client_ip: str, port: int) -> list[str]:
    """The node's /proc/net/ip_vs_conn rows for that client ip:port and the
    client's persistence templates (client port 0)."""
    want = ip_hex(client_ip)
    ports = {f"{port:04X}", "0000"}
    rows = []
    with Netns(NODE_NS), open("/proc/self/net/ip_vs_conn") as table:
        for line in table:
            fields = line.split()
            if len(fields) >= 9 and fields[1] == want and fields[2] in ports:
                rows.append(line.rstrip("\n"))
    return rows


def load_era_module(path: str) -> None:
    """A rebuilt ip_vs.ko (an era module) in place of the stock one: its
    dependencies by modprobe, then insmod. Refused when its vermagic names
    another kernel, or when another ip_vs is already loaded."""
    vermagic = run(["modinfo", "-F", "vermagic", path]).split()
    release = os.uname().release
    if not vermagic or vermagic[0] != release:
        raise RunnerError(f"{path}: vermagic {' '.join(vermagic)!r} is not the booted {release}")
    if not os.path.isdir("/sys/module/ip_vs"):
        depends = [d for d in run(["modinfo", "-F", "depends", path]).strip().split(",") if d]
        if depends:
            run(["modprobe", "-a", *depends])
        run(["insmod", path])
    # A module built out of tree taints the kernel with "O"; the stock ip_vs does not
    # (Debian's modules carry no srcversion to compare instead).
    try:
        with open("/sys/module/ip_vs/taint") as found:
            taint = found.read().strip()
    except OSError as err:
        raise RunnerError(f"ip_vs after insmod {path}: {err}") from None
    if "O" not in taint:
        raise RunnerError(f"the stock ip_vs is loaded, not {path} (taint {taint!r})")


class PodServer:
    """A pod: a TCP and a UDP server on the target port, answering with its name.

    A TCP client sends one byte saying how the connection ends: ``S`` the server
    closes first, ``C`` the client closes first (the server waits for its FIN),
    ``H`` held until the client ends it.
    """

    def __init__(self, name: str, ns: str, port: int) -> None:
        self.name = name
        self.ns = ns
        with Netns(ns):
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind(("0.0.0.0", port))
            self.tcp.listen(128)
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("0.0.0.0", port))
        self.conns: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._answer_udp, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.sendall(self.name.encode() + b"\n")
            style = conn.recv(1)
            if style == b"S":
                conn.close()
                return
            while conn.recv(READ_LIMIT):
                pass
            conn.close()
        except OSError:
            conn.close()

    def _answer_udp(self) -> None:
        while not self.stopped:
            try:
                _, peer = self.udp.recvfrom(READ_LIMIT)
                self.udp.sendto(self.name.encode(), peer)
            except OSError:
                return

    def stop(self) -> None:
        self.stopped = True
        # shutdown() first: it wakes the threads blocked in accept() and
        # recvfrom(); a close() alone leaves the sockets (and so the pod's
        # namespace) alive until they return.
        for sock in [self.tcp, self.udp, *self.conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def errno_name(err: OSError) -> str:
    if isinstance(err, TimeoutError) or err.errno is None:
        return "ETIMEDOUT"
    return errno.errorcode.get(err.errno, f"errno {err.errno}")


def total_retrans(sock: socket.socket) -> int:
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    except OSError:
        return 0
    if len(info) < TCP_INFO_TOTAL_RETRANS + 4:
        return 0
    return int(struct.unpack_from("I", info, TCP_INFO_TOTAL_RETRANS)[0])


class Lab:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.namespaces: list[str] = []
        self.servers: dict[str, PodServer] = {}
        self.live: dict[str, list[dict[str, Any]]] = {}  # service -> pods, oldest first
        self.held: dict[tuple[str, int], socket.socket] = {}
        self.clients = {c["name"]: c for c in plan["clients"]}
        self.services = {s["name"]: s for s in plan["services"]}

    # -- set-up ----------------------------------------------------------------------

    def _netns(self, name: str) -> None:
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _wire(self, ns: str, ip: str, index: int) -> None:
        """A veth from the node to a pod namespace, routed as a CNI would."""
        host_side = f"veth{index}"
        run(
            [
                "ip",
                "-n",
                NODE_NS,
                "link",
                "add",
                host_side,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            ]
        )
        run(["ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        run(["ip", "-n", ns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link"])
        run(["ip", "-n", ns, "route", "add", "default", "via", GATEWAY, "dev", "eth0"])
        run(["ip", "-n", NODE_NS, "link", "set", host_side, "up"])
        run(["ip", "-n", NODE_NS, "addr", "add", f"{GATEWAY}/32", "dev", host_side])
        run(["ip", "-n", NODE_NS, "route", "add", f"{ip}/32", "dev", host_side])

    def set_up(self) -> None:
        if self.plan.get("ip_vs_module"):
            load_era_module(self.plan["ip_vs_module"])
        run(["modprobe", "ip_vs"])
        for module in self.plan.get("modules", []):
            run(["modprobe", module])
        self._netns(NODE_NS)
        run(["ip", "-n", NODE_NS, "link", "add", "kube-ipvs0", "type", "dummy"])
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=NODE_NS)
        for name, value in self.plan["node_sysctls"].items():
            run(["sysctl", "-qw", f"{name}={value}"], ns=NODE_NS)
        if self.plan.get("rules"):
            rules = subprocess.run(
                ["ip", "netns", "exec", NODE_NS, "iptables-restore"],
                input=self.plan["rules"],
                capture_output=True,
                text=True,
                check=False,
            )
            if rules.returncode != 0:
                raise RunnerError(f"iptables-restore: {rules.stderr.strip()[:300]}")
        index = 0
        for client in self.plan["clients"]:
            self._netns(client["name"])
            self._wire(client["name"], client["ip"], index)
            index += 1
        for service in self.plan["services"]:
            run(["ip", "-n", NODE_NS, "addr", "add", f"{service['vip']}/32", "dev", "kube-ipvs0"])
            proto = "-u" if service["protocol"] == "UDP" else "-t"
            add = [
                "ipvsadm",
                "-A",
                proto,
                f"{service['vip']}:{service['port']}",
                "-s",
                service["scheduler"],
            ]
            if service.get("persistence"):
                add += ["-p", str(service["persistence"])]
            run(add, ns=NODE_NS)
            self.live[service["name"]] = []
            for pod in service["pods"]:
                self._netns(pod["name"])
                self._wire(pod["name"], pod["ip"], index)
                index += 1
                self.servers[pod["name"]] = PodServer(
                    pod["name"], pod["name"], service["target_port"]
                )
                self.live[service["name"]].append(pod)
                self._ipvsadm_dest(service, "-a", pod["ip"], pod.get("weight", 1))
        run(["ip", "-n", NODE_NS, "link", "set", "kube-ipvs0", "up"])
        emit("ready", kernel=os.uname().release)

    def _ipvsadm_dest(
        self,
        service: dict[str, Any],
        verb: str,
        ip: str,
        weight: int | None,
        port: int | None = None,
    ) -> None:
        proto = "-u" if service["protocol"] == "UDP" else "-t"
        args = [
            "ipvsadm",
            verb,
            proto,
            f"{service['vip']}:{service['port']}",
            "-r",
            f"{ip}:{port or service['target_port']}",
        ]
        if verb != "-d":
            args += ["-m", "-w", str(weight)]
        run(args, ns=NODE_NS)

    def tear_down(self) -> None:
        for server in self.servers.values():
            server.stop()
        for sock in self.held.values():
            sock.close()
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns], check=False)
        self.namespaces.clear()

    # -- steps -----------------------------------------------------------------------

    def _pod(self, service: str, index: int) -> dict[str, Any]:
        """The service's index-th live pod, oldest first (as the model's find_pod)."""
        live = self.live[service]
        if index >= len(live):
            raise RunnerError(
                f"service {service} has {len(live)} live pods; pod {index} does not exist"
            )
        return live[index]

    def _client_socket(self, client: dict[str, Any], kind: int, port: int) -> socket.socket:
        with Netns(client["name"]):
            sock = socket.socket(socket.AF_INET, kind)
        # As `nc -p` / `curl --local-port`: SO_REUSEADDR, then bind the source port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((client["ip"], port))
        return sock

    def step(self, index: int, step: dict[str, Any]) -> dict[str, Any]:
        action = step["action"]
        row: dict[str, Any] = {"index": index, "action": action, "result": "ok"}
        if action == "connect":
            self._connect(step, row)
        elif action == "release":
            self._release(step, row)
        elif action == "udp":
            self._udp(step, row)
        elif action == "wait":
            time.sleep(step["seconds"])
        elif action in ("set_weight", "delete_real_server"):
            service = self.services[step["service"]]
            pod = self._pod(step["service"], step["pod"])
            verb = "-e" if action == "set_weight" else "-d"
            self._ipvsadm_dest(service, verb, pod["ip"], step.get("weight"))
            row["pod"] = pod["name"]
        elif action == "add_real_server":
            service = self.services[step["service"]]
            self._ipvsadm_dest(service, "-a", step["ip"], step["weight"], step["port"])
        elif action == "kill_pod":
            pod = self._pod(step["service"], step["pod"])
            self.live[step["service"]].remove(pod)
            self.servers.pop(pod["name"]).stop()
            run(["ip", "netns", "del", pod["name"]])
            self.namespaces.remove(pod["name"])
            row["pod"] = pod["name"]
        elif action == "sysctl":
            run(["sysctl", "-qw", f"{step['name']}={step['value']}"], ns=NODE_NS)
        elif action == "client_sysctl":
            run(["sysctl", "-qw", f"{step['name']}={step['value']}"], ns=step["client"])
        else:
            raise RunnerError(f"step {index}: unknown action {action!r}")
        return row

    def _open(
        self, step: dict[str, Any], row: dict[str, Any], kind: int
    ) -> tuple[dict[str, Any], dict[str, Any], socket.socket, int]:
        """The step's client socket, bound, with the entry for its port before."""
        client = self.clients[step["client"]]
        service = self.services[step["service"]]
        sock = self._client_socket(client, kind, step["port"])
        port = sock.getsockname()[1]
        row.update(client=client["name"], client_port=port)
        row["entry_before"] = ipvs_rows(client["ip"], port)
        return client, service, sock, port

    def _connect(self, step: dict[str, Any], row: dict[str, Any]) -> None:
        client, service, sock, port = self._open(step, row, socket.SOCK_STREAM)
        sock.settimeout(step["timeout"])
        start = time.monotonic()
        try:
            sock.connect((service["vip"], service["port"]))
        except OSError as err:
            row["connect_us"] = int((time.monotonic() - start) * 1e6)
            row["result"] = errno_name(err)
            row["syn_retransmits"] = total_retrans(sock)
            sock.close()
            time.sleep(SETTLE_S)
            row["entry_after"] = ipvs_rows(client["ip"], port)
            return
        row["connect_us"] = int((time.monotonic() - start) * 1e6)
        row["syn_retransmits"] = total_retrans(sock)
        row["result"] = "established"
        row["pod"] = self._read_name(sock)
        close = step["close"]
        if close == "held":
            sock.sendall(b"H")
            self.held[(client["name"], port)] = sock
        else:
            time.sleep(step["hold"])
            self._close(sock, close)
        time.sleep(SETTLE_S)
        row["entry_after"] = ipvs_rows(client["ip"], port)

    @staticmethod
    def _read_name(sock: socket.socket) -> str:
        data = b""
        while not data.endswith(b"\n") and len(data) < READ_LIMIT:
            chunk = sock.recv(READ_LIMIT)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace").strip()

    @staticmethod
    def _close(sock: socket.socket, close: str) -> None:
        try:
            if close == "server-first":
                sock.sendall(b"S")
                while sock.recv(READ_LIMIT):
                    pass
            elif close == "client-rst":
                # SO_LINGER with a zero timeout: close() sends RST.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.sendall(b"C")
        except OSError:
            pass
        sock.close()

    def _release(self, step: dict[str, Any], row: dict[str, Any]) -> None:
        client = self.clients[step["client"]]
        port = step["port"]
        row.update(client=client["name"], client_port=port)
        sock = self.held.pop((client["name"], port), None)
        if sock is None:
            raise RunnerError(f"no held connection from {client['name']} port {port}")
        row["entry_before"] = ipvs_rows(client["ip"], port)
        # The server already waits for the client's FIN: server-first cannot be
        # asked for any more, so the client closes (or resets).
        self._close(sock, "client-rst" if step["close"] == "client-rst" else "client-first")
        time.sleep(SETTLE_S)
        row["entry_after"] = ipvs_rows(client["ip"], port)

    def _udp(self, step: dict[str, Any], row: dict[str, Any]) -> None:
        client, service, sock, port = self._open(step, row, socket.SOCK_DGRAM)
        start = time.monotonic()
        row["result"] = "ETIMEDOUT"
        try:
            for attempt in range(step["tries"]):
                sock.sendto(b"?", (service["vip"], service["port"]))
                ready, _, _ = select.select([sock], [], [], step["timeout"])
                if ready:
                    data, _ = sock.recvfrom(READ_LIMIT)
                    row.update(result="established", pod=data.decode(errors="replace"))
                    row["syn_retransmits"] = attempt
                    break
        except OSError as err:
            row["result"] = errno_name(err)
        row["connect_us"] = int((time.monotonic() - start) * 1e6)
        sock.close()
        row["entry_after"] = ipvs_rows(client["ip"], port)

    def run_steps(self) -> None:
        start = time.monotonic()
        for index, step in enumerate(self.plan["steps"]):
            at = step.get("at")
            if at is not None:
                delay = start + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            began = time.monotonic()
            try:
                row = self.step(index, step)
            except (RunnerError, OSError) as err:
                row = {"index": index, "action": step["action"], "result": f"error: {err}"}
            row["time_us"] = int((began - start) * 1e6)
            row["took_us"] = int((time.monotonic() - began) * 1e6)
            emit("step", **row)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_plan(plan: dict[str, Any]) -> int:
    """One node: set up, run the steps, tear down (whatever happens)."""
    lab = Lab(plan)
    began = time.monotonic()
    status = 0
    try:
        lab.set_up()
        emit("setup", took_us=int((time.monotonic() - began) * 1e6))
        lab.run_steps()
    except RunnerError as err:
        emit("error", message=str(err))
        status = 1
    finally:
        lab.tear_down()
        listed = run(["ip", "netns", "list"], check=False).splitlines()
        left = [line.split()[0] for line in listed if line.strip()]
        emit("done", took_us=int((time.monotonic() - began) * 1e6), namespaces_left=left)
    return status


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: guest_runner.py PLAN.json\n")
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    with open(argv[1]) as handle:
        data = json.load(handle)
    # A batch ({"plans": [...]}) runs its nodes one after the other in one boot.
    plans = data.get("plans", [data])
    status = 0
    try:
        for index, plan in enumerate(plans):
            _plan_index[0] = index
            status = max(status, run_plan(plan))
    except KeyboardInterrupt:
        emit("error", message="interrupted")
        status = 130
    emit("finished", plans=len(plans))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
