"""Schedulers: one module each, as the kernel has one ip_vs_<name>.c file each.

Every scheduler fills the same small set of hooks as struct ip_vs_scheduler
(init_service, add_dest, del_dest, upd_dest, schedule) and registers itself by
name. The service calls the hooks at the points the kernel does (ip_vs_ctl.c).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService


class Scheduler(Protocol):
    """The hooks of struct ip_vs_scheduler."""

    name: ClassVar[str]

    def init_service(self, svc: VirtualService) -> None:
        """Called once when the scheduler is bound to the service."""

    def add_dest(self, svc: VirtualService, dest: RealServer) -> None:
        """Called after dest was linked at the head of svc.destinations."""

    def del_dest(self, svc: VirtualService, dest: RealServer) -> None:
        """Called after dest was unlinked from svc.destinations."""

    def upd_dest(self, svc: VirtualService, dest: RealServer) -> None:
        """Called after an edit of dest (weight, thresholds, method)."""

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        """Pick a real server for a new connection, or None when none is available."""


class SchedulerBase:
    """Hooks that do nothing, for schedulers that keep no state (lc, wlc, ...)."""

    name: ClassVar[str] = ""

    def init_service(self, svc: VirtualService) -> None:
        return None

    def add_dest(self, svc: VirtualService, dest: RealServer) -> None:
        return None

    def del_dest(self, svc: VirtualService, dest: RealServer) -> None:
        return None

    def upd_dest(self, svc: VirtualService, dest: RealServer) -> None:
        return None


class TableScheduler(SchedulerBase):
    """Schedulers that rebuild a lookup table from the destination list whenever the
    list changes (dh, sh, mh: their *_reassign() runs from init_service, add_dest and
    del_dest). Those whose table depends on weights also rebuild in upd_dest."""

    def _reassign(self, svc: VirtualService) -> None:
        raise NotImplementedError

    def init_service(self, svc: VirtualService) -> None:
        self._reassign(svc)

    def add_dest(self, svc: VirtualService, dest: RealServer) -> None:
        self._reassign(svc)

    def del_dest(self, svc: VirtualService, dest: RealServer) -> None:
        self._reassign(svc)


SchedulerFactory = type[Scheduler]

_REGISTRY: dict[str, SchedulerFactory] = {}


def register(cls: SchedulerFactory) -> SchedulerFactory:
    """Class decorator: make a scheduler findable by its name (register_ip_vs_scheduler())."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # Importing each module runs its @register. Kept in one place so that adding a
    # scheduler is one new file plus one name here.
    import importlib

    for module in BUILTIN_SCHEDULERS:
        importlib.import_module(f"{__name__}.{module}")


BUILTIN_SCHEDULERS: tuple[str, ...] = (
    "rr",
    "wrr",
    "lc",
    "wlc",
    "sed",
    "nq",
    "dh",
    "sh",
    "mh",
    "fo",
    "ovf",
)


def available() -> list[str]:
    """Names of all registered schedulers."""
    _load_builtin()
    return sorted(_REGISTRY)


def create(name: str) -> Scheduler:
    """A fresh scheduler instance by name (ip_vs_scheduler_get())."""
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown scheduler {name!r}; known: {known}") from None
    return factory()
