"""One boot: the command line, the runner's lines among console noise, clean-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ipvslab.lab import vm
from ipvslab.lab.kernel_image import (
    KernelImage,
    KernelImageError,
    depends_of,
    local_kernel,
    release_of,
)

IMAGE = KernelImage(
    "6.1.0-57-amd64",
    Path("/k/6.1.0-57-amd64/boot/vmlinuz-6.1.0-57-amd64"),
    Path("/k/6.1.0-57-amd64"),
)


def test_the_boot_emulates_and_shares_the_root_over_9p() -> None:
    command = vm.vng_command(IMAGE, Path("/c/plan.json"), vm.VmOptions(cpus=1, memory="512M"))
    assert command[:3] == ["vng", "--run", str(IMAGE.vmlinuz)]
    assert "--disable-kvm" in command and "--force-9p" in command
    assert command[command.index("--cpus") + 1] == "1"
    # The runner is copied beside the plan and run by the base interpreter.
    assert command[-1].endswith("/c/guest_runner.py /c/plan.json")
    assert ".venv" not in command[-1].split()[0]


def test_runner_lines_are_found_among_kernel_messages() -> None:
    assert vm.parse_line('[   3.1] IPVSLAB {"kind": "ready"}') == {"kind": "ready"}
    assert vm.parse_line("[   3.2] IPVS: Registered protocols (TCP, UDP)") is None
    assert vm.parse_line("IPVSLAB {truncated") is None
    assert vm.parse_line("IPVSLAB [1, 2]") is None


def test_a_runner_that_dies_without_its_report_is_said_so_with_the_console(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = "print('booting'); print('IPVSLAB {\"kind\": \"ready\"}'); raise SystemExit(3)"
    monkeypatch.setattr(vm, "host_command", lambda plan: [sys.executable, "-c", script])
    lines = list(vm.run_plan({"steps": []}, None))
    assert lines[0] == {"kind": "ready"}
    assert lines[-1]["kind"] == "vm"
    assert "exit 3" in lines[-1]["message"]
    assert lines[-1]["console"] == ["booting"]


def test_a_hung_boot_is_killed_at_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        vm, "host_command", lambda plan: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    lines = list(vm.run_plan({}, None, vm.VmOptions(timeout_s=0.5)))
    assert "timed out" in lines[-1]["message"]


# A stand-in VM that starts a child (as vng starts QEMU), reports its pid, and
# hangs.
_WITH_A_CHILD = (
    "import subprocess, time;"
    "child = subprocess.Popen(['sleep', '60']);"
    'print(\'IPVSLAB {"kind": "ready", "child": %d}\' % child.pid, flush=True);'
    "time.sleep(60)"
)


def _vm_with_a_child(plan: Path) -> list[str]:
    return [sys.executable, "-c", _WITH_A_CHILD]


def test_stopping_early_kills_the_whole_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    # A child of the VM process (as QEMU is of vng) must go too.
    monkeypatch.setattr(vm, "host_command", _vm_with_a_child)
    lines = vm.run_plan({}, None)
    child = next(lines)["child"]
    lines.close()  # the caller stops reading (Ctrl-C, an error)
    assert _gone(child)


def _gone(pid: int) -> bool:
    for _ in range(50):  # the signal is sent; the process needs a moment to exit
        state = subprocess.run(
            ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout.strip()
        if state in ("", "Z"):  # gone, or a zombie already killed
            return True
        time.sleep(0.1)
    return False


def test_sigterm_stops_the_vm_as_ctrl_c_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # `kill` of the ipvslab process (or a closed terminal: SIGHUP) must not leave
    # QEMU running in its own process group.
    monkeypatch.setattr(vm, "host_command", _vm_with_a_child)
    before = signal.getsignal(signal.SIGTERM)
    lines = vm.run_plan({}, None)
    child = next(lines)["child"]
    # The signal comes while the host waits for the VM's next line.
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(KeyboardInterrupt):
        next(lines)
    assert _gone(child)
    assert signal.getsignal(signal.SIGTERM) is before


def test_debian_package_names() -> None:
    assert release_of("linux-image-6.1.0-57-amd64") == "6.1.0-57-amd64"
    with pytest.raises(KernelImageError, match="not a Debian linux-image"):
        release_of("linux-image-amd64-dbg")
    apt_cache = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n"
    assert depends_of(apt_cache) == "linux-image-6.1.0-57-amd64"
    assert depends_of("linux-image-amd64\n") is None


def test_a_vmlinuz_path_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KernelImageError, match="not a vmlinuz-<release> file"):
        local_kernel(tmp_path / "bzImage")
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz-6.12.100+deb12-amd64").write_bytes(b"")
    image = local_kernel(boot / "vmlinuz-6.12.100+deb12-amd64")
    assert (image.release, image.root) == ("6.12.100+deb12-amd64", tmp_path)
