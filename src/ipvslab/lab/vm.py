"""VM boot: one boot of a kernel under QEMU (virtme-ng), running the guest runner
on a plan and streaming back its JSON lines; or the same runner on this host.

virtme-ng boots the kernel with the host's filesystem as the guest's root
(read-only, over 9p), so the guest runs this very ``guest_runner.py`` with the
host's python3 and reads the plan from the host's disk. ``--disable-kvm``: KVM
hangs under nested virtualisation on the machines this was built on, so QEMU
emulates (slow: a boot takes about a minute on 2 shared cores).

Clean-up: QEMU runs in its own process group, killed on the way out whatever
happens (error, Ctrl-C). The namespaces exist only inside the guest, so
nothing is left on the host. In ``--host`` mode the runner deletes its
namespaces itself (also on SIGTERM), and is sent SIGTERM when the host side
stops early.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipvslab.lab import guest_runner
from ipvslab.lab.kernel_image import KernelImage

PREFIX = guest_runner.PREFIX
RUNNER = "guest_runner.py"
# A boot plus a probe list that has not finished in this long is stuck.
DEFAULT_TIMEOUT_S = 1800.0
# Each line QEMU's console passes on is bounded: a runaway line is not kept whole.
LINE_LIMIT = 1 << 20
STOP_GRACE_S = 5.0


class VmError(RuntimeError):
    """The VM (or the host runner) could not be had: what failed and why."""


@dataclass(frozen=True)
class VmOptions:
    cpus: int = 2
    memory: str = "1G"
    timeout_s: float = DEFAULT_TIMEOUT_S
    vng: str = "vng"


def runner_path() -> Path:
    return Path(guest_runner.__file__).resolve()


def vng_command(image: KernelImage, plan: Path, options: VmOptions) -> list[str]:
    """The virtme-ng command line of one boot that runs the plan and powers off."""
    inner = f"{guest_python()} {plan.parent / RUNNER} {plan}"
    return [
        options.vng,
        "--run",
        str(image.vmlinuz),
        "--disable-kvm",
        "--force-9p",
        "--cpus",
        str(options.cpus),
        "--memory",
        options.memory,
        "--exec",
        inner,
    ]


def host_command(plan: Path) -> list[str]:
    return [sys.executable, str(plan.parent / RUNNER), str(plan)]


def find_vng(name: str = "vng") -> str:
    """virtme-ng's ``vng``: on PATH, or beside this Python (an extra of the install)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise VmError(
            "virtme-ng is not installed (pip install 'ipvslab[lab]', or pip install virtme-ng)"
        )
    return found


def parse_line(line: str) -> dict[str, Any] | None:
    """A runner line, or None for anything else on the console."""
    start = line.find(PREFIX)
    if start < 0:
        return None
    try:
        value = json.loads(line[start + len(PREFIX) :])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@contextmanager
def _plan_file(plan: dict[str, Any]) -> Iterator[Path]:
    """The plan, and a copy of the runner beside it, in a directory of their own
    under the cache: the guest sees the host's files, but not all of them (it
    gets a /var/tmp of its own, for one), and a checkout may live anywhere."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ipvslab"
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    try:
        shutil.copyfile(runner_path(), folder / RUNNER)
        (folder / "plan.json").write_text(json.dumps(plan))
        yield folder / "plan.json"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def guest_python() -> str:
    """The Python the guest runs the runner with: the base interpreter of this
    one (the runner needs only the standard library; a virtual environment may
    sit where the guest cannot see it)."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    return str(base) if base.is_file() else sys.executable


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM to the whole process group, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt while a VM runs, so that the
    clean-up below runs for them as for Ctrl-C (by default they end Python
    at once and QEMU, in its own process group, would be left running)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    for sig in previous:
        signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_plan(
    plan: dict[str, Any],
    image: KernelImage | None,
    options: VmOptions | None = None,
) -> Generator[dict[str, Any], None, None]:
    """Boots ``image`` (None: this host, as root) and yields the runner's lines.

    ``plan`` is one node's plan, or ``{"plans": [...]}`` to run several nodes
    one after the other in one boot (each line then names its ``plan``). The VM
    is gone when the iterator ends, also when the caller stops early or is
    interrupted. The last line is the runner's ``finished`` line, or a ``vm``
    line saying how the VM ended without one.
    """
    options = options or VmOptions()
    with _stop_signals_interrupt(), _plan_file(plan) as path:
        env = dict(os.environ)
        if image is None:
            command = host_command(path)
        else:
            command = vng_command(image, path, options)
            command[0] = find_vng(options.vng)
            # vng starts virtme-run by name: the directory it was found in must be
            # on PATH (a virtual environment's bin/ often is not).
            env["PATH"] = os.pathsep.join([str(Path(command[0]).parent), env.get("PATH", "")])
        try:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as err:
            raise VmError(f"{command[0]}: {err}") from None
        timer = _Watchdog(process, options.timeout_s)
        console: list[str] = []
        done = False
        try:
            assert process.stdout is not None
            for line in iter(lambda: process.stdout.readline(LINE_LIMIT), ""):  # type: ignore[union-attr]
                parsed = parse_line(line)
                if parsed is None:
                    console = [*console[-19:], line.rstrip()[:300]]
                    continue
                done = done or parsed.get("kind") == "finished"
                yield parsed
            process.wait()
        finally:
            timer.cancel()
            _stop(process)
        if not done:
            why = "timed out" if timer.fired else f"exit {process.returncode}"
            yield {
                "kind": "vm",
                "message": f"the VM ended without the runner's report ({why})",
                "console": console,
            }


class _Watchdog:
    """Stops the VM after a timeout (a hung boot must not hold the caller)."""

    def __init__(self, process: subprocess.Popen[str], seconds: float) -> None:
        self.fired = False
        self._process = process
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        _stop(self._process)

    def cancel(self) -> None:
        self._timer.cancel()
