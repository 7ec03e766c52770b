"""What a pod's own TCP stack answers a SYN, for the 4-tuples it still holds.

From ../shared/reference/client-tcp-ports.md §4.3-4.4:
- nothing listening: RST, the client's connect() fails with ECONNREFUSED;
- the pod's own TIME_WAIT for that 4-tuple (it closed first): a SYN with a newer
  timestamp or a larger ISN is accepted (tcp_timewait_state_process() returns
  TCP_TW_SYN): the normal case for a client on one host, since its TSval offset
  is per address pair and its ISN clock keeps growing. (Clients behind one SNAT
  address with different clocks are not modelled.)
- a half-open or open connection for that 4-tuple from an earlier attempt (a
  SYN_RECV whose SYN|ACK never arrived, or an ESTABLISHED the client gave up
  on): the new SYN gets a challenge ACK (RFC 5961, tcp_validate_incoming()); the
  client in SYN_SENT answers it with RST, which resets the pod's socket, and
  sends its SYN again: after the retransmission timer (1 s), or at once since
  SeongJae Park's "tcp: Reduce SYN resend delay if a suspicous ACK is received"
  (about v5.6).
"""

from __future__ import annotations

from enum import IntEnum

# include/net/tcp.h TCP_TIMEWAIT_LEN: the pod holds TIME_WAIT 60 s when it closed first.
POD_TIME_WAIT_US = 60_000_000
# tcp_synack_retries = 5: SYN|ACKs at 0, 1, 3, 7, 15, 31 s, the request dropped at 63 s.
SYN_RECV_LIFETIME_US = 63_000_000
# An idle ESTABLISHED socket: the app's own timeout ends it (not modelled beyond this).
ESTABLISHED_LIFETIME_US = 2 * 3600 * 1_000_000


class PodSocket(IntEnum):
    SYN_RECV = 0
    ESTABLISHED = 1
    TIME_WAIT = 2


class SynAnswer(IntEnum):
    SYN_ACK = 0  # accepted (new, or replacing the pod's TIME_WAIT)
    CHALLENGE_ACK = 1  # a 4-tuple from an earlier attempt is still open
    RETRANSMITTED_SYN_ACK = 2  # the same attempt's SYN again: the request's SYN|ACK again


class PodTcp:
    """The server-side sockets of one pod, by (source seen, source port)."""

    __slots__ = ("_socks",)

    def __init__(self) -> None:
        # key -> (state, attempt id, expires µs)
        self._socks: dict[int, tuple[int, int, int]] = {}

    @staticmethod
    def key(source: int, port: int) -> int:
        return source << 16 | port

    def on_syn(self, key: int, attempt: int, now: int) -> SynAnswer:
        found = self._socks.get(key)
        if found is not None and found[2] > now:
            state, owner, _ = found
            if state != PodSocket.TIME_WAIT:
                if owner == attempt and state == PodSocket.SYN_RECV:
                    return SynAnswer.RETRANSMITTED_SYN_ACK
                return SynAnswer.CHALLENGE_ACK
        self._socks[key] = (PodSocket.SYN_RECV, attempt, now + SYN_RECV_LIFETIME_US)
        return SynAnswer.SYN_ACK

    def on_rst(self, key: int) -> None:
        self._socks.pop(key, None)

    def established(self, key: int, attempt: int, now: int) -> None:
        self._socks[key] = (PodSocket.ESTABLISHED, attempt, now + ESTABLISHED_LIFETIME_US)

    def closed(self, key: int, pod_closed_first: bool, now: int) -> None:
        if pod_closed_first:
            self._socks[key] = (PodSocket.TIME_WAIT, 0, now + POD_TIME_WAIT_US)
        else:
            self._socks.pop(key, None)

    def sweep(self, now: int) -> None:
        """Forget expired sockets (memory only: lookups check expiry anyway)."""
        for key in [k for k, v in self._socks.items() if v[2] <= now]:
            del self._socks[key]

    def __len__(self) -> int:
        return len(self._socks)
