"""decide(): one row per branch of ip_vs_in(), era by era.

Every expected result is read off the kernel code quoted in the reference
(linux-ipvs.md section 1: T-3x, T-d752, T-f5ca, TencentOS PR #17, f0a5e4d7 +
04231e52, c95c07836 / current mainline; section 7 matrix), not off the model.

Kernel facts the rows rest on:
* T-3x: an entry always wins; only a removed dest (not AVAILABLE) drops, and
  expire_nodest_conn=1 also expires the entry.
* d752c364: `conn_reuse_mode && is_new_conn && cp && ((expire_nodest && dest &&
  !weight) || is_new_conn_expected())` -> expire unless n_control, schedule afresh.
  is_new_conn_expected(): not controlled; TIME_WAIT, or FIN_WAIT + NOOUTPUT with mode&2.
* f719e3754: uses_ct = NFCT flag && skb has a ct; resched+uses_ct -> NF_DROP;
  controlling entry with uses_ct in the expected branch is not rescheduled.
* TencentOS PR #17: uses_ct -> clear NFCT and go on, unless n_control/control or
  conn_reuse_old_conntrack=0 (then drop).
* f0a5e4d7 (5.9): old_ct = skb ct is confirmed (NFCT flag no longer checked);
  `if (!old_ct) cp->flags &= ~NFCT`. 04231e52 (5.9): removed dest +
  expire_nodest_conn=1 -> clear NFCT unless old_ct, expire, drop if old_ct else
  reschedule; expire_nodest_conn=0 -> drop.
* c95c07836 (5.16): the weight-0 clause runs whatever conn_reuse_mode is; the
  expected-state branch still needs conn_reuse_mode != 0. CLOSE joins TIME_WAIT.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import (
    F5CA,
    PRE_4_1,
    TOS,
    V4_1,
    V4_19,
    V4_19_OLD_SCTP,
    V5_4,
    V5_9,
    V5_15,
    V5_16,
    V6_1,
)

from ipvslab.kernel.conntrack import ConntrackStatus
from ipvslab.kernel.decision import (
    LEGACY_SCTP_CLOSED,
    SCTP_CLOSED,
    Decision,
    ExistingEntry,
    Outcome,
    StepKind,
    decide,
)
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.packet import Protocol
from ipvslab.kernel.sctp_states import LegacySctpState, SctpState
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import TcpState

NONE = ConntrackStatus.NONE
NEW = ConntrackStatus.NEW
CONF = ConntrackStatus.CONFIRMED

FWD = Outcome.FORWARD_EXISTING
SCHED = Outcome.SCHEDULE
RESCHED = Outcome.RESCHEDULE
DROP_SYN = Outcome.DROP_SYN
DROP_NODEST = Outcome.DROP_NO_DEST
NO_DEST = Outcome.NO_DEST_AVAILABLE

ES = TcpState.ESTABLISHED
TW = TcpState.TIME_WAIT
CL = TcpState.CLOSE
FW = TcpState.FIN_WAIT
SR = TcpState.SYN_RECV


def tcp(
    state: int,
    *,
    weight: int | None = 1,
    available: bool = True,
    controlled: bool = False,
    controls: bool = False,
    no_output: bool = False,
    nfct: bool = False,
    protocol: Protocol = Protocol.TCP,
) -> ExistingEntry:
    return ExistingEntry(
        protocol=protocol,
        state=int(state),
        dest_weight=weight,
        dest_available=available,
        controlled=controlled,
        controls_others=controls,
        no_output=no_output,
        uses_nfct=nfct,
    )


@dataclass(frozen=True)
class Row:
    features: KernelFeatures
    entry: ExistingEntry | None
    outcome: Outcome
    syn: bool = True
    ct: ConntrackStatus = NONE
    mode: int = 1
    nodest: int = 0
    reuse_old_ct: int = 1
    can_schedule: bool = True
    expire: bool = False
    clear: bool = False

    def run(self) -> Decision:
        sysctls = Sysctls(
            conn_reuse_mode=self.mode,
            expire_nodest_conn=self.nodest,
            conn_reuse_old_conntrack=self.reuse_old_ct,
        )
        return decide(self.syn, self.entry, self.ct, sysctls, self.features, self.can_schedule)


def row(
    name: str, features: KernelFeatures, entry: ExistingEntry | None, outcome: Outcome, **kw: object
) -> object:
    return pytest.param(Row(features, entry, outcome, **kw), id=name)  # type: ignore[arg-type]


ALL_ERAS = [
    ("3.10", PRE_4_1),
    ("4.1", V4_1),
    ("4.19", V4_19),
    ("TencentOS", TOS),
    ("5.4", V5_4),
    ("5.9", V5_9),
    ("5.15", V5_15),
    ("5.16", V5_16),
    ("6.1", V6_1),
]

ROWS = [
    # --- every era: no entry, non-SYN, SYN on a live connection --------------------------
    *[
        row(f"{name} packet without an entry is scheduled", f, None, SCHED, ct=NEW)
        for name, f in ALL_ERAS
    ],
    *[
        row(
            f"{name} no entry and no schedulable server drops", f, None, NO_DEST, can_schedule=False
        )
        for name, f in ALL_ERAS
    ],
    *[
        row(
            f"{name} ACK on TIME_WAIT entry follows it even with weight 0",
            f,
            tcp(TW, weight=0),
            FWD,
            syn=False,
            nodest=1,
        )
        for name, f in ALL_ERAS
    ],
    *[
        row(f"{name} SYN on ESTABLISHED entry follows it", f, tcp(ES), FWD, ct=CONF)
        for name, f in ALL_ERAS
    ],
    *[
        row(f"{name} entry without a server is forwarded", f, tcp(ES, weight=None), FWD, nodest=1)
        for name, f in ALL_ERAS
    ],
    # --- before conn_reuse_mode (T-3x) ------------------------------------------------------
    row("3.10 SYN on TIME_WAIT follows the old entry", PRE_4_1, tcp(TW), FWD, ct=NEW),
    row(
        "3.10 SYN on TIME_WAIT with conntrack follows the old entry",
        PRE_4_1,
        tcp(TW, nfct=True),
        FWD,
        ct=CONF,
    ),
    row(
        "3.10 SYN on weight-0 server with expire_nodest_conn follows the old entry",
        PRE_4_1,
        tcp(TW, weight=0),
        FWD,
        nodest=1,
    ),
    row("3.10 SYN on DR FIN_WAIT follows the old entry", PRE_4_1, tcp(FW, no_output=True), FWD),
    row("3.10 removed server drops silently", PRE_4_1, tcp(ES, available=False), DROP_NODEST),
    row(
        "3.10 removed server with expire_nodest_conn drops and expires the entry",
        PRE_4_1,
        tcp(ES, available=False),
        DROP_NODEST,
        nodest=1,
        expire=True,
    ),
    row(
        "3.10 SYN on TIME_WAIT of removed server is dropped",
        PRE_4_1,
        tcp(TW, available=False),
        DROP_NODEST,
        nodest=1,
        expire=True,
    ),
    row(
        "3.10 ACK for removed server with expire_nodest_conn drops and expires",
        PRE_4_1,
        tcp(ES, available=False),
        DROP_NODEST,
        syn=False,
        nodest=1,
        expire=True,
    ),
    # --- 4.1: d752c364 only ------------------------------------------------------------------
    row("4.1 mode1 SYN on TIME_WAIT is rescheduled at once", V4_1, tcp(TW), RESCHED, expire=True),
    row(
        "4.1 mode1 conntrack TIME_WAIT is rescheduled without a drop",
        V4_1,
        tcp(TW, nfct=True),
        RESCHED,
        ct=NEW,
        expire=True,
    ),
    row(
        "4.1 mode1 confirmed conntrack TIME_WAIT is rescheduled without a drop",
        V4_1,
        tcp(TW, nfct=True),
        RESCHED,
        ct=CONF,
        expire=True,
    ),
    row("4.1 mode0 SYN on TIME_WAIT follows the old entry", V4_1, tcp(TW), FWD, mode=0),
    row("4.1 mode1 SYN on CLOSE follows the old entry", V4_1, tcp(CL), FWD),
    row("4.1 mode1 SYN on SYN_RECV follows the old entry", V4_1, tcp(SR), FWD),
    row("4.1 mode1 SYN on DR FIN_WAIT follows the old entry", V4_1, tcp(FW, no_output=True), FWD),
    row(
        "4.1 mode2 SYN on DR FIN_WAIT is rescheduled",
        V4_1,
        tcp(FW, no_output=True),
        RESCHED,
        mode=2,
        expire=True,
    ),
    row(
        "4.1 mode3 SYN on DR FIN_WAIT is rescheduled",
        V4_1,
        tcp(FW, no_output=True),
        RESCHED,
        mode=3,
        expire=True,
    ),
    row("4.1 mode2 SYN on NAT FIN_WAIT follows the old entry", V4_1, tcp(FW), FWD, mode=2),
    row("4.1 mode2 SYN on TIME_WAIT is rescheduled", V4_1, tcp(TW), RESCHED, mode=2, expire=True),
    row(
        "4.1 mode1 SYN on controlled TIME_WAIT follows the old entry",
        V4_1,
        tcp(TW, controlled=True),
        FWD,
    ),
    row(
        "4.1 mode1 SYN on TIME_WAIT controlling others is rescheduled but not expired",
        V4_1,
        tcp(TW, controls=True),
        RESCHED,
        ct=NEW,
    ),
    row(
        "4.1 mode1 expire_nodest_conn SYN on weight-0 server is rescheduled",
        V4_1,
        tcp(ES, weight=0),
        RESCHED,
        nodest=1,
        expire=True,
    ),
    row(
        "4.1 mode1 SYN on weight-0 server without expire_nodest_conn follows it",
        V4_1,
        tcp(ES, weight=0),
        FWD,
    ),
    row(
        "4.1 mode0 expire_nodest_conn SYN on weight-0 server follows it",
        V4_1,
        tcp(ES, weight=0),
        FWD,
        mode=0,
        nodest=1,
    ),
    row(
        "4.1 mode1 expire_nodest_conn weight-0 clause covers controlled entries",
        V4_1,
        tcp(ES, weight=0, controlled=True),
        RESCHED,
        nodest=1,
        expire=True,
    ),
    row(
        "4.1 SYN on TIME_WAIT of removed server is rescheduled by the reuse block",
        V4_1,
        tcp(TW, available=False),
        RESCHED,
        expire=True,
    ),
    row(
        "4.1 SYN on ESTABLISHED of removed server is dropped",
        V4_1,
        tcp(ES, available=False),
        DROP_NODEST,
    ),
    row(
        "4.1 expire_nodest_conn removed server drops and expires",
        V4_1,
        tcp(ES, available=False),
        DROP_NODEST,
        nodest=1,
        expire=True,
    ),
    row(
        "4.1 rescheduled SYN with no schedulable server drops after expiring",
        V4_1,
        tcp(TW),
        NO_DEST,
        can_schedule=False,
        expire=True,
    ),
    # d752c364: `case IPPROTO_SCTP: return cp->state == IP_VS_SCTP_S_CLOSED`, which is
    # 13 in the current machine (0 is NONE, a fresh entry).
    row(
        "4.1 SCTP INIT on CLOSED association is rescheduled",
        V4_1,
        tcp(SctpState.CLOSED, protocol=Protocol.SCTP),
        RESCHED,
        expire=True,
    ),
    row(
        "4.1 SCTP INIT on COOKIE_SENT association follows it",
        V4_1,
        tcp(SctpState.COOKIE_SENT, protocol=Protocol.SCTP),
        FWD,
    ),
    row(
        "4.1 SCTP INIT on a fresh (NONE) entry follows it",
        V4_1,
        tcp(SctpState.NONE, protocol=Protocol.SCTP),
        FWD,
    ),
    row(
        "4.1 SCTP INIT on ESTABLISHED association follows it",
        V4_1,
        tcp(SctpState.ESTABLISHED, protocol=Protocol.SCTP),
        FWD,
    ),
    row(
        "4.1 SCTP INIT on REJECTED entry follows it",
        V4_1,
        tcp(SctpState.REJECTED, protocol=Protocol.SCTP),
        FWD,
    ),
    row(
        "4.1 SCTP INIT on CLOSED but controlled entry follows it",
        V4_1,
        tcp(SctpState.CLOSED, controlled=True, protocol=Protocol.SCTP),
        FWD,
    ),
    row(
        "6.1 SCTP INIT on CLOSED with confirmed conntrack drops",
        V6_1,
        tcp(SctpState.CLOSED, protocol=Protocol.SCTP),
        DROP_SYN,
        ct=CONF,
        expire=True,
    ),
    row(
        "6.1 SCTP INIT on CLOSED with mode 0 follows it",
        V6_1,
        tcp(SctpState.CLOSED, protocol=Protocol.SCTP),
        FWD,
        mode=0,
    ),
    # RHEL 7 (d752c364 backported, original SCTP machine): the same comparison reads
    # the original enum, where CLOSED is 12 and 13 is past the last state.
    row(
        "RHEL7-like SCTP INIT on original-machine CLOSED is rescheduled",
        V4_19_OLD_SCTP,
        tcp(LegacySctpState.CLOSED, protocol=Protocol.SCTP),
        RESCHED,
        expire=True,
    ),
    row(
        "RHEL7-like SCTP INIT on original-machine ESTABLISHED follows it",
        V4_19_OLD_SCTP,
        tcp(LegacySctpState.ESTABLISHED, protocol=Protocol.SCTP),
        FWD,
    ),
    row(
        "RHEL7-like SCTP state 13 is no CLOSED there",
        V4_19_OLD_SCTP,
        tcp(SctpState.CLOSED, protocol=Protocol.SCTP),
        FWD,
    ),
    row(
        "current-machine SCTP state 12 (REJECTED) is no CLOSED",
        V4_1,
        tcp(LegacySctpState.CLOSED, protocol=Protocol.SCTP),
        FWD,
    ),
    # --- f719e3754 era (4.19, 5.4 mainline) -------------------------------------------------
    row(
        "4.19 mode1 no conntrack TIME_WAIT is rescheduled",
        V4_19,
        tcp(TW),
        RESCHED,
        ct=NEW,
        expire=True,
    ),
    row(
        "4.19 mode1 conntrack TIME_WAIT drops first SYN",
        V4_19,
        tcp(TW, nfct=True),
        DROP_SYN,
        ct=NEW,
        expire=True,
    ),
    row(
        "5.4 mode1 conntrack TIME_WAIT drops first SYN",
        V5_4,
        tcp(TW, nfct=True),
        DROP_SYN,
        ct=NEW,
        expire=True,
    ),
    row(
        "4.19 mode1 conntrack TIME_WAIT with confirmed ct drops first SYN",
        V4_19,
        tcp(TW, nfct=True),
        DROP_SYN,
        ct=CONF,
        expire=True,
    ),
    row(
        "4.19 mode1 NFCT entry but packet without ct is rescheduled",
        V4_19,
        tcp(TW, nfct=True),
        RESCHED,
        ct=NONE,
        expire=True,
    ),
    row(
        "4.19 mode1 confirmed ct but entry without NFCT is rescheduled",
        V4_19,
        tcp(TW),
        RESCHED,
        ct=CONF,
        expire=True,
    ),
    row("4.19 mode1 SYN on CLOSE is rescheduled", V4_19, tcp(CL), RESCHED, expire=True),
    row("T-f5ca mode1 SYN on CLOSE follows the old entry", F5CA, tcp(CL), FWD),
    row(
        "4.19 mode2 conntrack DR FIN_WAIT drops first SYN",
        V4_19,
        tcp(FW, no_output=True, nfct=True),
        DROP_SYN,
        ct=NEW,
        mode=2,
        expire=True,
    ),
    row(
        "4.19 mode1 conntrack DR FIN_WAIT follows the old entry",
        V4_19,
        tcp(FW, no_output=True, nfct=True),
        FWD,
        ct=NEW,
    ),
    row(
        "4.19 mode0 conntrack TIME_WAIT follows the old entry",
        V4_19,
        tcp(TW, nfct=True),
        FWD,
        ct=NEW,
        mode=0,
    ),
    row(
        "4.19 controlling conntrack TIME_WAIT keeps its server",
        V4_19,
        tcp(TW, controls=True, nfct=True),
        FWD,
        ct=NEW,
    ),
    row(
        "4.19 controlling TIME_WAIT without conntrack is rescheduled not expired",
        V4_19,
        tcp(TW, controls=True),
        RESCHED,
        ct=NEW,
    ),
    row(
        "4.19 controlled TIME_WAIT follows the old entry",
        V4_19,
        tcp(TW, controlled=True, nfct=True),
        FWD,
        ct=NEW,
    ),
    row(
        "4.19 expire_nodest_conn weight-0 conntrack drops first SYN",
        V4_19,
        tcp(ES, weight=0, nfct=True),
        DROP_SYN,
        ct=CONF,
        nodest=1,
        expire=True,
    ),
    row(
        "4.19 expire_nodest_conn weight-0 without conntrack is rescheduled",
        V4_19,
        tcp(ES, weight=0),
        RESCHED,
        ct=CONF,
        nodest=1,
        expire=True,
    ),
    row(
        "4.19 expire_nodest_conn weight-0 controlling conntrack drops without expiring",
        V4_19,
        tcp(ES, weight=0, controls=True, nfct=True),
        DROP_SYN,
        ct=NEW,
        nodest=1,
    ),
    row(
        "4.19 mode0 expire_nodest_conn weight-0 follows the old entry",
        V4_19,
        tcp(ES, weight=0, nfct=True),
        FWD,
        ct=NEW,
        mode=0,
        nodest=1,
    ),
    row(
        "4.19 weight-0 without expire_nodest_conn follows the old entry",
        V4_19,
        tcp(ES, weight=0),
        FWD,
        ct=NEW,
    ),
    row("4.19 removed server drops silently", V4_19, tcp(ES, available=False), DROP_NODEST, ct=NEW),
    row(
        "4.19 expire_nodest_conn removed server drops and expires",
        V4_19,
        tcp(ES, available=False),
        DROP_NODEST,
        ct=NEW,
        nodest=1,
        expire=True,
    ),
    row(
        "4.19 expire_nodest_conn removed server ACK drops and expires",
        V4_19,
        tcp(ES, available=False),
        DROP_NODEST,
        syn=False,
        ct=CONF,
        nodest=1,
        expire=True,
    ),
    row(
        "4.19 conntrack TIME_WAIT drop happens even without schedulable server",
        V4_19,
        tcp(TW, nfct=True),
        DROP_SYN,
        ct=NEW,
        can_schedule=False,
        expire=True,
    ),
    # --- TencentOS PR #17 -------------------------------------------------------------------
    row(
        "TencentOS conntrack TIME_WAIT reuses the old ct without a drop",
        TOS,
        tcp(TW, nfct=True),
        RESCHED,
        ct=NEW,
        expire=True,
        clear=True,
    ),
    row(
        "TencentOS confirmed conntrack TIME_WAIT reuses the old ct without a drop",
        TOS,
        tcp(TW, nfct=True),
        RESCHED,
        ct=CONF,
        expire=True,
        clear=True,
    ),
    row(
        "TencentOS conn_reuse_old_conntrack=0 drops first SYN",
        TOS,
        tcp(TW, nfct=True),
        DROP_SYN,
        ct=NEW,
        reuse_old_ct=0,
        expire=True,
    ),
    row(
        "TencentOS no conntrack TIME_WAIT is rescheduled without clearing NFCT",
        TOS,
        tcp(TW),
        RESCHED,
        ct=NEW,
        expire=True,
    ),
    row(
        "TencentOS controlling conntrack TIME_WAIT keeps its server",
        TOS,
        tcp(TW, controls=True, nfct=True),
        FWD,
        ct=NEW,
    ),
    row(
        "TencentOS weight-0 controlled conntrack entry drops first SYN",
        TOS,
        tcp(ES, weight=0, controlled=True, nfct=True),
        DROP_SYN,
        ct=NEW,
        nodest=1,
        expire=True,
    ),
    row(
        "TencentOS weight-0 controlling conntrack entry drops without expiring",
        TOS,
        tcp(ES, weight=0, controls=True, nfct=True),
        DROP_SYN,
        ct=NEW,
        nodest=1,
    ),
    row(
        "TencentOS weight-0 conntrack entry is rescheduled reusing the ct",
        TOS,
        tcp(ES, weight=0, nfct=True),
        RESCHED,
        ct=NEW,
        nodest=1,
        expire=True,
        clear=True,
    ),
    row(
        "TencentOS mode0 conntrack TIME_WAIT follows the old entry",
        TOS,
        tcp(TW, nfct=True),
        FWD,
        ct=NEW,
        mode=0,
    ),
    row(
        "TencentOS expire_nodest_conn removed server drops and expires",
        TOS,
        tcp(ES, available=False),
        DROP_NODEST,
        ct=NEW,
        nodest=1,
        expire=True,
    ),
    # --- 5.9 - 5.15: f0a5e4d7 + 04231e52 ---------------------------------------------------
    *[
        r
        for name, f in (("5.9", V5_9), ("5.15", V5_15))
        for r in (
            row(
                f"{name} mode1 reopened conntrack TIME_WAIT is rescheduled without a drop",
                f,
                tcp(TW, nfct=True),
                RESCHED,
                ct=NEW,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode1 confirmed conntrack TIME_WAIT drops first SYN",
                f,
                tcp(TW, nfct=True),
                DROP_SYN,
                ct=CONF,
                expire=True,
            ),
            row(
                f"{name} mode1 confirmed ct drops first SYN even without vs conntrack",
                f,
                tcp(TW),
                DROP_SYN,
                ct=CONF,
                expire=True,
            ),
            row(
                f"{name} mode1 TIME_WAIT without ct is rescheduled",
                f,
                tcp(TW),
                RESCHED,
                ct=NONE,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode1 SYN on CLOSE is rescheduled",
                f,
                tcp(CL),
                RESCHED,
                ct=NEW,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode2 SYN on DR FIN_WAIT is rescheduled",
                f,
                tcp(FW, no_output=True),
                RESCHED,
                ct=NEW,
                mode=2,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode1 SYN on DR FIN_WAIT follows the old entry",
                f,
                tcp(FW, no_output=True),
                FWD,
                ct=NEW,
            ),
            row(
                f"{name} mode0 SYN on TIME_WAIT follows the old entry",
                f,
                tcp(TW),
                FWD,
                ct=NEW,
                mode=0,
            ),
            row(
                f"{name} controlling TIME_WAIT with confirmed ct keeps its server",
                f,
                tcp(TW, controls=True),
                FWD,
                ct=CONF,
            ),
            row(
                f"{name} controlling TIME_WAIT with new ct is rescheduled not expired",
                f,
                tcp(TW, controls=True, nfct=True),
                RESCHED,
                ct=NEW,
                clear=True,
            ),
            row(
                f"{name} controlled TIME_WAIT follows the old entry",
                f,
                tcp(TW, controlled=True),
                FWD,
                ct=NEW,
            ),
            row(
                f"{name} mode1 expire_nodest_conn weight-0 is rescheduled",
                f,
                tcp(ES, weight=0),
                RESCHED,
                ct=NEW,
                nodest=1,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode1 expire_nodest_conn weight-0 confirmed ct drops first SYN",
                f,
                tcp(ES, weight=0),
                DROP_SYN,
                ct=CONF,
                nodest=1,
                expire=True,
            ),
            row(
                f"{name} mode0 expire_nodest_conn weight-0 follows the old entry",
                f,
                tcp(ES, weight=0),
                FWD,
                ct=NEW,
                mode=0,
                nodest=1,
            ),
            row(
                f"{name} mode1 weight-0 without expire_nodest_conn follows the old entry",
                f,
                tcp(ES, weight=0),
                FWD,
                ct=NEW,
            ),
            row(
                f"{name} removed server without expire_nodest_conn drops",
                f,
                tcp(ES, available=False),
                DROP_NODEST,
                ct=NEW,
            ),
            row(
                f"{name} expire_nodest_conn removed server ACK is rescheduled",
                f,
                tcp(ES, available=False),
                RESCHED,
                syn=False,
                ct=NEW,
                nodest=1,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} expire_nodest_conn removed server confirmed ct drops and expires",
                f,
                tcp(ES, available=False, nfct=True),
                DROP_NODEST,
                syn=False,
                ct=CONF,
                nodest=1,
                expire=True,
            ),
            row(
                f"{name} mode0 expire_nodest_conn removed server SYN is rescheduled",
                f,
                tcp(ES, available=False),
                RESCHED,
                ct=NEW,
                mode=0,
                nodest=1,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} expire_nodest_conn removed server without ct is rescheduled",
                f,
                tcp(ES, available=False),
                RESCHED,
                ct=NONE,
                nodest=1,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} removed server rescheduled with no schedulable server drops",
                f,
                tcp(ES, available=False),
                NO_DEST,
                ct=NEW,
                nodest=1,
                can_schedule=False,
                expire=True,
                clear=True,
            ),
        )
    ],
    # --- >= 5.16: c95c07836 -----------------------------------------------------------------
    *[
        r
        for name, f in (("5.16", V5_16), ("6.1", V6_1))
        for r in (
            row(
                f"{name} mode0 expire_nodest_conn weight-0 is rescheduled",
                f,
                tcp(ES, weight=0),
                RESCHED,
                ct=NEW,
                mode=0,
                nodest=1,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode0 expire_nodest_conn weight-0 TIME_WAIT is rescheduled",
                f,
                tcp(TW, weight=0),
                RESCHED,
                ct=NEW,
                mode=0,
                nodest=1,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode0 expire_nodest_conn weight-0 confirmed ct drops first SYN",
                f,
                tcp(ES, weight=0),
                DROP_SYN,
                ct=CONF,
                mode=0,
                nodest=1,
                expire=True,
            ),
            row(
                f"{name} mode0 expire_nodest_conn weight-0 controlled entry is rescheduled",
                f,
                tcp(ES, weight=0, controlled=True),
                RESCHED,
                ct=NEW,
                mode=0,
                nodest=1,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode0 weight-0 without expire_nodest_conn follows the old entry",
                f,
                tcp(TW, weight=0),
                FWD,
                ct=NEW,
                mode=0,
            ),
            row(
                f"{name} mode0 expire_nodest_conn healthy TIME_WAIT follows the old entry",
                f,
                tcp(TW),
                FWD,
                ct=NEW,
                mode=0,
                nodest=1,
            ),
            row(
                f"{name} mode1 weight-0 TIME_WAIT is rescheduled by state",
                f,
                tcp(TW, weight=0),
                RESCHED,
                ct=NEW,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode1 reopened conntrack TIME_WAIT is rescheduled",
                f,
                tcp(TW, nfct=True),
                RESCHED,
                ct=NEW,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode1 confirmed conntrack TIME_WAIT drops first SYN",
                f,
                tcp(TW, nfct=True),
                DROP_SYN,
                ct=CONF,
                expire=True,
            ),
            row(
                f"{name} mode1 SYN on CLOSE is rescheduled",
                f,
                tcp(CL),
                RESCHED,
                ct=NEW,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode3 SYN on DR FIN_WAIT is rescheduled",
                f,
                tcp(FW, no_output=True),
                RESCHED,
                ct=NEW,
                mode=3,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} mode1 controlling TIME_WAIT with confirmed ct keeps its server",
                f,
                tcp(TW, controls=True),
                FWD,
                ct=CONF,
            ),
            row(
                f"{name} expire_nodest_conn weight-0 controlling entry rescheduled unexpired",
                f,
                tcp(ES, weight=0, controls=True),
                RESCHED,
                ct=NEW,
                nodest=1,
                clear=True,
            ),
            row(
                f"{name} removed server without expire_nodest_conn drops",
                f,
                tcp(TW, available=False),
                DROP_NODEST,
                ct=NEW,
                mode=0,
            ),
            row(
                f"{name} expire_nodest_conn removed server is rescheduled",
                f,
                tcp(ES, available=False),
                RESCHED,
                ct=NEW,
                nodest=1,
                expire=True,
                clear=True,
            ),
            row(
                f"{name} expire_nodest_conn removed server confirmed ct drops",
                f,
                tcp(ES, available=False),
                DROP_NODEST,
                syn=False,
                ct=CONF,
                nodest=1,
                expire=True,
            ),
        )
    ],
]


@pytest.mark.parametrize("case", ROWS)
def test_reuse_decision(case: Row) -> None:
    decision = case.run()
    got = (decision.outcome, decision.expire_old, decision.clear_nfct)
    assert got == (case.outcome, case.expire, case.clear), decision.path


def test_row_ids_are_unique() -> None:
    ids = [p.id for p in ROWS]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids))


# --- the path explains itself with the commit behind the branch ------------------------------


def test_first_syn_drop_names_commit_f719e3754() -> None:
    d = decide(True, tcp(TW, nfct=True), NEW, Sysctls(), V4_19)
    assert d.outcome is DROP_SYN
    assert StepKind.USES_CONNTRACK in d.path
    assert "f719e3754ee2f727" in d.commits


def test_confirmed_conntrack_drop_names_commit_f0a5e4d7() -> None:
    d = decide(True, tcp(TW), CONF, Sysctls(), V5_9)
    assert d.outcome is DROP_SYN
    assert StepKind.OLD_CONNTRACK in d.path
    assert "f0a5e4d7a594e0fe" in d.commits


def test_weight0_reschedule_with_mode0_names_commit_c95c07836() -> None:
    sysctls = Sysctls(conn_reuse_mode=0, expire_nodest_conn=1)
    d = decide(True, tcp(ES, weight=0), NEW, sysctls, V6_1)
    assert d.outcome is RESCHED
    assert StepKind.WEIGHT0_CLAUSE in d.path
    assert "c95c07836fa4c176" in d.commits


def test_removed_server_reschedule_names_commit_04231e52() -> None:
    d = decide(False, tcp(ES, available=False), NEW, Sysctls(expire_nodest_conn=1), V5_9)
    assert d.outcome is RESCHED
    assert StepKind.NODEST_RESCHEDULE in d.path
    assert "04231e52d355" in d.commits


def test_tencentos_reuse_names_pr17() -> None:
    d = decide(True, tcp(TW, nfct=True), NEW, Sysctls(), TOS)
    assert StepKind.TOS_REUSE_OLD_CT in d.path
    assert "TencentOS PR #17" in d.commits


def test_sctp_closed_is_the_kernel_enum_value() -> None:
    """IP_VS_SCTP_S_CLOSED: 13 in the current enum, 12 in the original one."""
    assert (SCTP_CLOSED, LEGACY_SCTP_CLOSED) == (13, 12)


def test_pre_4_1_path_never_reaches_the_reuse_block() -> None:
    d = decide(True, tcp(TW, weight=0), NEW, Sysctls(expire_nodest_conn=1), PRE_4_1)
    assert d.outcome is FWD
    assert StepKind.PRE_REUSE_ERA in d.path
    assert not {StepKind.WEIGHT0_CLAUSE, StepKind.EXPECTED_REUSE} & set(d.path)


# --- era flags as mainline() reports them (section 1 summary table) ---------------------------


@pytest.mark.parametrize(
    ("version", "reuse_mode", "first_drop", "unconfirmed", "nodest", "any_mode"),
    [
        pytest.param((3, 10), False, False, False, False, False, id="3.10 has none"),
        pytest.param((4, 0), False, False, False, False, False, id="4.0 has no conn_reuse_mode"),
        pytest.param((4, 1), True, False, False, False, False, id="4.1 has d752c364 only"),
        pytest.param((5, 8), True, True, False, False, False, id="5.8 is the f719 era"),
        pytest.param((5, 9), True, True, True, True, False, id="5.9 adds f0a5e4d7 and 04231e52"),
        pytest.param((5, 15), True, True, True, True, False, id="5.15 lacks c95c07836"),
        pytest.param((5, 16), True, True, True, True, True, id="5.16 adds c95c07836"),
    ],
)
def test_mainline_era_features(
    version: tuple[int, int],
    reuse_mode: bool,
    first_drop: bool,
    unconfirmed: bool,
    nodest: bool,
    any_mode: bool,
) -> None:
    f = KernelFeatures.mainline(*version)
    assert (
        f.conn_reuse_mode,
        f.first_syn_drop,
        f.unconfirmed_conntrack_reuse,
        f.nodest_reschedule,
        f.weight0_reschedule_any_mode,
    ) == (reuse_mode, first_drop, unconfirmed, nodest, any_mode)
    assert not f.reuse_old_conntrack
