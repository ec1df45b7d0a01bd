"""The one clock: JST whatever the server's zone, frozen only where a test asks."""

from __future__ import annotations

import datetime as dt
import threading

from crm_core import clock


def test_now_is_naive_jst_wall_clock():
    aware = clock.now_aware()
    assert aware.utcoffset() == dt.timedelta(hours=9)
    naive = clock.now()
    assert naive.tzinfo is None
    assert abs((naive - dt.datetime.now(dt.UTC).astimezone(clock.JST).replace(tzinfo=None)).total_seconds()) < 5


def test_frozen_sets_now_today_and_utc_inside_the_block_only():
    at = dt.datetime(2026, 11, 20, 0, 30)  # naive = JST: still the 19th in UTC
    with clock.frozen(at):
        assert clock.now() == at
        assert clock.today() == dt.date(2026, 11, 20)
        assert clock.now_utc() == dt.datetime(2026, 11, 19, 15, 30, tzinfo=dt.UTC)
    assert clock.now() != at


def test_frozen_does_not_leak_into_other_threads():
    seen: list[dt.datetime] = []
    with clock.frozen(dt.datetime(2020, 1, 1)):
        t = threading.Thread(target=lambda: seen.append(clock.now()))
        t.start()
        t.join()
    assert seen[0].year >= 2026
