"""A docpost_now run waits for a burst to end (sendnow.settle), on a virtual clock."""

from __future__ import annotations

import datetime as dt

import pytest

from docpost.sendnow.settle import wait_for_quiet

T0 = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)


class Burst:
    """Registrations at the given seconds after T0; a clock that sleeping moves on."""

    def __init__(self, arrivals: list[float], start: float = 0.0) -> None:
        self.arrivals, self.t, self.sleeps = arrivals, start, []

    def last(self) -> dt.datetime | None:
        seen = [a for a in self.arrivals if a <= self.t]
        return T0 + dt.timedelta(seconds=max(seen)) if seen else None

    def now(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.t)

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.t += seconds

    def wait(self, quiet: float, at_most: float) -> float:
        return wait_for_quiet(self.last, quiet, at_most, now=self.now, clock=lambda: self.t, sleep=self.sleep)


def test_a_single_letter_waits_out_the_quiet_window_only():
    burst = Burst([0.0], start=1.0)
    assert burst.wait(quiet=5, at_most=60) == pytest.approx(4.0)


def test_nothing_registered_or_long_ago_does_not_wait():
    assert Burst([]).wait(quiet=5, at_most=60) == 0
    assert Burst([0.0], start=30.0).wait(quiet=5, at_most=60) == 0


def test_a_burst_is_waited_out_until_it_ends():
    arrivals = [i * 0.06 for i in range(1000)]  # 1,000 letters in a minute
    burst = Burst(arrivals, start=2.0)
    waited = burst.wait(quiet=5, at_most=120)
    assert burst.t >= arrivals[-1] + 5
    assert waited == pytest.approx(burst.t - 2.0) and waited < arrivals[-1] + 5 - 2.0 + 1.0
    assert max(burst.sleeps) <= 1.0  # it looks again at least every second


def test_an_endless_stream_waits_at_most_the_bound():
    arrivals = [i * 2.0 for i in range(1000)]  # a letter every 2 s, all day
    burst = Burst(arrivals, start=1.0)
    waited = burst.wait(quiet=5, at_most=60)
    assert 60 <= waited < 61


def test_no_settling_asked_returns_at_once():
    burst = Burst([i * 0.1 for i in range(100)], start=3.0)
    assert burst.wait(quiet=0, at_most=60) == 0
    assert burst.wait(quiet=5, at_most=0) == 0
