"""Subscription continuation by delivery count and by month."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_core.analytics import subscription
from crm_core.db import Store
from tests.analytics_shop import add_order, assert_table, frame

AS_OF = dt.date(2026, 6, 30)  # with 45 days of grace, deliveries after May 16 are pending


@pytest.fixture
def shop():
    """S1: 4 deliveries Jan–Apr 10.  S2: Mar 5, Apr 5.  S3: Jan 20.
    S4: Apr 20, May 20, Jun 20 (pending).  S5: Jun 1 (pending).
    S6: Feb 1, Mar 1 without delivery numbers.  S7: Jan 15, then a cancelled 2nd delivery.
    A non-subscription order and a delivery after as_of complete the picture.
    """
    s = Store(":memory:")
    deliveries = [
        ("S1", 1, "2026-01-10"),
        ("S1", 2, "2026-02-10"),
        ("S1", 3, "2026-03-10"),
        ("S1", 4, "2026-04-10"),
        ("S2", 1, "2026-03-05"),
        ("S2", 2, "2026-04-05"),
        ("S3", 1, "2026-01-20"),
        ("S4", 1, "2026-04-20"),
        ("S4", 2, "2026-05-20"),
        ("S4", 3, "2026-06-20"),
        ("S5", 1, "2026-06-01"),
        ("S6", None, "2026-02-01"),
        ("S6", None, "2026-03-01"),
        ("S7", 1, "2026-01-15"),
        ("S5", 2, "2026-07-01"),  # after as_of
    ]
    for i, (sub, seq, day) in enumerate(deliveries):
        add_order(s, f"o{i}", f"cust-{sub}", day, 4980, subscription=(sub, seq))
    add_order(s, "cancel", "cust-S7", "2026-02-15", 4980, cancelled=True, subscription=("S7", 2))
    add_order(s, "plain", "cust-S1", "2026-02-11", 3000)
    yield s
    s.close()


def test_continuation_by_delivery(shop):
    expected = frame(
        [
            (1, 7, 4, 1, 6, 4 / 6, 1.0),  # S5 stopped at 1 only 29 days ago: pending
            (2, 4, 2, 0, 4, 0.5, 4 / 6),
            (3, 2, 1, 1, 1, 1.0, 2 / 6),  # S4 is pending at its 3rd delivery
            (4, 1, 0, 0, 1, 0.0, 2 / 6),
        ],
        ["delivery", "subscriptions", "continued", "pending", "eligible", "continuation_rate", "survival"],
    )
    assert_table(subscription.continuation_by_delivery(shop, AS_OF, max_deliveries=12, grace_days=45), expected)


def test_max_deliveries_cuts_the_table(shop):
    df = subscription.continuation_by_delivery(shop, AS_OF, max_deliveries=2)
    assert list(df["delivery"]) == [1, 2]


@pytest.mark.parametrize(
    ("grace", "pending_first"),
    [(45, 1), (0, 0), (40, 1), (29, 0)],
    ids=["45-days", "no-grace", "40-days", "29-days"],
)
def test_grace_days_decide_what_is_pending(shop, grace, pending_first):
    df = subscription.continuation_by_delivery(shop, AS_OF, grace_days=grace)
    assert df.loc[df["delivery"] == 1, "pending"].item() == pending_first


def test_continuation_by_month(shop):
    nan = float("nan")
    m = [dt.date(2026, k, 1) for k in range(1, 7)]
    expected = frame(
        [
            (m[0], 3, 3, 0, 0, nan),  # S1, S3, S7 start
            (m[1], 4, 1, 3, 0, 1.0),  # S6 starts
            (m[2], 5, 1, 4, 0, 1.0),  # S2 starts
            (m[3], 4, 1, 3, 2, 0.6),  # S4 starts; S3 and S7 ended in March
            (m[4], 3, 0, 3, 1, 0.75),  # S6 ended in April
            (m[5], 2, 1, 1, 2, 1 / 3),  # S5 starts; S1 and S2 ended in May
        ],
        ["month", "active", "new", "continued", "ended", "continuation_rate"],
    )
    assert_table(subscription.continuation_by_month(shop, AS_OF, months=6, grace_days=45), expected)


def test_without_subscriptions_everything_is_empty():
    s = Store(":memory:")
    add_order(s, "o1", "A", "2026-01-01", 1000)
    assert not subscription.has_subscriptions(s)
    assert subscription.continuation_by_delivery(s, AS_OF).empty
    assert subscription.continuation_by_month(s, AS_OF).empty
