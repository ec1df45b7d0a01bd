"""Ready-made segments (FACTS.md §7) that open as editable rules in the segment builder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from crm_core.audience.rules import _short
from crm_core.errors import InputError

# ---------------------------------------------------------------------------
# Presets (FACTS.md §7)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A ready-made segment that opens as an editable rule."""

    key: str
    name: str
    why: str
    rule: dict[str, Any] = field(default_factory=dict)


PRESETS: tuple[Preset, ...] = (
    Preset("dormant_90", "休眠（90日以上購入なし）", "3か月購入のない顧客。掘り起こしクーポン（15%前後）や新商品のお知らせに。",
           {"all": [{"field": "recency_days", "op": "gte", "value": 90}]}),
    Preset("dormant_180", "休眠（180日以上購入なし）", "半年購入のない長期休眠顧客。アンケートやリニューアル情報で再訪のきっかけを。",
           {"all": [{"field": "recency_days", "op": "gte", "value": 180}]}),
    Preset("vip_top", "優良顧客（直近12か月の購入金額 上位20%）", "年間購入額の上位10〜20%。先行案内や限定のご案内に（上位10%にするには値を10に）。",
           {"all": [{"field": "revenue_12m", "op": "top_pct", "value": 20},
                    {"field": "revenue_12m", "op": "gte", "value": 1}]}),
    Preset("high_aov", "高単価（平均購入単価がショップ平均の2倍以上）", "客単価の高い顧客。特別感のある案内（「〇〇様だけにご案内」）に。",
           {"all": [{"field": "aov", "op": "gte_avg_times", "value": 2}]}),
    Preset("f2_pending", "初回購入者 F2未転換（購入1回・30〜60日前）", "1回目の購入から30〜60日。2回目の購入（F2転換）を後押しするタイミング。",
           {"all": [{"field": "orders", "op": "eq", "value": 1},
                    {"field": "recency_days", "op": "between", "value": [30, 60]}]}),
    Preset("birthday", "誕生月", "今月が誕生月の顧客。バースデークーポンに。",
           {"all": [{"field": "birthday_month", "op": "this_month"}]}),
    Preset("reorder", "そろそろ買い替え（購入周期から）", "商品ごとの再購入周期から、今後14日以内に買い替え時期を迎える顧客。",
           {"all": [{"field": "reorder_due", "op": "due_within", "value": 14}]}),
    Preset("rank_up", "ランクアップ間近（あと5,000円以内／あと1回）",
           "次の会員ランクまであと少しの顧客（金額で決まるランクはあと5,000円以内、回数で決まるランクはあと1回）。"
           "「あと〇〇円でゴールド」のご案内に。",
           {"all": [{"any": [{"field": "gap_to_next_rank", "op": "between", "value": [1, 5000]},
                             {"field": "orders_to_next_rank", "op": "eq", "value": 1}]},
                    {"field": "recency_days", "op": "lte", "value": 365}]}),
    Preset("churn_risk", "離反予備軍（離反リスク高・購入2回以上）", "これまで複数回購入したのに、離反の可能性が高まっている顧客。",
           {"all": [{"field": "churn_risk", "op": "eq", "value": "高"},
                    {"any": [{"field": "orders", "op": "gte", "value": 2},
                             {"field": "revenue", "op": "gte_avg_times", "value": 1}]}]}),
    Preset("sale_only", "セール時のみ購入", "スーパーSALE・お買い物マラソンでしか買わない顧客。セール前の予告に。",
           {"all": [{"field": "sale_only_buyer", "op": "is_true"}]}),
    Preset("sub_active", "定期継続中", "定期購入を続けている顧客。継続特典やクロスセルに。",
           {"all": [{"field": "subscription_status", "op": "eq", "value": "継続中"}]}),
    Preset("sub_cancelled", "定期解約", "定期購入をやめた顧客。再開のご案内に。",
           {"all": [{"field": "subscription_status", "op": "eq", "value": "解約"}]}),
)
PRESETS_BY_KEY = {p.key: p for p in PRESETS}


def preset_rule(key: str) -> dict[str, Any]:
    """A fresh copy of a preset's rule (to edit)."""
    if key not in PRESETS_BY_KEY:
        raise InputError(f"「{_short(key)}」というプリセットはありません。", "unknown preset")
    return json.loads(json.dumps(PRESETS_BY_KEY[key].rule))
