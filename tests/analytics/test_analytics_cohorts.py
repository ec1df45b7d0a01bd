"""Cohort retention and cumulative revenue per customer, by month, quarter and acquisition event."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_core.analytics import cohorts
from crm_core.db import Store
from tests.analytics_shop import add_model, add_order, assert_table, frame

AS_OF = dt.date(2026, 3, 20)
JAN, FEB, MAR = dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)
COLUMNS = [
    "months_since_first",
    "customers",
    "eligible_customers",
    "active_customers",
    "retention",
    "revenue",
    "revenue_per_customer",
    "cumulative_revenue_per_customer",
    "partial",
]


@pytest.fixture
def shop():
    """January: A (¥1,000 × Jan 5, Feb 10, Mar 3), B (¥2,000 × Jan 20, Mar 15), C (¥3,000 Jan 25).
    February: D (¥1,500 × Feb 2, Mar 1), E (¥500 Feb 14).  March: F (¥800 Mar 10).
    Cancelled: A on Jan 28 (¥9,000), X's only order (Jan 8).  After as_of: C on Mar 25.
    """
    s = Store(":memory:")
    for oid, cid, day, amount, cancelled in [
        ("a1", "A", "2026-01-05", 1000, False),
        ("a2", "A", "2026-02-10", 1000, False),
        ("a3", "A", "2026-03-03", 1000, False),
        ("a9", "A", "2026-01-28", 9000, True),
        ("b1", "B", "2026-01-20", 2000, False),
        ("b2", "B", "2026-03-15", 2000, False),
        ("c1", "C", "2026-01-25", 3000, False),
        ("c2", "C", "2026-03-25", 3000, False),
        ("d1", "D", "2026-02-02", 1500, False),
        ("d2", "D", "2026-03-01", 1500, False),
        ("e1", "E", "2026-02-14", 500, False),
        ("f1", "F", "2026-03-10", 800, False),
        ("x1", "X", "2026-01-08", 5000, True),
    ]:
        add_order(s, oid, cid, day, amount, cancelled=cancelled)
    yield s
    s.close()


def test_monthly_cohort_retention(shop):
    expected = frame(
        [
            (JAN, 0, 3, 3, 3, 1.0, 6000.0, 2000.0, 2000.0, False),
            (JAN, 1, 3, 3, 1, 1 / 3, 1000.0, 1000 / 3, 7000 / 3, False),
            (JAN, 2, 3, 3, 2, 2 / 3, 3000.0, 1000.0, 10000 / 3, True),  # March is still running
            (FEB, 0, 2, 2, 2, 1.0, 2000.0, 1000.0, 1000.0, False),
            (FEB, 1, 2, 2, 1, 0.5, 1500.0, 750.0, 1750.0, True),
            (MAR, 0, 1, 1, 1, 1.0, 800.0, 800.0, 800.0, True),
        ],
        ["cohort_start", *COLUMNS],
    )
    assert_table(cohorts.cohort_retention(shop, AS_OF, unit="month", cohorts=12, max_months=12), expected)


def test_partial_flag_clears_at_month_end(shop):
    df = cohorts.cohort_retention(shop, dt.date(2026, 3, 31), unit="month")
    assert not df["partial"].any()


def test_max_months_and_cohorts_limit_the_table(shop):
    df = cohorts.cohort_retention(shop, AS_OF, unit="month", cohorts=2, max_months=0)
    assert list(zip(df["cohort_start"], df["months_since_first"], strict=True)) == [(FEB, 0), (MAR, 0)]


def test_quarter_cohort_counts_only_members_whose_month_has_begun(shop):
    # One Q1 cohort of six; month 1 is observable for the January and February members (5),
    # month 2 only for the January members (3).
    expected = frame(
        [
            (JAN, 0, 6, 6, 6, 1.0, 8800.0, 8800 / 6, 8800 / 6, True),
            (JAN, 1, 6, 5, 2, 0.4, 2500.0, 500.0, 2100.0, True),
            (JAN, 2, 6, 3, 2, 2 / 3, 3000.0, 1000.0, 10000 / 3, True),
        ],
        ["cohort_start", *COLUMNS],
    )
    assert_table(cohorts.cohort_retention(shop, AS_OF, unit="quarter", cohorts=4), expected)


def test_ltv_curves_is_the_cumulative_view(shop):
    df = cohorts.ltv_curves(shop, AS_OF, unit="month", cohorts=12, max_months=12)
    assert list(df.columns) == [
        "cohort_start",
        "months_since_first",
        "customers",
        "eligible_customers",
        "cumulative_revenue_per_customer",
        "partial",
    ]
    jan = df[df["cohort_start"] == JAN]["cumulative_revenue_per_customer"].tolist()
    assert jan == pytest.approx([2000.0, 7000 / 3, 10000 / 3])


@pytest.mark.parametrize(
    ("share", "months"),
    [(1.0, [0]), (0.8, [0, 1]), (0.5, [0, 1, 2])],
    ids=["whole-cohort", "five-of-six", "half"],
)
def test_ltv_curves_keep_months_enough_members_have_reached(shop, share, months):
    # Q1 cohort of 6: month 0 all 6, month 1 five, month 2 three.
    df = cohorts.ltv_curves(shop, AS_OF, unit="quarter", cohorts=4, min_eligible_share=share)
    assert list(df["months_since_first"]) == months


def test_event_cohort_retention(shop):
    add_model(
        shop,
        [
            {"customer_id": "A", "acquisition_event": "スーパーSALE"},
            {"customer_id": "B", "acquisition_event": "スーパーSALE"},
            {"customer_id": "C", "acquisition_event": "通常"},
            {"customer_id": "D", "acquisition_event": "通常"},
            {"customer_id": "E", "acquisition_event": "通常"},
        ],
    )
    expected = frame(
        [
            ("スーパーSALE", 0, 2, 2, 2, 1.0, 3000.0, 1500.0, 1500.0, False),
            ("スーパーSALE", 1, 2, 2, 1, 0.5, 1000.0, 500.0, 2000.0, False),
            ("スーパーSALE", 2, 2, 2, 2, 1.0, 3000.0, 1500.0, 3500.0, True),
            ("不明", 0, 1, 1, 1, 1.0, 800.0, 800.0, 800.0, True),  # F is missing from the model
            ("通常", 0, 3, 3, 3, 1.0, 5000.0, 5000 / 3, 5000 / 3, False),
            ("通常", 1, 3, 3, 1, 1 / 3, 1500.0, 500.0, 6500 / 3, True),  # D in March
            ("通常", 2, 3, 1, 0, 0.0, 0.0, 0.0, 3000.0, True),  # only C (January) has a month 2
        ],
        ["acquisition_event", *COLUMNS],
    )
    assert_table(cohorts.event_cohort_retention(shop, AS_OF, max_months=12, lookback_months=24), expected)


def test_event_cohorts_need_the_customer_model(shop):
    assert cohorts.event_cohort_retention(shop, AS_OF).empty


def test_unknown_unit_is_refused(shop):
    from crm_core.errors import InputError

    with pytest.raises(InputError):
        cohorts.cohort_retention(shop, AS_OF, unit="week")
