"""Rakuten sale calendar (crm_core.events.rakuten), checked against FACTS.md §6."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from crm_core.events import rakuten as events


@pytest.fixture(scope="module")
def y2026() -> pd.DataFrame:
    return events.rakuten_events(date(2026, 1, 1), date(2026, 12, 31))


def _one(df: pd.DataFrame, event_id: str) -> pd.Series:
    rows = df[df.event_id == event_id]
    assert len(rows) == 1, f"{event_id}: {len(rows)} rows"
    return rows.iloc[0]


def test_columns_and_types(y2026):
    assert list(y2026.columns) == list(events.COLUMNS)
    assert set(y2026.kind) == set(events.KINDS)
    assert set(y2026.status) <= {"confirmed", "pattern"}
    for col in ("starts_at", "ends_at", "entry_starts_at"):
        assert pd.api.types.is_datetime64_any_dtype(y2026[col])
    assert (y2026.ends_at > y2026.starts_at).all()
    assert y2026.event_id.is_unique
    assert y2026.source.notna().all()


def test_june_super_sale_is_a_pattern_row(y2026):
    row = _one(y2026, "super_sale-2026-06-04")
    assert row.kind == "super_sale"
    assert row["name"] == "楽天スーパーSALE 2026年6月"
    assert row.starts_at == pd.Timestamp("2026-06-04 20:00:00")
    assert row.ends_at == pd.Timestamp("2026-06-11 01:59:59")
    assert row.entry_starts_at == pd.Timestamp("2026-06-02 10:00:00")
    assert row.status == "pattern"


def test_super_sales_only_in_quarter_months(y2026):
    ss = y2026[y2026.kind == "super_sale"]
    assert sorted(ss.starts_at.dt.month) == [3, 6, 9, 12]
    assert set(ss.starts_at.dt.day) == {4}
    assert set(ss.ends_at.dt.day) == {11}


def test_confirmed_september_2025_super_sale():
    df = events.rakuten_events(date(2025, 9, 1), date(2025, 9, 30))
    ss = df[df.kind == "super_sale"]
    assert len(ss) == 1
    assert ss.iloc[0].status == "confirmed"
    assert ss.iloc[0].starts_at == pd.Timestamp("2025-09-04 20:00:00")


def test_confirmed_february_2026_marathons_replace_the_pattern(y2026):
    feb = y2026[(y2026.kind == "marathon") & (y2026.starts_at.dt.month == 2)]
    assert list(feb.event_id) == ["marathon-2026-02-04", "marathon-2026-02-19"]
    assert set(feb.status) == {"confirmed"}
    first = _one(y2026, "marathon-2026-02-04")
    assert first.ends_at == pd.Timestamp("2026-02-10 01:59:59")
    assert first.entry_starts_at == pd.Timestamp("2026-02-02 10:00:00")
    assert first["name"] == "お買い物マラソン 2026年2月前半"
    assert _one(y2026, "marathon-2026-02-19").ends_at == pd.Timestamp("2026-02-23 01:59:59")


@pytest.mark.parametrize(
    "month, starts",
    [
        pytest.param(5, ["2026-05-04 20:00", "2026-05-19 20:00"], id="no-super-sale-two-marathons"),
        pytest.param(6, ["2026-06-19 20:00"], id="super-sale-month-late-marathon-only"),
        pytest.param(12, ["2026-12-19 20:00"], id="december"),
    ],
)
def test_marathon_pattern(y2026, month, starts):
    rows = y2026[(y2026.kind == "marathon") & (y2026.starts_at.dt.month == month)]
    assert [str(t)[:16] for t in rows.starts_at] == starts
    assert set(rows.status) == {"pattern"}
    for r in rows.itertuples():
        assert r.starts_at.hour == 20
        assert (r.ends_at.hour, r.ends_at.minute, r.ends_at.second) == (1, 59, 59)
        assert r.entry_starts_at == (r.starts_at - pd.Timedelta(days=2)).normalize() + pd.Timedelta(hours=10)
        assert 4 <= (r.ends_at - r.starts_at).days <= 7


def test_sale_windows_never_overlap():
    df = events.rakuten_events(date(2025, 1, 1), date(2027, 12, 31))
    sales = df[df.kind.isin(events.SALE_KINDS)].sort_values("starts_at")
    assert (sales.starts_at.iloc[1:].to_numpy() > sales.ends_at.iloc[:-1].to_numpy()).all()


def test_wonderful_day_every_first(y2026):
    wd = y2026[y2026.kind == "wonderful_day"]
    assert [t.date() for t in wd.starts_at] == [date(2026, m, 1) for m in range(1, 13)]
    assert (wd.ends_at - wd.starts_at == pd.Timedelta(days=1) - pd.Timedelta(seconds=1)).all()
    assert _one(y2026, "wonderful_day-2026-03-01")["name"] == "ワンダフルデー 2026年3月1日"


def test_five_zero_days_including_february(y2026):
    fz = y2026[y2026.kind == "five_zero_day"]
    feb = sorted(t.day for t in fz.starts_at if t.month == 2)
    assert feb == [5, 10, 15, 20, 25]  # no 30th in February
    jan = sorted(t.day for t in fz.starts_at if t.month == 1)
    assert jan == [5, 10, 15, 20, 25, 30]
    assert len(fz) == 12 * 6 - 1
    assert (fz.starts_at.dt.hour == 0).all()


def test_range_keeps_overlapping_events_only():
    df = events.rakuten_events(date(2026, 6, 10), date(2026, 6, 10))
    assert set(df.event_id) == {"super_sale-2026-06-04", "five_zero_day-2026-06-10"}
    assert events.rakuten_events(date(2026, 6, 2), date(2026, 6, 1)).empty


def test_previous_month_events_only_while_running():
    # The generator looks one month back; December's late marathon ended on the 24th.
    df = events.rakuten_events(date(2026, 1, 1), date(2026, 1, 3))
    assert "wonderful_day-2026-01-01" in set(df.event_id)
    assert "marathon-2025-12-19" not in set(df.event_id)  # ended 12-24


def test_deterministic():
    a = events.rakuten_events(date(2025, 1, 1), date(2027, 12, 31))
    b = events.rakuten_events(date(2025, 1, 1), date(2027, 12, 31))
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    "moment, label",
    [
        pytest.param(datetime(2026, 6, 4, 19, 59, 59), None, id="before-super-sale"),
        pytest.param(datetime(2026, 6, 4, 20, 0, 0), "super_sale", id="super-sale-start"),
        pytest.param(datetime(2026, 6, 11, 1, 59, 59, 500000), "super_sale", id="super-sale-last-second"),
        pytest.param(datetime(2026, 6, 11, 2, 0, 0), None, id="super-sale-over"),
        pytest.param(datetime(2026, 2, 7, 12, 0), "marathon", id="confirmed-marathon"),
        pytest.param(datetime(2026, 6, 1, 12, 0), None, id="point-day-is-no-sale-window"),
    ],
)
def test_sale_timeline_labels(moment, label):
    timeline = events.sale_timeline(events.rakuten_events(date(2026, 1, 1), date(2026, 12, 31)))
    assert timeline[0] == (datetime.min, None)
    current = [lab for start, lab in timeline if start <= moment][-1]
    assert current == label
