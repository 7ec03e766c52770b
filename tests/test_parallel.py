"""parallel.in_processes: Ctrl-C comes out as KeyboardInterrupt whatever it lands in."""

from __future__ import annotations

import os
import signal

import pytest

from ipvslab.parallel import in_processes


def _swallows_the_interrupt(item: int) -> int:
    # As polars does when Ctrl-C lands while it converts a value: the KeyboardInterrupt
    # raised inside becomes a TypeError.
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1_000_000):
            pass
    except KeyboardInterrupt:
        raise TypeError("'<unprintable str object>' is not a Polars data type") from None
    return item


def test_ctrl_c_swallowed_by_a_library_is_still_an_interrupt_not_its_error() -> None:
    with pytest.raises(KeyboardInterrupt):
        list(in_processes(_swallows_the_interrupt, [1, 2], jobs=1))
    # And the handler is put back: Ctrl-C after the loop is the usual KeyboardInterrupt.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_error_without_ctrl_c_is_that_error() -> None:
    def fails(item: int) -> int:
        raise ValueError(f"bad {item}")

    with pytest.raises(ValueError, match="bad 1"):
        list(in_processes(fails, [1], jobs=1))
