"""When connect() (re)sends its SYN and when it gives up with ETIMEDOUT.

Source: ../shared/reference/client-tcp-ports.md §4.5 and §2.3.

* First retransmission after TCP_TIMEOUT_INIT = 1 s on every kernel; the RTO then
  doubles, capped at TCP_RTO_MAX = 120 s (include/net/tcp.h).
* <= v6.4: connect() fails once `icsk_retransmits >= tcp_syn_retries`
  (tcp_write_timeout()), when the timer after the last retransmission fires:
  with the default 6 retries, SYNs at 0, 1, 3, 7, 15, 31, 63 s and ETIMEDOUT at
  127 s.
* >= v6.5 (David Morley, "tcp: make the first N SYN RTO backoffs linear",
  release inferred): `tcp_syn_linear_timeouts` (default 4) extra retransmissions
  that do not back off: RTOs 1, 1, 1, 1, 1, 2, 4, ... s; the budget is
  `tcp_syn_retries + tcp_syn_linear_timeouts`; SYNs at 0, 1, 2, 3, 4, 5, 7, 11, 19,
  35, 67 s and ETIMEDOUT at 131 s.

Pure arithmetic, cached per argument set.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ipvslab.cluster.port_picker import KernelVersion

TCP_TIMEOUT_INIT_US = 1_000_000
TCP_RTO_MAX_US = 120_000_000
# The Morley patch: net.ipv4.tcp_syn_linear_timeouts, default 4.
DEFAULT_SYN_LINEAR_TIMEOUTS = 4
LINEAR_TIMEOUTS_SINCE: KernelVersion = (6, 5, 0)
MAX_TCP_SYNCNT = 127


@dataclass(frozen=True, slots=True)
class SynSchedule:
    """Offsets in µs after the first SYN: each SYN sent (0 first) and the give-up."""

    sends_us: tuple[int, ...]
    timeout_us: int

    @property
    def retransmissions(self) -> int:
        return len(self.sends_us) - 1

    def sent_before(self, elapsed_us: int) -> int:
        """How many SYNs were sent in the first ``elapsed_us`` (the first one included)."""
        return sum(1 for at in self.sends_us if at < elapsed_us) if elapsed_us > 0 else 0


@lru_cache(maxsize=256)
def syn_send_offsets(
    kernel_version: KernelVersion,
    syn_retries: int = 6,
    linear_timeouts: int | None = None,
    rto_initial_us: int = TCP_TIMEOUT_INIT_US,
) -> SynSchedule:
    """The SYN (re)transmission times of one connect() that gets no answer.

    ``linear_timeouts`` is net.ipv4.tcp_syn_linear_timeouts (None: the kernel's
    default, 4 from v6.5 and absent before). ``rto_initial_us`` is the initial RTO
    (1 s unless a route sets ``rto_min``/BPF changes it).
    """
    if not 1 <= syn_retries <= MAX_TCP_SYNCNT:
        raise ValueError(
            f"tcp_syn_retries must be between 1 and {MAX_TCP_SYNCNT}, got {syn_retries}"
        )
    has_linear = kernel_version >= LINEAR_TIMEOUTS_SINCE
    if linear_timeouts is None:
        linear_timeouts = DEFAULT_SYN_LINEAR_TIMEOUTS if has_linear else 0
    elif linear_timeouts and not has_linear:
        raise ValueError("tcp_syn_linear_timeouts does not exist before v6.5")
    if not 0 <= linear_timeouts <= MAX_TCP_SYNCNT:
        raise ValueError(
            f"tcp_syn_linear_timeouts must be between 0 and {MAX_TCP_SYNCNT}, got {linear_timeouts}"
        )
    if rto_initial_us <= 0:
        raise ValueError(f"rto_initial_us must be > 0, got {rto_initial_us}")
    sends = [0]
    at = 0
    budget = syn_retries + linear_timeouts
    for sent in range(budget + 1):
        # After the `sent`-th retransmission (0: the original SYN) the RTO is the
        # initial one for the first `linear_timeouts` retransmissions, then doubles.
        backoff = max(0, sent - linear_timeouts)
        rto = min(rto_initial_us << min(backoff, 40), TCP_RTO_MAX_US)
        at += rto
        if sent < budget:
            sends.append(at)
    return SynSchedule(tuple(sends), at)
