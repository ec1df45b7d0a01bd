"""Message costs (crm_core.planning.costs): LINE plan tiers at their boundaries, R-Mail, Shopify Email, monthly load."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.planning import costs

# (plan, messages, sendable, blocked, extra, overage yen, total yen incl. the monthly fee)
TIERS = [
    ("communication", 200, 200, 0, 0, "0", "0"),
    ("communication", 5_000, 200, 4_800, 0, "0", "0"),
    ("communication", 30_000, 200, 29_800, 0, "0", "0"),
    ("light", 5_000, 5_000, 0, 0, "0", "5000"),
    ("light", 5_001, 5_000, 1, 0, "0", "5000"),
    ("light", 30_000, 5_000, 25_000, 0, "0", "5000"),
    ("light", 80_000, 5_000, 75_000, 0, "0", "5000"),
    ("standard", 5_000, 5_000, 0, 0, "0", "15000"),
    ("standard", 30_000, 30_000, 0, 0, "0", "15000"),
    ("standard", 30_001, 30_001, 0, 1, "3.0", "15003.0"),
    ("standard", 80_000, 80_000, 0, 50_000, "150000", "165000"),          # 50,000 × ¥3.0
    ("standard", 80_001, 80_001, 0, 50_001, "150002.8", "165002.8"),      # the 50,001st extra at ¥2.8
    ("standard", 130_000, 130_000, 0, 100_000, "290000", "305000"),       # + 50,000 × ¥2.8
]


@pytest.mark.parametrize(
    ("plan", "messages", "sendable", "blocked", "extra", "overage", "total"), TIERS,
    ids=[f"{p}-{m}" for p, m, *_ in TIERS],
)
def test_line_cost_at_the_plan_boundaries(plan, messages, sendable, blocked, extra, overage, total):
    c = costs.line_cost(messages, plan)
    assert (c.sendable, c.blocked, c.extra, c.unconfirmed) == (sendable, blocked, extra, 0)
    assert c.overage_cost == Decimal(overage)
    assert c.total_cost == Decimal(total)
    assert bool(c.warnings) == bool(blocked or extra)


def test_free_and_light_plans_say_they_cannot_send_more():
    c = costs.line_cost(5_000, "communication")
    assert c.warnings == ["コミュニケーションプランは月200通までで、追加メッセージは送れません。4,800通が送信できません"
                          "（スタンダードプランへの変更か、配信の絞り込みが必要です）。"]
    assert "送れません" in costs.line_cost(30_000, "light").warnings[0]


def test_standard_overage_warning_names_the_cost():
    assert costs.line_cost(80_000, "standard").warnings == [
        "スタンダードプランの無料メッセージ30,000通を50,000通超えます。追加料金 ¥150,000（税抜）。"]


def test_beyond_the_confirmed_tiers_is_user_priced():
    default = costs.line_cost(130_001, "standard")
    assert default.unconfirmed == 1 and default.overage_cost == Decimal("290002.8")
    assert "未確認の単価 ¥2.8" in default.warnings[1]
    cheaper = costs.line_cost(140_000, "standard", beyond_rate=Decimal("2.5"))
    assert cheaper.overage_cost == Decimal("290000") + 10_000 * Decimal("2.5")
    unpriced = costs.line_cost(140_000, "standard", beyond_rate=None)
    assert unpriced.overage_cost == Decimal("290000") and unpriced.unconfirmed == 10_000
    assert "費用に含めていません" in unpriced.warnings[1]


def test_rmail_and_shopify_email():
    assert costs.rmail_cost(1_234) == Decimal(1_234)
    assert costs.rmail_cost(0) == 0
    assert costs.shopify_email_cost_usd(10_000) == 0
    assert costs.shopify_email_cost_usd(10_001) == Decimal("0.001")
    assert costs.shopify_email_cost_usd(25_000) == Decimal("15")


def test_unknown_plan():
    with pytest.raises(InputError, match="LINEのプラン"):
        costs.line_cost(1, "premium")


def test_settings_round_trip(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    assert costs.line_plan_setting(store) == "light"
    costs.set_line_plan(store, "standard")
    assert costs.line_plan_setting(store) == "standard"
    with pytest.raises(InputError):
        costs.set_line_plan(store, "gold")
    costs.set_beyond_rate(store, 2.5)
    assert costs.beyond_rate_setting(store) == Decimal("2.5")
    with pytest.raises(InputError):
        costs.set_beyond_rate(store, -1)
    costs.set_usd_jpy(store, 155)
    assert costs.usd_jpy_setting(store) == Decimal("155")
    store.close()


def _sends() -> pd.DataFrame:
    return pd.DataFrame({
        "send_at": pd.to_datetime(["2026-05-21 18:00", "2026-06-03 18:00", "2026-06-04 18:00", "2026-06-10 18:00",
                                   "2026-06-04 18:00", "2026-06-05 12:00"]),
        "channel": ["line", "line", "line", "line", "rmail", "shopify_email"],
        "recipients": [3_000, 3_000, 3_000, 3_000, 1_500, 12_000],
    })


def test_monthly_load_and_costs():
    load = costs.monthly_load(_sends(), pd.Timestamp("2026-05-01").date(), pd.Timestamp("2026-07-31").date())
    assert [(m.month, c, s, n) for m, c, s, n in zip(load.month, load.channel, load.sends, load.messages)] == [
        (5, "line", 1, 3_000), (6, "line", 3, 9_000), (6, "rmail", 1, 1_500), (6, "shopify_email", 1, 12_000),
        (7, "line", 0, 0)]
    table = costs.monthly_costs(load, "light", usd_jpy=150)
    june_line = table[(table.month.dt.month == 6) & (table.channel == "line")].iloc[0]
    assert (june_line.free, june_line.over, june_line.blocked) == (5_000, 4_000, 4_000)
    assert june_line.warning.startswith("2026年6月: ライトプランは月5,000通まで")
    rmail = table[table.channel == "rmail"].iloc[0]
    assert (rmail.cost_yen, rmail.cost_text) == (1_500, "¥1,500")
    shop = table[table.channel == "shopify_email"].iloc[0]
    assert shop.cost_yen == 300 and shop.cost_text == "$2.00（約¥300）" and "無料枠10,000通を2,000通超えます" in shop.warning
    std = costs.monthly_costs(load, "standard")
    assert std[std.channel == "line"].cost_yen.sum() == 0  # 9,000 < 30,000
    summary = costs.cost_summary(table, "light")
    assert summary["blocked"] == 4_000 and summary["line_fee_per_month"] == 5_000 and len(summary["warnings"]) == 2
    jp = costs.load_table(table)
    assert list(jp.columns) == ["月", "チャネル", "配信回数", "メッセージ数", "無料枠", "超過", "送信不可", "費用"]
    assert jp["月"].iloc[0] == "2026年5月"


def test_load_chart_draws_the_plan_limit():
    table = costs.monthly_costs(costs.monthly_load(_sends()), "standard")
    spec = json.dumps(costs.load_chart(table, "standard").to_dict(), ensure_ascii=False)
    assert "LINE スタンダードプラン 無料枠 30,000通" in spec and "Shopify Email 無料枠 10,000通" in spec
    assert '"limit": 30000' in spec
    light = json.dumps(costs.load_chart(costs.monthly_costs(costs.monthly_load(_sends()), "light"), "light").to_dict(),
                       ensure_ascii=False)
    assert "（これ以上は送信不可）" in light
    assert costs.load_chart(costs.monthly_costs(costs.monthly_load(pd.DataFrame()), "light"), "light") is None
