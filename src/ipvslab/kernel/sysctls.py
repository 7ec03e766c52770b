"""The net.ipv4.vs.* sysctls that steer connection reuse, with kernel defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ipvslab.kernel.features import Feature, KernelFeatures


class SysctlError(ValueError):
    """A sysctl value the kernel would refuse, or one this kernel does not have."""


@dataclass(frozen=True, slots=True)
class Sysctls:
    """net.ipv4.vs.* values. Defaults are the kernel's (ip_vs_control_net_init_sysctl())."""

    # Bitmap since d752c364 (v4.1): bit 1 (value 1) reschedules TIME_WAIT (and CLOSE)
    # reuse, bit 2 (value 2) adds FIN_WAIT for output-less (DR/TUN) entries.
    conn_reuse_mode: int = 1
    # IP_VS_CONN_F_NFCT on new entries: keep netfilter conntrack for IPVS flows.
    # kube-proxy sets 1 in every version.
    conntrack: int = 0
    expire_nodest_conn: int = 0
    expire_quiescent_template: int = 0
    # TencentOS-kernel PR #17 only; default 1 there.
    conn_reuse_old_conntrack: int = 1

    def __post_init__(self) -> None:
        if self.conn_reuse_mode not in (0, 1, 2, 3):
            raise SysctlError(
                f"net.ipv4.vs.conn_reuse_mode must be 0..3 (a two-bit bitmap), "
                f"got {self.conn_reuse_mode}"
            )
        for name in (
            "conntrack",
            "expire_nodest_conn",
            "expire_quiescent_template",
            "conn_reuse_old_conntrack",
        ):
            value = getattr(self, name)
            if not isinstance(value, int):
                raise SysctlError(f"net.ipv4.vs.{name} must be an integer, got {value!r}")
            if value < 0:
                raise SysctlError(f"net.ipv4.vs.{name} must be >= 0, got {value}")

    def check_kernel(self, features: KernelFeatures) -> None:
        """Refuse settings the kernel has no sysctl for (they would not exist in /proc)."""
        defaults = Sysctls()
        if not features.has(Feature.CONN_REUSE_MODE) and (
            self.conn_reuse_mode != defaults.conn_reuse_mode
        ):
            raise SysctlError("net.ipv4.vs.conn_reuse_mode does not exist before d752c364 (v4.1)")
        if not features.has(Feature.REUSE_OLD_CONNTRACK) and (
            self.conn_reuse_old_conntrack != defaults.conn_reuse_old_conntrack
        ):
            raise SysctlError(
                "net.ipv4.vs.conn_reuse_old_conntrack exists only in TencentOS kernels (PR #17)"
            )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parse(cls, assignments: dict[str, str]) -> Sysctls:
        """Sysctls from name=value text (names with or without net.ipv4.vs.)."""
        values: dict[str, int] = {}
        for raw_name, raw_value in assignments.items():
            name = raw_name.removeprefix("net.ipv4.vs.").removeprefix("net/ipv4/vs/")
            if name not in cls.names():
                known = ", ".join(cls.names())
                raise SysctlError(f"unknown sysctl {raw_name!r}; known: {known}")
            try:
                values[name] = int(raw_value.strip())
            except ValueError:
                raise SysctlError(
                    f"net.ipv4.vs.{name} must be an integer, got {raw_value!r}"
                ) from None
        return cls(**values)
