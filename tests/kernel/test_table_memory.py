"""The connection table's timer wheel: lazy re-arming and compaction never lose a timer.

The kernel arms one timer per entry (mod_timer() on every state change,
ip_vs_conn_expire() when it fires). The table files a key per entry in a
one-second slot and moves it on lazily; re-arming to an earlier time files the
key again and leaves a stale one behind, and stale keys are compacted away.
These tests drive ConnectionTable directly against a model of per-entry timers:
every entry must come out of due() at exactly its expiry, in expiry order, and
no slot may hold more stale keys than the compaction bound allows.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvslab.kernel.connection import IN_HEAP, Connection, ConnectionTable

KEYS = list(range(1, 13))
# Offsets from now for new expiries: inside this second, across seconds, far.
OFFSETS = [0, 1, 2, 499, 999, 1000, 1001, 1999, 2000, 3000, 10_000, 60_000, 120_000, 900_000]
STEPS = [0, 1, 2, 250, 500, 998, 999, 1000, 1001, 2500, 10_000, 60_000, 900_000]


def check_structure(table: ConnectionTable) -> None:
    """Every live entry has its one live timer where it must be; stale keys are bounded."""
    entries = table.entries
    heap_keys: dict[int, list[int]] = {}
    for expires, key in table._heap:
        heap_keys.setdefault(key, []).append(expires)
    for key, conn in entries.items():
        slot = conn.timer
        assert slot is not None, f"entry {key} has no timer"
        if slot is IN_HEAP:
            assert any(e <= conn.expires for e in heap_keys.get(key, [])), key
        else:
            assert table._buckets.get(slot.bucket) is slot, key
            assert slot.bucket > table._current, key
            assert slot.bucket <= conn.expires // table.BUCKET_MS, "filed after its expiry"
            assert key in slot.keys, key
    for slot in table._buckets.values():
        stale = [k for k in slot.keys if k not in entries or entries[k].timer is not slot]
        assert len(stale) <= max(table.compact_min_stale - 1, len(slot.keys) // 2), (
            f"slot {slot.bucket}: {len(stale)} stale keys of {len(slot.keys)}"
        )


def run(ops: list[tuple[object, ...]], compact_min_stale: int) -> None:
    table = ConnectionTable(compact_min_stale=compact_min_stale)
    model: dict[int, int] = {}  # key -> expires: one kernel timer per entry
    conns: dict[int, Connection] = {}
    now = 0
    for op in ops:
        kind = op[0]
        if kind == "insert":
            key, offset, armed = op[1], op[2], op[3]
            assert isinstance(key, int) and isinstance(offset, int)
            if key in model:
                table.remove(key)
            conn = Connection(None, 0, 0, now + 3000)
            if armed:
                conn.expires = now + offset
                table.insert(key, conn)
            else:
                # ipvs.py: hash first, arm after the first state change.
                table.insert(key, conn, arm=False)
                table.set_expires(key, conn, now + offset)
            model[key] = now + offset
            conns[key] = conn
        elif kind == "set" and op[1] in model:
            key, offset = op[1], op[2]
            assert isinstance(key, int) and isinstance(offset, int)
            table.set_expires(key, conns[key], now + offset)
            model[key] = now + offset
        elif kind == "arm" and op[1] in model:
            key, offset = op[1], op[2]
            assert isinstance(key, int) and isinstance(offset, int)
            table.arm(key, now + offset)
            model[key] = now + offset
        elif kind == "remove" and op[1] in model:
            key = op[1]
            assert isinstance(key, int)
            assert table.remove(key) is conns.pop(key)
            del model[key]
        elif kind == "wait":
            step = op[1]
            assert isinstance(step, int)
            now += step
            fired = []
            for key, conn in table.due(now):
                fired.append((conn.expires, key))
                table.remove(key)
            # Exactly the timers due by now (so none fired early, and since every
            # earlier call fired all that were due then, none late).
            want = sorted((e, k) for k, e in model.items() if e <= now)
            assert sorted(fired) == want, f"at {now}: fired {fired}, due {want}"
            assert [e for e, _ in fired] == sorted(e for e, _ in fired), "out of order"
            for _, key in fired:
                del model[key]
                conns.pop(key)
        check_structure(table)
        assert {k: c.expires for k, c in table.entries.items()} == model


op = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from(KEYS), st.sampled_from(OFFSETS), st.booleans()),
    st.tuples(st.just("set"), st.sampled_from(KEYS), st.sampled_from(OFFSETS)),
    st.tuples(st.just("set"), st.sampled_from(KEYS), st.sampled_from(OFFSETS)),
    st.tuples(st.just("arm"), st.sampled_from(KEYS), st.sampled_from(OFFSETS)),
    st.tuples(st.just("remove"), st.sampled_from(KEYS)),
    st.tuples(st.just("wait"), st.sampled_from(STEPS)),
    st.tuples(st.just("wait"), st.sampled_from(STEPS)),
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(ops=st.lists(op, min_size=1, max_size=120), compact_min_stale=st.sampled_from([1, 2, 64]))
def test_every_timer_fires_at_its_exact_time(
    ops: list[tuple[object, ...]], compact_min_stale: int
) -> None:
    run(ops, compact_min_stale)


def test_a_later_expiry_leaves_one_key_and_moves_it_on() -> None:
    """SYN_RECV (60 s) then ESTABLISHED (15 min): one key, moved when 60 s is reached."""
    table = ConnectionTable()
    conns = {}
    for key in range(1, 1001):
        conn = conns[key] = Connection(None, 0, 0, 3000)
        table.insert(key, conn, arm=False)
        table.set_expires(key, conn, 60_000)
        table.set_expires(key, conn, 900_000)
    assert sum(len(s.keys) for s in table._buckets.values()) == 1000
    assert list(table._buckets) == [60]
    assert not list(table.due(60_500))
    assert list(table._buckets) == [900]
    assert sum(len(s.keys) for s in table._buckets.values()) == 1000
    fired = [key for key, _ in table.due(900_000)]
    assert sorted(fired) == list(range(1, 1001))


def test_an_earlier_expiry_refiles_and_stale_keys_are_compacted() -> None:
    """ESTABLISHED then CLOSE (10 s): the 15-minute keys go stale and are dropped."""
    table = ConnectionTable(compact_min_stale=64)
    conns = {}
    for key in range(1, 1001):
        conn = conns[key] = Connection(None, 0, 0, 3000)
        table.insert(key, conn, arm=False)
        table.set_expires(key, conn, 900_000)
    for key in range(1, 1001):
        table.set_expires(key, conns[key], 10_000)
    slot = table._buckets[900]
    assert len(slot.keys) < 64, "stale keys were not compacted"
    assert len(table._buckets[10].keys) == 1000
    fired = [key for key, _ in table.due(10_000)]
    assert sorted(fired) == list(range(1, 1001))


def test_removed_entries_leave_no_more_than_half_a_slot_stale() -> None:
    table = ConnectionTable(compact_min_stale=8)
    for key in range(1, 201):
        table.insert(key, Connection(None, 0, 0, 5_000))
    for key in range(1, 191):
        table.remove(key)
    assert len(table._buckets[5].keys) <= 20
    assert sorted(k for k, _ in table.due(5_000)) == list(range(191, 201))


def test_a_timer_pushed_on_in_its_last_second_fires_at_its_new_time() -> None:
    """The key is already in the heap of the current second when the entry is re-armed."""
    table = ConnectionTable()
    later = Connection(None, 0, 0, 0)
    sooner = Connection(None, 0, 0, 0)
    table.insert(1, later, arm=False)
    table.set_expires(1, later, 1_999)
    table.insert(2, sooner, arm=False)
    table.set_expires(2, sooner, 1_900)
    assert not list(table.due(1_001))  # second 1 is current: both keys are in the heap
    assert later.timer is IN_HEAP and sooner.timer is IN_HEAP
    table.set_expires(1, later, 2_000)  # pushed on, into the next second
    table.set_expires(2, sooner, 1_500)  # pulled in, within this second
    assert [k for k, _ in table.due(1_499)] == []
    assert [k for k, _ in table.due(1_500)] == [2]
    assert [k for k, _ in table.due(1_999)] == []
    assert [k for k, _ in table.due(2_000)] == [1]
    assert len(table.entries) == 2  # due() leaves removal to the caller
