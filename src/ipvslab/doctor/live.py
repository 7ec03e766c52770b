"""Reading the doctor's inputs from the node it runs on (read-only).

``capture_live`` finds, under ``root`` (``/``, or where the host's root is mounted):

* ``proc/net/ip_vs``, ``ip_vs_conn``, ``ip_vs_stats``: opened only when parsed,
  and streamed (a node can hold millions of connection entries);
* ``proc/sys/net/ipv4/vs/*`` and a few related sysctls, gathered into one
  ``sysctl -a``-form text; ``proc/sys/kernel/osrelease``; ``etc/os-release``;
* kube-proxy: the process whose ``argv[0]`` is ``kube-proxy`` (or ``hyperkube
  kube-proxy`` / ``hyperkube proxy``), its command line, its ``--config`` file as
  its own mount namespace shows it (``proc/<pid>/root/...``), and its version from
  running ``proc/<pid>/exe --version`` (argv list, no shell, with a timeout).

Small files are read at once (a process can exit, its pid be reused); nothing is
ever written under ``root``. Unreadable files become ``Capture.problems``, other
things the doctor could not learn become ``Capture.notes``; nothing raises.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ipvslab.doctor.capture import (
    Capture,
    CaptureBuilder,
    InputKind,
    os_error_text,
    path_opener,
    text_opener,
)
from ipvslab.doctor.parsers import parse_kube_proxy_cmdline

# Small files (cmdline, config, os-release, one sysctl) are read whole up to this size.
SMALL_FILE_LIMIT = 1 << 20
# Read with the net.ipv4.vs.* sysctls: they decide how port reuse and TIME_WAIT behave.
EXTRA_SYSCTLS = (
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_tw_reuse",
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
)
PROC_NET_FILES = (
    (InputKind.PROC_IP_VS, "proc/net/ip_vs"),
    (InputKind.PROC_IP_VS_CONN, "proc/net/ip_vs_conn"),
    (InputKind.PROC_IP_VS_STATS, "proc/net/ip_vs_stats"),
)
KUBE_PROXY_NAMES = frozenset({"kube-proxy"})
HYPERKUBE_PROXY = frozenset({"kube-proxy", "proxy"})
# The environment `kube-proxy --version` runs with: nothing of ours leaks into it.
EXEC_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
VERSION_OUTPUT_LIMIT = 64 << 10
MAX_SYMLINKS = 40


def no_ipvs_note(path: Path) -> str:
    return (
        f"IPVS is not loaded here: {path} does not exist. Either the ip_vs kernel module is "
        "not loaded on this node, or this is not the host's network namespace (IPVS tables "
        "are per network namespace): run on the host, in a pod with hostNetwork: true, or "
        "under `nsenter -t 1 -n`. Sysctls, the kernel release and kube-proxy are still read."
    )


def capture_live(
    root: Path = Path("/"), *, exec_version: bool = True, timeout: float = 5.0
) -> Capture:
    """The inputs of the node whose root is ``root`` (see the module docstring)."""
    live = _Live(root, CaptureBuilder(live=True))
    steps: tuple[Callable[[], None], ...] = (
        live.proc_net,
        live.sysctls,
        live.kernel_release,
        live.os_release,
        lambda: live.kube_proxy(exec_version, timeout),
    )
    for step in steps:
        try:
            step()
        except OSError as exc:  # an odd error the step did not expect (EACCES on a stat ...)
            live.problem(exc.filename or root, exc)
    return live.builder.build()


class _Live:
    def __init__(self, root: Path, builder: CaptureBuilder) -> None:
        self.root = root
        self.builder = builder

    # -- helpers -----------------------------------------------------------

    def problem(self, path: Path | str, exc: OSError) -> None:
        self.builder.problem(str(path), f"cannot read: {os_error_text(exc)}")

    def read_small(self, path: Path) -> str | Literal[False] | None:
        """A small file's text (utf-8, bad bytes replaced); None if it does not exist;
        False, with a problem, if it cannot be read."""
        try:
            with path.open("rb") as raw:
                data = raw.read(SMALL_FILE_LIMIT + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            self.problem(path, exc)
            return False
        if len(data) > SMALL_FILE_LIMIT:
            self.builder.note(f"{path}: larger than {SMALL_FILE_LIMIT} bytes; only the start read")
            data = data[:SMALL_FILE_LIMIT]
        return data.decode("utf-8", "replace")

    def add_small(self, kind: InputKind, path: Path, source: str | None = None) -> bool | None:
        """Adds a small file read now: True, None if it does not exist, False if unreadable."""
        text = self.read_small(path)
        if text is None or text is False:
            return text
        self.builder.add(kind, source or str(path), text_opener(text))
        return True

    # -- inputs ------------------------------------------------------------

    def proc_net(self) -> None:
        ip_vs = self.root / "proc/net/ip_vs"
        try:
            ip_vs.stat()
            self.builder.ipvs_present = True
        except (FileNotFoundError, NotADirectoryError):
            self.builder.ipvs_present = False
        except OSError as exc:  # present or not: unknown
            self.problem(ip_vs, exc)
            return
        if not self.builder.ipvs_present:
            self.builder.note(no_ipvs_note(ip_vs))
            return
        for kind, rel in PROC_NET_FILES:
            path = self.root / rel
            try:
                with path.open("rb"):  # readable now? (read for real when parsed)
                    pass
            except FileNotFoundError:
                self.builder.note(f"{path} does not exist although {ip_vs} does")
                continue
            except OSError as exc:
                self.problem(path, exc)
                continue
            self.builder.add(kind, str(path), path_opener(path))
        self.netns_note()

    def netns_note(self) -> None:
        """Says so when this process is not in PID 1's network namespace (when both show)."""
        try:
            ours = os.readlink(self.root / "proc/self/ns/net")
            init = os.readlink(self.root / "proc/1/ns/net")
        except OSError:
            return
        if ours != init:
            self.builder.note(
                "This process is not in the network namespace of PID 1 (the host's, when run "
                "with hostPID): the IPVS tables read are this namespace's own. Run on the host, "
                "with hostNetwork: true, or under `nsenter -t 1 -n`."
            )

    def sysctls(self) -> None:
        sys_dir = self.root / "proc/sys"
        vs_dir = sys_dir / "net/ipv4/vs"
        lines: list[str] = []
        try:
            entries = sorted(vs_dir.iterdir())
        except FileNotFoundError:
            entries = []
            if self.builder.ipvs_present:
                self.builder.note(
                    f"{vs_dir} does not exist: the net.ipv4.vs.* sysctls are not visible here "
                    "(they are hidden outside the initial user namespace)."
                )
        except OSError as exc:
            entries = []
            self.problem(vs_dir, exc)
        for entry in entries:
            if entry.is_file():
                self.sysctl_line(lines, f"net.ipv4.vs.{entry.name}", entry)
        for key in EXTRA_SYSCTLS:
            self.sysctl_line(lines, key, sys_dir / key.replace(".", "/"))
        if lines:
            self.builder.add(InputKind.SYSCTL, str(sys_dir), text_opener("".join(lines)))
        else:
            self.builder.note(f"no sysctl could be read under {sys_dir}")

    def sysctl_line(self, lines: list[str], key: str, path: Path) -> None:
        text = self.read_small(path)
        if isinstance(text, str):
            value = " ".join(text.strip().splitlines())
            lines.append(f"{key} = {value}\n")

    def kernel_release(self) -> None:
        path = self.root / "proc/sys/kernel/osrelease"
        if self.add_small(InputKind.KERNEL_RELEASE, path) is None:
            self.builder.note(f"{path} does not exist: the kernel release is unknown")
        # The stable version behind a distro release: Debian prints it in /proc/version,
        # Ubuntu in /proc/version_signature (which only Ubuntu kernels have).
        self.add_small(InputKind.PROC_VERSION, self.root / "proc/version")
        self.add_small(InputKind.VERSION_SIGNATURE, self.root / "proc/version_signature")

    def os_release(self) -> None:
        for rel in ("etc/os-release", "usr/lib/os-release"):
            try:
                path = resolve_in_root(self.root, rel)
            except OSError as exc:
                self.problem(self.root / rel, exc)
                return
            if self.add_small(InputKind.OS_RELEASE, path, str(self.root / rel)) is not None:
                return
        self.builder.note(f"neither {self.root / 'etc/os-release'} nor usr/lib/os-release exist")

    def kube_proxy(self, exec_version: bool, timeout: float) -> None:
        proc = self.root / "proc"
        found = find_kube_proxy(proc)
        if not found:
            self.builder.note(
                f"no kube-proxy process was found under {proc}: kube-proxy's flags, config and "
                "version are unknown. kube-proxy runs in a pod; run on the host, or in a pod "
                "with hostPID: true."
            )
            return
        pid, cmdline = found[0]
        if len(found) > 1:
            others = ", ".join(str(p) for p, _ in found[1:])
            self.builder.note(f"several kube-proxy processes: read pid {pid} (also: {others})")
        pid_dir = proc / str(pid)
        self.builder.add(
            InputKind.KUBE_PROXY_CMDLINE, str(pid_dir / "cmdline"), text_opener(cmdline)
        )
        config = parse_kube_proxy_cmdline(cmdline).value.settings.config_file
        if config:
            self.kube_proxy_config(pid_dir, config)
        if exec_version:
            self.kube_proxy_version(pid_dir / "exe", timeout)
        else:
            self.builder.note(
                "kube-proxy --version was not run (running programs was turned off, --no-exec): "
                "its version is unknown."
            )

    def kube_proxy_config(self, pid_dir: Path, config: str) -> None:
        """The --config file as kube-proxy sees it: through its root (its mount namespace)."""
        try:
            if config.startswith("/"):
                path = resolve_in_root(pid_dir / "root", config)
                source = f"{pid_dir / 'root'}{config}"
            else:  # relative to its working directory
                path = pid_dir / "cwd" / config
                source = str(path)
        except OSError as exc:
            self.problem(pid_dir / "root" / config.lstrip("/"), exc)
            return
        if self.add_small(InputKind.KUBE_PROXY_CONFIG, path, source) is None:
            self.builder.note(
                f"kube-proxy's --config file {config} was not found in its mount namespace "
                f"({source}): settings come from its flags only."
            )

    def kube_proxy_version(self, exe: Path, timeout: float) -> None:
        output, failure = run_version(exe, timeout)
        if failure:
            self.builder.note(f"{failure}: the kube-proxy version is unknown.")
        if output.strip():
            self.builder.add(InputKind.KUBE_PROXY_VERSION, f"{exe} --version", text_opener(output))
        elif not failure:
            self.builder.note(
                f"{exe} --version printed nothing: the kube-proxy version is unknown."
            )


def resolve_in_root(base: Path, path: str) -> Path:
    """``path`` as a process whose root directory is ``base`` sees it.

    Symlinks are followed by hand so that absolute targets and ``..`` stay inside
    ``base`` (``/etc/os-release -> /usr/lib/os-release`` under a mounted host root,
    a ConfigMap's ``..data`` links under ``/proc/<pid>/root``). Missing parts are
    kept as they are: the caller sees the file does not exist.
    """
    todo = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = base.joinpath(*done, part)
        if candidate.is_symlink():
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(candidate))
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
            continue
        done.append(part)
    return base.joinpath(*done)


def is_kube_proxy(argv: list[str]) -> bool:
    if not argv:
        return False
    program = argv[0].rsplit("/", 1)[-1]
    if program in KUBE_PROXY_NAMES:
        return True
    return program == "hyperkube" and len(argv) > 1 and argv[1] in HYPERKUBE_PROXY


def find_kube_proxy(proc: Path) -> list[tuple[int, str]]:
    """(pid, NUL-separated command line) of each kube-proxy process, lowest pid first."""
    try:
        pids = sorted(int(e.name) for e in proc.iterdir() if e.name.isascii() and e.name.isdigit())
    except OSError:
        return []
    found: list[tuple[int, str]] = []
    for pid in pids:
        try:
            with (proc / str(pid) / "cmdline").open("rb") as raw:
                data = raw.read(SMALL_FILE_LIMIT)
        except OSError:  # exited meanwhile, or not ours to read
            continue
        text = data.decode("utf-8", "replace")
        if is_kube_proxy([a for a in text.split("\0") if a]):
            found.append((pid, text))
    return found


def run_version(exe: Path, timeout: float) -> tuple[str, str | None]:
    """Runs ``[exe, "--version"]`` (no shell) with a timeout: (output, failure or None)."""
    argv = [str(exe), "--version"]
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=EXEC_ENV,
            cwd="/",
            start_new_session=True,  # its own process group, killed whole on timeout
        )
    except OSError as exc:
        return "", f"could not run {exe} --version ({os_error_text(exc)})"
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(child)
        return "", f"{exe} --version did not finish within {timeout:g} s and was stopped"
    text = out[:VERSION_OUTPUT_LIMIT].decode("utf-8", "replace")
    errors = err[:VERSION_OUTPUT_LIMIT].decode("utf-8", "replace")
    if not text.strip():
        text = errors
    if child.returncode != 0:
        first = errors.strip().splitlines()[0][:200] if errors.strip() else ""
        detail = f": {first}" if first else ""
        return text, f"{exe} --version exited with status {child.returncode}{detail}"
    return text, None


def _kill(child: subprocess.Popen[bytes]) -> None:
    """Kills the process group started for ``--version`` and reaps the child."""
    with contextlib.suppress(OSError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        child.kill()
    try:
        child.communicate(timeout=2)
    except subprocess.TimeoutExpired:  # a descendant left its group and holds the pipes
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=2)
