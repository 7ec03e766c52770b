"""Options shared by the subcommands, spelled and checked the same way everywhere.

``--kernel`` takes a preset name, a mainline version or a ``uname -r`` string in
``explain`` and ``doctor`` alike; ``--kube-proxy`` takes a version; values ipvslab
cannot stand behind are an error (a kernel older than any it models) or a warning
(a kube-proxy newer than any it knows). A closed pipe (``| head``) is not an error.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import typer
from rich.console import Console

from ipvslab.cluster.kube_proxy import kube_version_warning, parse_kube_version
from ipvslab.kernel.presets import OLDEST_MODELLED_KERNEL, KernelResolution, resolve_kernel

KERNEL_HELP = (
    "Kernel: a preset name (ubuntu-20.04, `ipvslab presets`), a mainline version (5.4.59)"
    " or a `uname -r` string (5.15.0-91-generic)."
)
KUBE_PROXY_HELP = "kube-proxy version (v1.28.2)."
NO_COLOR_HELP = "Plain output (also when NO_COLOR is set)."


def checked_kernel(text: str, option: str = "--kernel") -> KernelResolution:
    """The kernel an option names; typer.BadParameter when it is not one ipvslab models."""
    try:
        kernel = resolve_kernel(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    if kernel.version[:2] < OLDEST_MODELLED_KERNEL:
        oldest = "{}.{}".format(*OLDEST_MODELLED_KERNEL)
        raise typer.BadParameter(
            f"{text!r} is older than {oldest}, the oldest kernel ipvslab models"
            " (CentOS/RHEL 7); IPVS connection reuse handling arrived after it",
            param_hint=option,
        )
    return kernel


def checked_kube_proxy(text: str, option: str = "--kube-proxy") -> tuple[int, int, int]:
    """The kube-proxy version an option names; an error for one that is no 1.x version,
    a warning on stderr for one newer than ipvslab knows."""
    try:
        version = parse_kube_version(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    warning = kube_version_warning(version)
    if warning is not None and version[0] != 1:
        raise typer.BadParameter(warning, param_hint=option)
    if warning is not None:
        warn(f"{option} {text}: {warning}")
    return version


class _Console(Console):
    """rich's Console, but a closed pipe raises BrokenPipeError for ``reader_may_leave``
    instead of rich's own exit with status 1 (which reads as "findings")."""

    def on_broken_pipe(self) -> None:
        silence_stdout()
        raise BrokenPipeError


def make_console(plain: bool) -> Console:
    """The console of every subcommand: colour only on a terminal (rich's detection);
    ``plain`` (--no-color, NO_COLOR) means no colour, styling or highlighting at all."""
    if plain or os.environ.get("NO_COLOR"):
        return _Console(color_system=None, no_color=True, highlight=False, emoji=False)
    return _Console(highlight=False, emoji=False)


def warn(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"ipvslab: warning: {message}\n")
        sys.stderr.flush()


def silence_stdout() -> None:
    """The reader went away (`| head`): drop what is still to be written, and let no
    flush at exit fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """Output to a pipe whose reader may stop early: that ends the output, not the run."""
    try:
        yield
    except BrokenPipeError:
        silence_stdout()
