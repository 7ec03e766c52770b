"""The IPVS SCTP state machine, its chunk map, timeouts, /proc names and counters.

Expected values are transcribed from net/netfilter/ipvs/ip_vs_proto_sctp.c:
the current machine from torvalds/linux 0a4fd6ce9246 (same tables in
kernel-patches/bpf 63533010fdd0), the original one (2906f66a5682) from a 3.4-based
tree (CyanogenMod/android_kernel_htc_msm8974) and a RHEL 7.3-era tree
(halfline/rhel7). Never from the model's own output.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvslab.kernel.packet import Direction
from ipvslab.kernel.sctp_states import (
    DEFAULT_SCTP_TIMEOUTS,
    LEGACY_DEFAULT_SCTP_TIMEOUTS,
    LEGACY_SCTP_STATE_NAMES,
    SCTP_ACTIVE_STATES,
    SCTP_STATE_NAMES,
    LegacySctpState,
    SctpChunk,
    SctpEvent,
    SctpState,
    event_for_chunk,
    is_active,
    legacy_event_for_chunk,
    legacy_is_active,
    legacy_next_state,
    next_state,
    state_name,
    step,
)
from ipvslab.kernel.tcp_states import StateTable

SECOND = 1000
MINUTE = 60 * SECOND

S = SctpState
E = SctpEvent
C = SctpChunk
IN, OUT = Direction.INPUT, Direction.OUTPUT

# --- the kernel's grid, cell by cell --------------------------------------------------
# Two-letter codes for the kernel's sNO..sCL, columns in kernel state order.
_CODES = {
    "NO": S.NONE,
    "I1": S.INIT1,
    "IN": S.INIT,
    "CS": S.COOKIE_SENT,
    "CR": S.COOKIE_REPLIED,
    "CW": S.COOKIE_WAIT,
    "CO": S.COOKIE,
    "CE": S.COOKIE_ECHOED,
    "ES": S.ESTABLISHED,
    "SS": S.SHUTDOWN_SENT,
    "SR": S.SHUTDOWN_RECEIVED,
    "SA": S.SHUTDOWN_ACK_SENT,
    "RJ": S.REJECTED,
    "CL": S.CLOSED,
}
_COLUMNS = ["NO", "I1", "IN", "CS", "CR", "CW", "CO", "CE", "ES", "SS", "SR", "SA", "RJ", "CL"]
_GRID = {
    StateTable.INPUT: {
        E.DATA: "ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL",
        E.INIT: "I1 IN IN CS CR CW CO CE ES SS SR SA IN IN",
        E.INIT_ACK: "CW CW CW CS CR CO CO CE ES SS SR SA RJ CL",
        E.COOKIE_ECHO: "CR IN IN CR CR CW CO CE ES SS SR SA RJ CL",
        E.COOKIE_ACK: "ES I1 IN CS CR CW CO ES ES SS SR SA RJ CL",
        E.SHUTDOWN: "SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL",
        E.SHUTDOWN_ACK: "CL IN IN CS CR CW CO CE ES CL SR CL RJ CL",
        E.SHUTDOWN_COMPLETE: "CL CL CL CS CR CW CO CE ES SS SR CL RJ CL",
        E.ERROR: "CL I1 IN CS CR CW CO CL ES SS SR SA RJ CL",
        E.ABORT: "CL CL CL CL CL RJ CL CL CL CL CL CL CL CL",
    },
    StateTable.OUTPUT: {
        E.DATA: "ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL",
        E.INIT: "CW CW CW CW CW CW CW CW ES CW CW CW CW CW",
        E.INIT_ACK: "CS CS CS CS CR CW CO CE ES SS SR SA RJ CL",
        E.COOKIE_ECHO: "CE CE CE CE CE CE CE CE ES SS SR SA RJ CL",
        E.COOKIE_ACK: "ES ES ES ES ES ES ES ES ES SS SR SA RJ CL",
        E.SHUTDOWN: "SS SS SS SS SS SS SS SS SS SS SR SA RJ CL",
        E.SHUTDOWN_ACK: "SA SA SA SA SA CW CO CE ES SA SA SA RJ CL",
        E.SHUTDOWN_COMPLETE: "CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL",
        E.ERROR: "CL CL CL CL CL CW CO CE ES SS SR SA RJ CL",
        E.ABORT: "CL RJ CL CL CL CL CL CL CL CL CL CL CL CL",
    },
    StateTable.INPUT_ONLY: {
        E.DATA: "ES I1 IN CS CR ES CO CE ES SS SR SA RJ CL",
        E.INIT: "I1 IN IN IN IN IN CO CE ES SS SR SA IN IN",
        E.INIT_ACK: "CE CE CE CE CE CE CO CE ES SS SR SA RJ CL",
        E.COOKIE_ECHO: "ES ES ES ES ES ES CO CE ES SS SR SA RJ CL",
        E.COOKIE_ACK: "ES I1 IN ES ES CW ES ES ES SS SR SA RJ CL",
        E.SHUTDOWN: "SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL",
        E.SHUTDOWN_ACK: "CL IN IN CS CR CW CO CE CL CL SR CL RJ CL",
        E.SHUTDOWN_COMPLETE: "CL CL CL CL CL CW CO CE ES SS CL CL RJ CL",
        E.ERROR: "CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL",
        E.ABORT: "CL CL CL CL CL RJ CL CL CL CL CL CL CL CL",
    },
}
_CELLS = [
    pytest.param(table, event, _CODES[col], _CODES[cell], id=f"{table.name}-{event.name}-{col}")
    for table, rows in _GRID.items()
    for event, row in rows.items()
    for col, cell in zip(_COLUMNS, row.split(), strict=True)
]


def test_grid_covers_every_cell() -> None:
    assert len(_CELLS) == len(StateTable) * len(SctpEvent) * len(SctpState) == 420


@pytest.mark.parametrize(("table", "event", "state", "expected"), _CELLS)
def test_every_cell_matches_the_kernel(
    table: StateTable, event: SctpEvent, state: SctpState, expected: SctpState
) -> None:
    assert next_state(state, event, table) is expected


# --- enum order, names, timeouts ---------------------------------------------------------


def test_states_in_kernel_order() -> None:
    assert [s.value for s in SctpState] == list(range(14))
    assert [s.name for s in SctpState][:3] == ["NONE", "INIT1", "INIT"]
    assert SctpState.ESTABLISHED == 8
    assert SctpState.CLOSED == 13  # what decision.py must compare against once SCTP is wired


def test_events_in_kernel_order() -> None:
    assert [e.name for e in SctpEvent] == [
        "DATA",
        "INIT",
        "INIT_ACK",
        "COOKIE_ECHO",
        "COOKIE_ACK",
        "SHUTDOWN",
        "SHUTDOWN_ACK",
        "SHUTDOWN_COMPLETE",
        "ERROR",
        "ABORT",
    ]


PROC_NAMES = [
    (S.NONE, "NONE"),
    (S.INIT1, "INIT1"),
    (S.INIT, "INIT"),
    (S.COOKIE_SENT, "C-SENT"),
    (S.COOKIE_REPLIED, "C-REPLIED"),
    (S.COOKIE_WAIT, "C-WAIT"),
    (S.COOKIE, "COOKIE"),
    (S.COOKIE_ECHOED, "C-ECHOED"),
    (S.ESTABLISHED, "ESTABLISHED"),
    (S.SHUTDOWN_SENT, "S-SENT"),
    (S.SHUTDOWN_RECEIVED, "S-RECEIVED"),
    (S.SHUTDOWN_ACK_SENT, "S-ACK-SENT"),
    (S.REJECTED, "REJECTED"),
    (S.CLOSED, "CLOSED"),
]


@pytest.mark.parametrize(("state", "name"), PROC_NAMES)
def test_proc_names(state: SctpState, name: str) -> None:
    assert SCTP_STATE_NAMES[state] == name
    assert state_name(int(state)) == name
    assert len(name) <= 11  # /proc/net/ip_vs_conn pads the state column to 11


@pytest.mark.parametrize("state", [14, 15, 255, 1000, -1])
def test_out_of_range_state_prints_err(state: int) -> None:
    # sctp_state_name() checks state >= IP_VS_SCTP_S_LAST before the table, so the
    # table's "BUG!" slot is never printed.
    assert state_name(state) == "ERR!"


MAX_RTO = 61 * SECOND
TIMEOUTS = [
    (S.NONE, 2 * SECOND),
    (S.INIT1, 4 * SECOND),
    (S.INIT, MAX_RTO),
    (S.COOKIE_SENT, MAX_RTO),
    (S.COOKIE_REPLIED, MAX_RTO),
    (S.COOKIE_WAIT, MAX_RTO),
    (S.COOKIE, MAX_RTO),
    (S.COOKIE_ECHOED, MAX_RTO),
    (S.ESTABLISHED, 15 * MINUTE),
    (S.SHUTDOWN_SENT, MAX_RTO),
    (S.SHUTDOWN_RECEIVED, MAX_RTO),
    (S.SHUTDOWN_ACK_SENT, MAX_RTO),
    (S.REJECTED, 4 * SECOND),
    (S.CLOSED, MAX_RTO),
]


@pytest.mark.parametrize(("state", "ms"), TIMEOUTS)
def test_default_timeouts(state: SctpState, ms: int) -> None:
    assert DEFAULT_SCTP_TIMEOUTS[state] == ms


def test_timeout_table_is_complete() -> None:
    assert set(DEFAULT_SCTP_TIMEOUTS) == set(SctpState)
    assert set(SCTP_STATE_NAMES) == set(SctpState)


# --- chunk type -> event ------------------------------------------------------------------

CHUNK_EVENTS = [
    (C.DATA, E.DATA),
    (C.INIT, E.INIT),
    (C.INIT_ACK, E.INIT_ACK),
    (C.SACK, E.DATA),
    (C.HEARTBEAT, E.DATA),
    (C.HEARTBEAT_ACK, E.DATA),
    (C.ABORT, E.ABORT),
    (C.SHUTDOWN, E.SHUTDOWN),
    (C.SHUTDOWN_ACK, E.SHUTDOWN_ACK),
    (C.ERROR, E.ERROR),
    (C.COOKIE_ECHO, E.COOKIE_ECHO),
    (C.COOKIE_ACK, E.COOKIE_ACK),
    (C.ECNE, E.DATA),
    (C.CWR, E.DATA),
    (C.SHUTDOWN_COMPLETE, E.SHUTDOWN_COMPLETE),
]


@pytest.mark.parametrize(("chunk", "event"), CHUNK_EVENTS)
def test_chunk_to_event(chunk: SctpChunk, event: SctpEvent) -> None:
    assert event_for_chunk(chunk) is event


@pytest.mark.parametrize("chunk", [15, 64, 128, 192, 193, 0x80, 0xC1, 255])
def test_chunks_past_the_map_are_data(chunk: int) -> None:
    # FORWARD-TSN (192), ASCONF (193), AUTH (15), I-DATA (64)... all fall past
    # the end of sctp_events[] and count as DATA.
    assert event_for_chunk(chunk) is E.DATA


@pytest.mark.parametrize("first", [C.COOKIE_ECHO, C.COOKIE_ACK])
def test_abort_bundled_after_cookie_counts_as_abort(first: SctpChunk) -> None:
    assert event_for_chunk(first, C.ABORT) is E.ABORT
    assert event_for_chunk(first, C.DATA) is event_for_chunk(first)
    assert event_for_chunk(first, None) is event_for_chunk(first)


@pytest.mark.parametrize("first", [C.DATA, C.SACK, C.SHUTDOWN, C.INIT, C.ERROR])
def test_abort_lookahead_only_after_cookie_chunks(first: SctpChunk) -> None:
    assert event_for_chunk(first, C.ABORT) is event_for_chunk(first)


@pytest.mark.parametrize(("chunk", "nxt"), [(-1, None), (256, None), (C.COOKIE_ECHO, 256)])
def test_chunk_types_are_eight_bit(chunk: int, nxt: int | None) -> None:
    with pytest.raises(ValueError):
        event_for_chunk(chunk, nxt)


# --- what a user sees: whole exchanges ----------------------------------------------------


def run(
    packets: list[tuple[Direction, int, int | None]], no_output: bool = False
) -> list[SctpState]:
    """Feed (direction, chunk, next chunk) packets through step(); the states."""
    state = S.NONE
    seen = []
    for direction, chunk, nxt in packets:
        result = step(state, chunk, direction, no_output, nxt)
        if result.clear_no_output:
            no_output = False
        state = result.state
        seen.append(state)
    return seen


def test_nat_client_setup_reaches_established() -> None:
    assert run(
        [
            (IN, C.INIT, None),
            (OUT, C.INIT_ACK, None),
            (IN, C.COOKIE_ECHO, None),
            (OUT, C.COOKIE_ACK, None),
            (IN, C.DATA, None),
            (OUT, C.SACK, None),
        ]
    ) == [S.INIT1, S.COOKIE_SENT, S.COOKIE_REPLIED, S.ESTABLISHED, S.ESTABLISHED, S.ESTABLISHED]


def test_nat_retransmitted_init_moves_to_init() -> None:
    assert run([(IN, C.INIT, None), (IN, C.INIT, None), (OUT, C.INIT_ACK, None)]) == [
        S.INIT1,
        S.INIT,
        S.COOKIE_SENT,
    ]


def test_dr_client_setup_reaches_established_on_cookie_echo() -> None:
    # INPUT-ONLY: the client's COOKIE-ECHO implies the INIT-ACK it answers.
    assert run([(IN, C.INIT, None), (IN, C.COOKIE_ECHO, None)], no_output=True) == [
        S.INIT1,
        S.ESTABLISHED,
    ]


def test_dr_setup_with_data_bundled_in_cookie_echo_still_established() -> None:
    assert run([(IN, C.INIT, None), (IN, C.COOKIE_ECHO, C.DATA)], no_output=True)[-1] is (
        S.ESTABLISHED
    )


def test_server_initiated_setup_reaches_established() -> None:
    assert run(
        [
            (OUT, C.INIT, None),
            (IN, C.INIT_ACK, None),
            (OUT, C.COOKIE_ECHO, None),
            (IN, C.COOKIE_ACK, None),
        ]
    ) == [S.COOKIE_WAIT, S.COOKIE, S.COOKIE_ECHOED, S.ESTABLISHED]


def established(no_output: bool = False) -> list[tuple[Direction, int, int | None]]:
    if no_output:
        return [(IN, C.INIT, None), (IN, C.COOKIE_ECHO, None)]
    return [
        (IN, C.INIT, None),
        (OUT, C.INIT_ACK, None),
        (IN, C.COOKIE_ECHO, None),
        (OUT, C.COOKIE_ACK, None),
    ]


def test_nat_client_shutdown_reaches_closed() -> None:
    tail = run(
        [
            *established(),
            (IN, C.SHUTDOWN, None),
            (OUT, C.SHUTDOWN_ACK, None),
            (IN, C.SHUTDOWN_COMPLETE, None),
        ]
    )[-3:]
    assert tail == [S.SHUTDOWN_RECEIVED, S.SHUTDOWN_ACK_SENT, S.CLOSED]


def test_nat_server_shutdown_reaches_closed() -> None:
    tail = run(
        [
            *established(),
            (OUT, C.SHUTDOWN, None),
            (IN, C.SHUTDOWN_ACK, None),
            (OUT, C.SHUTDOWN_COMPLETE, None),
        ]
    )[-3:]
    assert tail == [S.SHUTDOWN_SENT, S.CLOSED, S.CLOSED]


def test_dr_client_shutdown_reaches_closed() -> None:
    tail = run(
        [*established(no_output=True), (IN, C.SHUTDOWN, None), (IN, C.SHUTDOWN_COMPLETE, None)],
        no_output=True,
    )[-2:]
    assert tail == [S.SHUTDOWN_RECEIVED, S.CLOSED]


def test_dr_shutdown_ack_from_client_closes() -> None:
    # The server's SHUTDOWN is unseen; the client's SHUTDOWN-ACK ends it.
    tail = run([*established(no_output=True), (IN, C.SHUTDOWN_ACK, None)], no_output=True)
    assert tail[-1] is S.CLOSED


@pytest.mark.parametrize("direction", [IN, OUT])
def test_abort_on_established_closes(direction: Direction) -> None:
    assert run([*established(), (direction, C.ABORT, None)])[-1] is S.CLOSED


def test_server_abort_of_first_init_is_rejected() -> None:
    assert run([(IN, C.INIT, None), (OUT, C.ABORT, None)]) == [S.INIT1, S.REJECTED]
    assert DEFAULT_SCTP_TIMEOUTS[S.REJECTED] == 4 * SECOND


def test_abort_after_retransmitted_init_is_closed() -> None:
    assert run([(IN, C.INIT, None), (IN, C.INIT, None), (OUT, C.ABORT, None)])[-1] is S.CLOSED


def test_client_abort_of_server_init_is_rejected() -> None:
    assert run([(OUT, C.INIT, None), (IN, C.ABORT, None)]) == [S.COOKIE_WAIT, S.REJECTED]


def test_abort_bundled_after_cookie_echo_closes() -> None:
    assert run([(IN, C.INIT, None), (OUT, C.INIT_ACK, None), (IN, C.COOKIE_ECHO, C.ABORT)])[-1] is (
        S.CLOSED
    )


@pytest.mark.parametrize("table", list(StateTable))
def test_sloppy_mid_association_packet_is_established(table: StateTable) -> None:
    # sloppy_sctp=1 lets any chunk create an entry; DATA on NONE means ESTABLISHED.
    assert next_state(S.NONE, E.DATA, table) is S.ESTABLISHED


@pytest.mark.parametrize("table", list(StateTable))
def test_init_on_established_is_ignored(table: StateTable) -> None:
    # An association restart is not tracked: the entry stays ESTABLISHED.
    assert next_state(S.ESTABLISHED, E.INIT, table) is S.ESTABLISHED


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (StateTable.INPUT, S.INIT),
        (StateTable.INPUT_ONLY, S.INIT),
        (StateTable.OUTPUT, S.COOKIE_WAIT),
    ],
)
def test_init_on_closed_entry(table: StateTable, expected: SctpState) -> None:
    # With conn_reuse_mode an INIT on CLOSED is rescheduled before this runs; without
    # it the old entry is reused and restarts its setup.
    assert next_state(S.CLOSED, E.INIT, table) is expected


@pytest.mark.parametrize("table", list(StateTable))
@pytest.mark.parametrize("event", [e for e in SctpEvent if e is not SctpEvent.INIT])
def test_closed_only_leaves_on_init(table: StateTable, event: SctpEvent) -> None:
    assert next_state(S.CLOSED, event, table) is S.CLOSED


@pytest.mark.parametrize("table", list(StateTable))
@pytest.mark.parametrize("event", [e for e in SctpEvent if e not in (E.INIT, E.ABORT)])
def test_rejected_holds_until_init_or_abort(table: StateTable, event: SctpEvent) -> None:
    assert next_state(S.REJECTED, event, table) is S.REJECTED
    assert next_state(S.REJECTED, E.ABORT, table) is S.CLOSED


# --- step(): direction folding and the no-chunk case ---------------------------------


def test_step_output_on_nooutput_entry_clears_flag_and_uses_output_table() -> None:
    result = step(S.INIT1, C.INIT_ACK, OUT, no_output=True)
    assert result.table is StateTable.OUTPUT
    assert result.clear_no_output
    assert result.state is S.COOKIE_SENT


def test_step_input_on_nooutput_entry_uses_input_only() -> None:
    result = step(S.INIT1, C.COOKIE_ECHO, IN, no_output=True)
    assert result.table is StateTable.INPUT_ONLY
    assert not result.clear_no_output
    assert result.state is S.ESTABLISHED


def test_step_input_without_nooutput_uses_input() -> None:
    result = step(S.INIT1, C.COOKIE_ECHO, IN, no_output=False)
    assert result.table is StateTable.INPUT
    assert result.state is S.INIT


@pytest.mark.parametrize("direction", [IN, OUT])
def test_step_without_chunk_changes_nothing(direction: Direction) -> None:
    # set_sctp_state() returns before touching the flag, the state or the timeout.
    result = step(S.ESTABLISHED, None, direction, no_output=True)
    assert result == (S.ESTABLISHED, None, None, False)


# --- ActiveConn / InActConn -----------------------------------------------------------------


def test_only_established_is_active() -> None:
    assert {S.ESTABLISHED} == SCTP_ACTIVE_STATES
    assert [s for s in SctpState if is_active(s)] == [S.ESTABLISHED]


def counters(packets: list[tuple[Direction, int, int | None]]) -> list[tuple[int, int]]:
    """set_sctp_state()'s counter logic on a bound server, after ip_vs_bind_dest()
    counted the new entry as inactive; (active, inactive) after each packet."""
    active, inactive, flag_inactive, state = 0, 1, True, S.NONE
    out = []
    for direction, chunk, nxt in packets:
        new = step(state, chunk, direction, False, nxt).state
        if new != state:
            if not flag_inactive and not is_active(new):
                active, inactive, flag_inactive = active - 1, inactive + 1, True
            elif flag_inactive and is_active(new):
                active, inactive, flag_inactive = active + 1, inactive - 1, False
        state = new
        out.append((active, inactive))
    return out


def test_counters_move_only_entering_and_leaving_established() -> None:
    assert counters(
        [
            *established(),
            (IN, C.DATA, None),
            (IN, C.SHUTDOWN, None),
            (OUT, C.SHUTDOWN_ACK, None),
            (IN, C.SHUTDOWN_COMPLETE, None),
        ]
    ) == [(0, 1), (0, 1), (0, 1), (1, 0), (1, 0), (0, 1), (0, 1), (0, 1)]


def test_rejected_association_never_counts_active() -> None:
    assert counters([(IN, C.INIT, None), (OUT, C.ABORT, None)]) == [(0, 1), (0, 1)]


# --- totality ----------------------------------------------------------------------------------


@given(
    st.sampled_from(list(SctpState)),
    st.sampled_from(list(SctpEvent)),
    st.sampled_from(list(StateTable)),
)
def test_next_state_is_total(state: SctpState, event: SctpEvent, table: StateTable) -> None:
    assert isinstance(next_state(state, event, table), SctpState)


@given(
    st.sampled_from(list(SctpState)),
    st.one_of(st.none(), st.integers(0, 255)),
    st.sampled_from(list(Direction)),
    st.booleans(),
    st.one_of(st.none(), st.integers(0, 255)),
)
def test_step_is_total(
    state: SctpState, chunk: int | None, direction: Direction, no_output: bool, nxt: int | None
) -> None:
    result = step(int(state), chunk, direction, no_output, nxt)
    assert isinstance(result.state, SctpState)
    assert result.clear_no_output == (chunk is not None and no_output and direction is OUT)


@given(st.lists(st.tuples(st.sampled_from(list(Direction)), st.integers(0, 255)), max_size=30))
def test_any_chunk_sequence_stays_in_range(packets: list[tuple[Direction, int]]) -> None:
    for state in run([(d, c, None) for d, c in packets]):
        assert 0 <= state < len(SctpState)
        assert DEFAULT_SCTP_TIMEOUTS[state] > 0


# --- the original machine (2906f66a5682) -------------------------------------------------

L = LegacySctpState


def legacy_run(packets: list[tuple[Direction, int]]) -> list[LegacySctpState]:
    state = L.NONE
    seen = []
    for direction, chunk in packets:
        state = legacy_next_state(state, legacy_event_for_chunk(chunk), direction)
        seen.append(state)
    return seen


def test_legacy_setup_and_shutdown() -> None:
    assert legacy_run(
        [
            (IN, C.INIT),
            (OUT, C.INIT_ACK),
            (IN, C.COOKIE_ECHO),
            (OUT, C.COOKIE_ACK),
            (IN, C.DATA),
            (IN, C.SHUTDOWN),
            (OUT, C.SHUTDOWN_ACK),
            (IN, C.SHUTDOWN_COMPLETE),
        ]
    ) == [
        L.INIT_CLI,
        L.INIT_ACK_SER,
        L.ECHO_CLI,
        L.ESTABLISHED,
        L.ESTABLISHED,
        L.SHUT_CLI,
        L.SHUT_ACK_SER,
        L.CLOSED,
    ]


def test_legacy_dr_never_established() -> None:
    # No input-only table: without the server's INIT-ACK the client's COOKIE-ECHO
    # closes the entry.
    assert legacy_run([(IN, C.INIT), (IN, C.COOKIE_ECHO)]) == [L.INIT_CLI, L.CLOSED]


def test_legacy_data_without_setup_closes() -> None:
    assert legacy_next_state(L.NONE, E.DATA, IN) is L.CLOSED


def test_legacy_error_chunk_is_data() -> None:
    assert legacy_event_for_chunk(C.ERROR) is E.DATA
    assert legacy_event_for_chunk(200) is E.DATA


def test_legacy_bundled_abort_lookahead_as_in_3_10_trees() -> None:
    """RHEL 7.3 (halfline/rhel7) and a 3.10 Android tree byte-swap the chunk length,
    so COOKIE-ECHO/COOKIE-ACK followed by ABORT counts as ABORT there too."""
    assert legacy_event_for_chunk(C.COOKIE_ECHO, C.ABORT) is E.ABORT
    assert legacy_event_for_chunk(C.COOKIE_ACK, C.ABORT) is E.ABORT
    assert legacy_event_for_chunk(C.COOKIE_ECHO, C.DATA) is E.COOKIE_ECHO
    assert legacy_event_for_chunk(C.DATA, C.ABORT) is E.DATA
    with pytest.raises(ValueError):
        legacy_event_for_chunk(C.COOKIE_ECHO, 256)


@pytest.mark.parametrize(
    ("state", "name", "ms"),
    [
        (L.NONE, "NONE", 2 * SECOND),
        (L.INIT_CLI, "INIT_CLI", MINUTE),
        (L.INIT_SER, "INIT_SER", MINUTE),
        (L.INIT_ACK_CLI, "INIT_ACK_CLI", MINUTE),
        (L.INIT_ACK_SER, "INIT_ACK_SER", MINUTE),
        (L.ECHO_CLI, "COOKIE_ECHO_CLI", MINUTE),
        (L.ECHO_SER, "COOKIE_ECHO_SER", MINUTE),
        (L.ESTABLISHED, "ESTABISHED", 15 * MINUTE),
        (L.SHUT_CLI, "SHUTDOWN_CLI", MINUTE),
        (L.SHUT_SER, "SHUTDOWN_SER", MINUTE),
        (L.SHUT_ACK_CLI, "SHUTDOWN_ACK_CLI", MINUTE),
        (L.SHUT_ACK_SER, "SHUTDOWN_ACK_SER", MINUTE),
        (L.CLOSED, "CLOSED", 10 * SECOND),
    ],
)
def test_legacy_names_and_timeouts(state: LegacySctpState, name: str, ms: int) -> None:
    assert LEGACY_SCTP_STATE_NAMES[state] == name
    assert LEGACY_DEFAULT_SCTP_TIMEOUTS[state] == ms


def test_legacy_only_established_is_active() -> None:
    assert [s for s in LegacySctpState if legacy_is_active(s)] == [L.ESTABLISHED]


@given(
    st.sampled_from(list(LegacySctpState)),
    st.sampled_from(list(SctpEvent)),
    st.sampled_from(list(Direction)),
)
def test_legacy_next_state_is_total(
    state: LegacySctpState, event: SctpEvent, direction: Direction
) -> None:
    assert isinstance(legacy_next_state(state, event, direction), LegacySctpState)
