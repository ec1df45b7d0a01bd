"""A step's coupon: one unique code per customer, valid for ``valid_days`` from that customer's send (issue 15, item 3).

The clock is injected (``now=``): the send time of a step is its day and slot (JST), never the machine's time.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from crm_core.errors import InputError
from crm_core.messaging import ledger as L
from crm_core.scenarios import definitions as D
from crm_core.scenarios import engine
from tests.test_scenarios import _occurrences, at, busy_day, shop  # noqa: F401 - the fixture


def _codes(store, coupon_id):
    return store.fetchall("SELECT customer_id, code, valid_to FROM coupon_codes WHERE coupon_id = ? ORDER BY created_at, code",
                          [coupon_id])


def _body(ops, campaign_id, customer_id):
    row = ops.execute("SELECT content_id FROM send_ledger WHERE campaign_id = ? AND customer_id = ?", [campaign_id, customer_id]).fetchone()
    return json.dumps(L.load_content(ops, row[0]), ensure_ascii=False)


def test_f2_codes_are_unique_and_valid_for_14_days_from_each_send(shop):  # noqa: F811
    store, ops, _ = shop
    engine.enable(store, ops, "f2")
    assert D.get(ops, "f2").steps[0].coupon["valid_days"] == 14
    day = busy_day(store, ops, "f2")
    engine.record(store, ops, day, now=at(day, 13))
    later = day + dt.timedelta(days=1)
    engine.record(store, ops, later, now=at(later, 13))
    coupon_id = D.get(ops, "f2").steps[0].coupon["coupon_id"]
    codes = _codes(store, coupon_id)
    occ = _occurrences(ops, scenario="f2", state="queued")
    assert len(codes) == len(occ) > 0 and len({c for _, c, _ in codes}) == len(codes)
    by_customer = {cid: (code, valid_to) for cid, code, valid_to in codes}
    for r in occ.itertuples():
        sent_on = dt.date.fromisoformat(r.day)  # slot 12:00 JST on the run day
        code, valid_to = by_customer[r.customer_id]
        assert valid_to == dt.datetime.combine(sent_on + dt.timedelta(days=14), dt.time(23, 59)), r
        body = _body(ops, r.campaign_id, r.customer_id)
        assert code in body
        assert f"{valid_to.year}年{valid_to.month}月{valid_to.day}日 23:59まで" in body
    # the codes go out with their own expiry
    from crm_core.messaging import coupons

    export = coupons.export_codes(store, coupon_id)
    assert set(export["有効期限"]) == {coupons.expiry_label(v) for _, _, v in codes}


def test_dry_run_shows_the_expiry_the_code_will_have(shop):  # noqa: F811
    store, ops, _ = shop
    engine.enable(store, ops, "f2")
    day = busy_day(store, ops, "f2")
    dry = engine.dry_run(store, ops, day, names=["f2"])
    sample = dry["steps"][0]["samples"][0]
    end = day + dt.timedelta(days=14)
    assert f"{end.year}年{end.month}月{end.day}日 23:59まで" in sample["text"]


def test_birthday_code_of_last_year_expires_and_a_new_one_is_issued(shop):  # noqa: F811
    store, ops, _ = shop
    engine.enable(store, ops, "birthday")
    coupon_id = D.get(ops, "birthday").steps[0].coupon["coupon_id"]
    nov1 = dt.date(2026, 11, 1)
    engine.record(store, ops, nov1, now=at(nov1, 11))
    first = {cid: (code, vt) for cid, code, vt in _codes(store, coupon_id)}
    assert first and {vt for _, vt in first.values()} == {dt.datetime(2026, 12, 1, 23, 59)}  # 30 days from 11/1 10:00
    engine.record(store, ops, nov1, now=at(nov1, 15))  # a second run of the day issues nothing new
    assert len(_codes(store, coupon_id)) == len(first)
    next_year = dt.date(2027, 11, 1)
    engine.record(store, ops, next_year, now=at(next_year, 11))
    rows = _codes(store, coupon_id)
    again = {cid for cid, _, vt in rows if vt == dt.datetime(2027, 12, 1, 23, 59)}
    sent = set(_occurrences(ops, scenario="birthday", state="queued", day=next_year.isoformat()).customer_id)
    assert sent & set(first) and again == sent  # every customer of this year, with a code valid 30 days from this send
    for cid in again & set(first):
        new_code = next(code for c, code, vt in rows if c == cid and vt.year == 2027)
        assert new_code != first[cid][0]


@pytest.mark.parametrize("bad", [0, 400, "十"])
def test_valid_days_is_checked_with_a_japanese_message(bad):
    spec = {"name": "x", "title": "x", "trigger": {"type": "first_order"},
            "steps": [{"day": 1, "template": "winback", "coupon": {"name": "c", "kind": "yen", "value": 500, "valid_days": bad}}]}
    with pytest.raises(InputError) as e:
        D.parse(spec)
    assert "有効日数" in str(e.value)
