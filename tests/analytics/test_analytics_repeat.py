"""F2 / F3 conversion with the cohort-age rule, days to the second purchase, new vs repeat revenue."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crm_core.analytics import repeat
from crm_core.db import Store
from tests.analytics_shop import add_order, assert_table, frame

NA = pd.NA
AS_OF = dt.date(2026, 4, 5)


@pytest.fixture
def shop():
    """Eight customers; every order ¥1,000 unless noted.

    A: Jan 10, Jan 25 (+15), Feb 20 (+41)      B: Jan 31, Mar 10 (+38)
    C: Jan 5 only                             D: Jan 20 twice on the same day (¥1,000 + ¥500)
    E: Feb 10, Feb 20 (+10)                   F: Mar 1, Mar 5 (+4)
    G: Jan 15 cancelled, Jan 22               H: Jan 3, Apr 6 (after as_of)
    """
    s = Store(":memory:")
    for oid, cid, day, amount, cancelled in [
        ("a1", "A", "2026-01-10", 1000, False),
        ("a2", "A", "2026-01-25", 1000, False),
        ("a3", "A", "2026-02-20", 1000, False),
        ("b1", "B", "2026-01-31", 1000, False),
        ("b2", "B", "2026-03-10", 1000, False),
        ("c1", "C", "2026-01-05", 1000, False),
        ("d1", "D", "2026-01-20 10:00:00", 1000, False),
        ("d2", "D", "2026-01-20 15:00:00", 500, False),
        ("e1", "E", "2026-02-10", 1000, False),
        ("e2", "E", "2026-02-20", 1000, False),
        ("f1", "F", "2026-03-01", 1000, False),
        ("f2", "F", "2026-03-05", 1000, False),
        ("g0", "G", "2026-01-15", 1000, True),
        ("g1", "G", "2026-01-22", 1000, False),
        ("h1", "H", "2026-01-03", 1000, False),
        ("h2", "H", "2026-04-06", 1000, False),
    ]:
        add_order(s, oid, cid, day, amount, cancelled=cancelled)
    yield s
    s.close()


CONV_COLUMNS = ["cohort_month", "window_days", "customers", "mature", "f2_customers", "f2_rate", "f3_customers", "f3_rate"]
JAN, FEB, MAR = dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)


def test_repeat_conversion_by_first_purchase_month(shop):
    expected = frame(
        [
            # January: A, B, C, D, G (G's cancelled order does not make it a repeater).
            (JAN, 30, 6, True, 1, 1 / 6, 0, 0.0),  # A (+15); H joined in January too
            (JAN, 60, 6, True, 2, 2 / 6, 1, 0.5),  # A (+15), B (+38); A's third at +41
            (JAN, 90, 6, False, NA, NA, NA, NA),  # Jan 31 + 90 days is after Apr 5
            (FEB, 30, 1, True, 1, 1.0, 0, 0.0),  # E (+10)
            (FEB, 60, 1, False, NA, NA, NA, NA),
            (FEB, 90, 1, False, NA, NA, NA, NA),
            (MAR, 30, 1, False, NA, NA, NA, NA),  # Mar 31 + 30 days is after Apr 5
            (MAR, 60, 1, False, NA, NA, NA, NA),
            (MAR, 90, 1, False, NA, NA, NA, NA),
        ],
        CONV_COLUMNS,
    )
    assert_table(repeat.repeat_conversion(shop, AS_OF, windows=(30, 60, 90), cohorts=12), expected)


@pytest.mark.parametrize(
    ("as_of", "window", "mature"),
    [
        ("2026-03-02", 30, True),  # Jan 31 + 30 days = Mar 2: the last January customer has had 30 days
        ("2026-03-01", 30, False),
        ("2026-04-01", 60, True),
        ("2026-03-31", 60, False),
    ],
    ids=["30d-exactly-old-enough", "30d-one-day-short", "60d-exactly-old-enough", "60d-one-day-short"],
)
def test_cohort_age_rule(shop, as_of, window, mature):
    df = repeat.repeat_conversion(shop, as_of, windows=(window,), cohorts=12)
    row = df[df["cohort_month"] == JAN].iloc[0]
    assert bool(row["mature"]) is mature
    assert pd.isna(row["f2_rate"]) is (not mature)


def test_cohorts_parameter_limits_the_months(shop):
    df = repeat.repeat_conversion(shop, AS_OF, windows=(30,), cohorts=2)  # March and April only
    assert list(df["cohort_month"]) == [MAR]


def test_repeat_conversion_summary_pools_mature_cohorts(shop):
    conv = repeat.repeat_conversion(shop, AS_OF, windows=(30, 60, 90), cohorts=12)
    expected = frame(
        [
            (30, 2, 7, 2, 2 / 7, 0, 0.0),
            (60, 1, 6, 2, 2 / 6, 1, 0.5),
            (90, 0, 0, 0, NA, 0, NA),
        ],
        ["window_days", "cohorts", "customers", "f2_customers", "f2_rate", "f3_customers", "f3_rate"],
    )
    assert_table(repeat.repeat_conversion_summary(conv), expected)


def test_days_to_second_purchase_distribution(shop):
    # Gaps: A 15, B 38, E 10, F 4 (H's second purchase is after as_of; D's two orders are one day).
    expected = frame(
        [(1, 30, 3, 0.75, 0.75), (31, 60, 1, 0.25, 1.0), (61, 90, 0, 0.0, 1.0), (91, NA, 0, 0.0, 1.0)],
        ["bin_start", "bin_end", "customers", "share", "cumulative_share"],
    )
    assert_table(repeat.days_to_second_purchase(shop, AS_OF, bin_days=30, max_days=90), expected)


def test_second_purchase_stats(shop):
    stats = repeat.second_purchase_stats(shop, AS_OF)
    assert stats == {
        "customers": 8,
        "repeat_customers": 4,
        "repeat_share": 0.5,
        "median_days": 12.5,
        "mean_days": 16.75,
    }


def test_revenue_new_vs_repeat(shop):
    expected = frame(
        [
            # January new: A, B, C, D (two orders), G, H; repeat: A's second.
            (JAN, "新規", 7, 6, 6500.0, 6500 / 7500),
            (JAN, "リピート", 1, 1, 1000.0, 1000 / 7500),
            (FEB, "新規", 1, 1, 1000.0, 1 / 3),
            (FEB, "リピート", 2, 2, 2000.0, 2 / 3),
            (MAR, "新規", 1, 1, 1000.0, 1 / 3),
            (MAR, "リピート", 2, 2, 2000.0, 2 / 3),
            (dt.date(2026, 4, 1), "新規", 0, 0, 0.0, float("nan")),
            (dt.date(2026, 4, 1), "リピート", 0, 0, 0.0, float("nan")),
        ],
        ["month", "customer_type", "orders", "customers", "revenue", "revenue_share"],
    )
    assert_table(repeat.revenue_new_vs_repeat(shop, AS_OF, months=6), expected)


def test_empty_store_gives_empty_tables():
    s = Store(":memory:")
    assert repeat.repeat_conversion(s, AS_OF).empty
    assert repeat.days_to_second_purchase(s, AS_OF).empty
    assert repeat.revenue_new_vs_repeat(s, AS_OF).empty
    assert repeat.second_purchase_stats(s, AS_OF)["median_days"] is None
