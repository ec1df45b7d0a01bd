"""Coupons: definitions, a million unique codes, issuing per customer, export, cost estimate."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging import coupons as K
from tests.servers.customers import seed_customers


@pytest.fixture()
def store():
    s = seed_customers(Store(":memory:"))
    yield s
    s.close()


def _unique(**kw) -> K.Coupon:
    base = dict(name="誕生日クーポン", kind="percent", value=10, min_purchase=3000, code_mode="unique",
                valid_from=dt.datetime(2026, 12, 1), valid_to=dt.datetime(2026, 12, 31, 23, 59))
    base.update(kw)
    return K.Coupon(**base)


def test_alphabet_has_no_confusable_characters():
    for ch in "0OQD1IL2Z5S8BUV":
        assert ch not in K.ALPHABET
    assert len(set(K.ALPHABET)) == len(K.ALPHABET)


def test_a_million_codes_are_unique_and_well_formed():
    codes = K.generate_codes(1_000_000)
    assert len(codes) == 1_000_000
    assert len(set(codes)) == 1_000_000
    assert {len(c) for c in codes} == {K.CODE_LENGTH}
    assert set("".join(codes[:50_000])) <= set(K.ALPHABET)
    # every character is (about) equally likely: no modulo bias
    counts = Counter("".join(codes[:100_000]))
    expected = 100_000 * K.CODE_LENGTH / len(K.ALPHABET)
    assert all(abs(n - expected) / expected < 0.03 for n in counts.values())


def test_codes_avoid_existing_ones_and_take_a_prefix():
    existing = set(K.generate_codes(1000, length=6))
    new = K.generate_codes(5000, length=6, existing=existing)
    assert not existing & set(new)
    assert all(c.startswith("BD26-") for c in K.generate_codes(10, prefix="bd26-"))
    with pytest.raises(InputError):
        K.generate_codes(1, prefix="<script>")


def test_collisions_are_redrawn(monkeypatch):
    draws = iter([["AAAAAA", "AAAAAA", "CCCCCC"], ["EEEEEE", "FFFFFF"]])
    monkeypatch.setattr(K, "_draw", lambda count, length: next(draws))
    assert K.generate_codes(3, length=6, existing={"CCCCCC"}) == ["AAAAAA", "EEEEEE", "FFFFFF"]


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"name": " "}, "クーポン名"),
        ({"kind": "bogus"}, "割引の種類"),
        ({"value": 120}, "1〜100%"),
        ({"kind": "yen", "value": 0}, "1円以上"),
        ({"kind": "yen", "value": 3000}, "最低購入金額"),
        ({"valid_to": dt.datetime(2026, 11, 1)}, "有効期限"),
        ({"code_mode": "shared", "shared_code": "x"}, "共通コード"),
    ],
)
def test_invalid_definitions(changes, phrase):
    with pytest.raises(InputError, match=phrase):
        K.validate(_unique(**changes))


def test_labels():
    assert _unique().discount_label() == "10%OFF"
    assert _unique(kind="yen", value=500).discount_label() == "500円OFF"
    assert _unique(kind="free_shipping", value=0).discount_label() == "送料無料"
    assert _unique().condition_label() == "¥3,000以上のお買い物で"
    assert _unique().expiry_label() == "2026年12月31日 23:59まで"


def test_issue_unique_codes_once_per_customer_and_export(store):
    cid = K.create_coupon(store, _unique())
    assert K.issue_unique_codes(store, cid, ["C001", "C002", "C002"]) == 2
    assert K.issue_unique_codes(store, cid, ["C001", "C003"]) == 1  # C001 keeps its code
    df = K.export_codes(store, cid)
    assert list(df.columns) == ["クーポンコード", "顧客ID", "ショップの顧客番号", "氏名", "メールアドレス", "クーポン名", "割引", "利用条件",
                                "有効期限"]
    assert list(df["顧客ID"]) == ["C001", "C002", "C003"]
    assert df["クーポンコード"].is_unique
    assert df.loc[0, "氏名"] == "髙橋 ①子" and df.loc[0, "割引"] == "10%OFF"
    coupon = K.get_coupon(store, cid)
    assert K.code_for(store, coupon, "C001") == df.loc[0, "クーポンコード"]
    # codes are unique across coupons too
    other = K.create_coupon(store, _unique(name="別のクーポン"))
    K.issue_unique_codes(store, other, ["C001", "C002", "C003"])
    assert store.scalar("SELECT count(DISTINCT code) FROM coupon_codes") == 6


def test_export_is_safe_for_excel(store):
    from crm_core.export import to_csv_bytes

    cid = K.create_coupon(store, _unique(name="=HYPERLINK(\"http://x\")"))
    K.issue_unique_codes(store, cid, ["C003"])
    data = to_csv_bytes(K.export_codes(store, cid)).decode("utf-8-sig")
    assert "'=HYPERLINK" in data


def test_shared_coupon(store):
    cid = K.create_coupon(store, _unique(code_mode="shared", shared_code="thanks10"))
    coupon = K.get_coupon(store, cid)
    assert K.code_for(store, coupon, "C001") == "THANKS10"
    with pytest.raises(InputError, match="全員共通"):
        K.issue_unique_codes(store, cid, ["C001"])


@pytest.mark.parametrize(
    ("coupon", "per_order"),
    [
        (_unique(value=10), 500.0),  # 10% of ¥5,000
        (_unique(kind="yen", value=500, min_purchase=3000), 500.0),
        (_unique(kind="free_shipping", value=0), 600.0),
    ],
    ids=["percent", "yen", "free-shipping"],
)
def test_cost_estimate_with_the_users_rate(store, coupon, per_order):
    est = K.estimate_cost(store, coupon, 1000, average_order_value=5000, margin=0.4, redemption_rate=0.05, incremental_share=1.0)
    assert est.rate_source == "入力した利用率"
    assert est.redemptions == pytest.approx(50)
    assert est.discount_per_order == pytest.approx(per_order)
    assert est.discount_cost == pytest.approx(50 * per_order)
    assert est.gross_profit == pytest.approx(50 * 5000 * 0.4)
    assert est.net == pytest.approx(est.gross_profit - est.discount_cost)


def test_cost_estimate_counts_profit_only_on_incremental_redemptions(store):
    """Issue 17: every redemption used to count as extra profit; only orders the coupon added do."""
    coupon, per_order = _unique(value=10), 500.0
    est = K.estimate_cost(store, coupon, 1000, average_order_value=5000, margin=0.4, redemption_rate=0.05,
                          incremental_share=0.25)
    assert est.redemptions == pytest.approx(50)
    assert est.discount_cost == pytest.approx(50 * per_order)  # the discount is paid on all 50
    assert est.incremental_orders == pytest.approx(12.5)
    assert est.gross_profit == pytest.approx(12.5 * 5000 * 0.4)
    assert est.net == pytest.approx(12.5 * 5000 * 0.4 - 50 * per_order)
    with pytest.raises(InputError):
        K.estimate_cost(store, coupon, 10, average_order_value=5000, incremental_share=1.5)


def test_cost_estimate_uses_min_purchase_as_order_value(store):
    est = K.estimate_cost(None, _unique(min_purchase=8000), 100, average_order_value=5000, redemption_rate=0.1, incremental_share=1.0)
    assert est.order_value == 8000 and est.discount_per_order == pytest.approx(800)


def test_cost_estimate_prefers_past_redemptions(store):
    cid = K.create_coupon(store, _unique())
    K.issue_unique_codes(store, cid, [f"X{i:03d}" for i in range(40)])
    codes = [r[0] for r in store.fetchall("SELECT code FROM coupon_codes ORDER BY customer_id LIMIT 10")]
    for i, code in enumerate(codes):
        store.execute("INSERT INTO orders (order_id, source, coupon_code, cancelled) VALUES (?, 'rakuten', ?, ?)",
                      [f"O{i}", code.lower(), i == 0])
    est = K.estimate_cost(store, _unique(), 1000, average_order_value=5000, redemption_rate=0.5, incremental_share=1.0)
    assert est.rate_source == "過去のクーポン利用実績"
    assert est.redemption_rate == pytest.approx(9 / 40)  # the cancelled order does not count


def test_a_deleted_saved_segment_refuses_issuing_instead_of_targeting_everyone(store):
    """Issue 11 item 12: the page used to fall back to every customer when the coupon's segment was gone."""
    from crm_core.audience import library as segment_library

    seg_id = segment_library.save_segment(store, "F2未転換", {"all": [{"field": "orders", "op": "eq", "value": 1}]})
    cid = K.create_coupon(store, _unique(segment=f"saved:{seg_id}"))
    coupon = K.get_coupon(store, cid)
    assert K.target_problem(store, coupon) is None
    assert sorted(K.target_customer_ids(store, coupon)) == ["C002", "C003"]
    assert K.target_size(store, coupon) == 2  # the page's count, without fetching the ids
    assert K.target_size(store, K.get_coupon(store, K.create_coupon(store, _unique()))) == len(
        K.target_customer_ids(store, K.get_coupon(store, K.create_coupon(store, _unique()))))
    segment_library.delete_segment(store, seg_id)
    problem = K.target_problem(store, coupon)
    assert problem and "削除されたため" in problem and "すべてのお客様に発行されることはありません" in problem
    with pytest.raises(InputError, match="削除されたため"):
        K.issue_for_target(store, cid)
    with pytest.raises(InputError, match="削除されたため"):
        K.target_size(store, coupon)
    assert store.scalar("SELECT count(*) FROM coupon_codes") == 0


def test_issue_for_target_uses_the_coupons_own_segment(store):
    cid = K.create_coupon(store, _unique(segment="line"))
    assert K.issue_for_target(store, cid) == 2  # C001 and C003 have LINE
    assert K.target_problem(store, K.get_coupon(store, K.create_coupon(store, _unique(segment="誕生月の人")))) is not None
