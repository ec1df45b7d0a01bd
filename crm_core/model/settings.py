"""The shop's model settings: RFM score thresholds, the RFM segment grid, loyalty ranks (spend or orders)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from crm_core.db import Store
from crm_core.errors import InputError

# -- settings: RFM scores ---------------------------------------------------
SETTING_THRESHOLDS = "rfm_thresholds"
SETTING_SEGMENTS = "rfm_segments"
SETTING_RANKS = "rank_thresholds"

QUINTILE = "quintile"
DEFAULT_RFM_THRESHOLDS: dict[str, Any] = {"r": QUINTILE, "f": [2, 3, 5, 8], "m": QUINTILE}
"""How R, F and M become scores 1-5; each is ``"quintile"`` or four numbers.

``"quintile"``: tie-aware quintiles.  A customer's score is
``1 + floor(5 * k / N)`` where ``k`` is the number of customers with a
strictly worse value (longer recency, fewer orders, lower revenue) and ``N``
the number of customers.  Without ties these are exact quintiles; tied
customers all get the score of the lowest of them, so e.g. all one-time
buyers share one F score instead of being split arbitrarily by ``ntile``.

Four numbers, ascending: for ``r`` the largest recency in days that still
scores 5, 4, 3 and 2 (``[30, 90, 180, 365]``: up to 30 days -> 5, ... over
365 -> 1); for ``f`` (orders) and ``m`` (revenue, yen) the smallest value that
scores 2, 3, 4 and 5 (``[2, 3, 5, 8]``: one order -> 1, 2 -> 2, 3-4 -> 3,
5-7 -> 4, 8 or more -> 5).

F defaults to fixed counts because order counts are heavily tied (most
customers buy once), so its quintiles are lopsided.
"""

DEFAULT_RFM_SEGMENTS: list[dict[str, Any]] = [
    {"name": "優良顧客", "r_min": 4, "r_max": 5, "f_min": 4, "f_max": 5,
     "description": "最近も購入しており、購入回数も多い最重要の顧客"},
    {"name": "安定顧客", "r_min": 3, "r_max": 5, "f_min": 3, "f_max": 5,
     "description": "継続して購入している顧客"},
    {"name": "新規顧客", "r_min": 4, "r_max": 5, "f_min": 1, "f_max": 1,
     "description": "最近はじめて購入した顧客"},
    {"name": "育成中", "r_min": 3, "r_max": 5, "f_min": 1, "f_max": 2,
     "description": "リピート購入を促して安定顧客に育てたい顧客"},
    {"name": "要注意", "r_min": 2, "r_max": 2, "f_min": 3, "f_max": 5,
     "description": "以前はよく購入していたが、最近購入が途絶えている顧客"},
    {"name": "休眠予備軍", "r_min": 2, "r_max": 2, "f_min": 1, "f_max": 2,
     "description": "購入の間隔が空き始めた顧客"},
    {"name": "休眠", "r_min": 1, "r_max": 1, "f_min": 2, "f_max": 5,
     "description": "複数回購入したが長く購入のない顧客（掘り起こしの対象）"},
    {"name": "離反", "r_min": 1, "r_max": 1, "f_min": 1, "f_max": 1,
     "description": "1回だけ購入し、長く戻ってきていない顧客"},
]
"""Default RFM segment rules: evaluated in order, the first match wins.

Each rule has ``name``, ``r_min``, ``r_max``, ``f_min``, ``f_max`` (scores
1-5, inclusive), optionally ``m_min``/``m_max`` (default 1-5) and a
``description``.  The defaults cover the whole R x F grid::

    R\\F   1        2        3        4        5
    5     新規顧客  育成中   安定顧客  優良顧客  優良顧客
    4     新規顧客  育成中   安定顧客  優良顧客  優良顧客
    3     育成中    育成中   安定顧客  安定顧客  安定顧客
    2     休眠予備軍 休眠予備軍 要注意   要注意   要注意
    1     離反      休眠     休眠     休眠     休眠

A customer no rule matches gets :data:`OTHER_SEGMENT`.
"""
OTHER_SEGMENT = "その他"

DEFAULT_RANK_THRESHOLDS: list[dict[str, Any]] = [
    {"name": "プラチナ", "min_revenue_12m": 50000},
    {"name": "ゴールド", "min_revenue_12m": 20000},
    {"name": "シルバー", "min_revenue_12m": 8000},
    {"name": "レギュラー", "min_revenue_12m": 0},
]
"""Loyalty ranks by spend in the last 12 months (yen), highest first.

A customer gets the first rank whose ``min_revenue_12m`` the 12-month spend
reaches; ``next_rank`` is the rank above and ``gap_to_next_rank`` the yen
still missing (NULL at the top rank).  Ranks can instead be set by the
number of orders in the last 12 months (:data:`DEFAULT_ORDER_RANK_THRESHOLDS`,
key ``min_orders_12m``); then ``orders_to_next_rank`` holds the orders still
missing and ``gap_to_next_rank`` is NULL.
"""
DEFAULT_ORDER_RANK_THRESHOLDS: list[dict[str, Any]] = [
    {"name": "プラチナ", "min_orders_12m": 10},
    {"name": "ゴールド", "min_orders_12m": 5},
    {"name": "シルバー", "min_orders_12m": 2},
    {"name": "レギュラー", "min_orders_12m": 0},
]
"""Loyalty ranks by the number of orders in the last 12 months, highest first."""
RANK_KEYS = {"revenue_12m": "min_revenue_12m", "orders_12m": "min_orders_12m"}
"""Rank basis (a ``customer_model`` column) -> the key of its minimum in a rank."""


_MAX_RULES = 50
_MAX_NAME = 40


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_thresholds(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError("RFMスコアの基準の形式が正しくありません。", f"rfm_thresholds must be a dict, got {type(value).__name__}")
    out: dict[str, Any] = {}
    labels = {"r": "R（最終購入からの日数）", "f": "F（購入回数）", "m": "M（購入金額）"}
    for key, label in labels.items():
        spec = value.get(key, DEFAULT_RFM_THRESHOLDS[key])
        if spec == QUINTILE:
            out[key] = QUINTILE
            continue
        if not (isinstance(spec, (list, tuple)) and len(spec) == 4 and all(_is_number(v) and v >= 0 for v in spec)):
            raise InputError(
                f"{label}の基準は「quintile」（5等分）か、0以上の数値4つで指定してください。",
                f"bad rfm threshold for {key}: {spec!r}",
            )
        if any(b <= a for a, b in zip(spec, spec[1:])):
            raise InputError(f"{label}の基準の4つの数値は小さい順に、重複なく並べてください。", f"not ascending: {spec!r}")
        out[key] = [float(v) if isinstance(v, float) else int(v) for v in spec]
    return out


def rfm_thresholds(store: Store) -> dict[str, Any]:
    """The scoring setting ``rfm_thresholds`` (see :data:`DEFAULT_RFM_THRESHOLDS`)."""
    return _check_thresholds(store.get_setting(SETTING_THRESHOLDS, DEFAULT_RFM_THRESHOLDS))


def set_rfm_thresholds(store: Store, value: dict[str, Any]) -> dict[str, Any]:
    """Validate and store the scoring setting; returns the stored value.

    Raises
    ------
    InputError
        If a dimension is neither ``"quintile"`` nor four ascending numbers.
    """
    checked = _check_thresholds(value)
    store.set_setting(SETTING_THRESHOLDS, checked)
    return checked


def _check_segments(rules: Any) -> list[dict[str, Any]]:
    if not isinstance(rules, (list, tuple)) or not rules:
        raise InputError("RFMセグメントの定義が空か、形式が正しくありません。", "rfm_segments must be a non-empty list")
    if len(rules) > _MAX_RULES:
        raise InputError(f"RFMセグメントは{_MAX_RULES}個までです。", f"{len(rules)} rules")
    out = []
    for i, rule in enumerate(rules, start=1):
        if not isinstance(rule, dict):
            raise InputError(f"RFMセグメントの{i}番目の定義の形式が正しくありません。", f"rule {i} is not a dict")
        name = rule.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
            raise InputError(f"RFMセグメントの{i}番目の名前は1〜{_MAX_NAME}文字で入力してください。", f"bad name in rule {i}")
        checked: dict[str, Any] = {"name": name.strip()}
        for dim in ("r", "f", "m"):
            lo, hi = rule.get(f"{dim}_min", 1), rule.get(f"{dim}_max", 5)
            ok = all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5 for v in (lo, hi)) and lo <= hi
            if not ok:
                raise InputError(
                    f"セグメント「{name}」の{dim.upper()}スコアの範囲は1〜5の整数で、下限≦上限にしてください。",
                    f"bad {dim} range in rule {i}: {lo!r}..{hi!r}",
                )
            checked[f"{dim}_min"], checked[f"{dim}_max"] = lo, hi
        desc = rule.get("description", "")
        checked["description"] = desc if isinstance(desc, str) else str(desc)
        out.append(checked)
    return out


def rfm_segments(store: Store) -> list[dict[str, Any]]:
    """The segment rules ``rfm_segments`` (see :data:`DEFAULT_RFM_SEGMENTS`)."""
    return _check_segments(store.get_setting(SETTING_SEGMENTS, DEFAULT_RFM_SEGMENTS))


def set_rfm_segments(store: Store, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate and store segment rules (evaluated in order, first match wins).

    Raises
    ------
    InputError
        For an empty list, a missing name or a score range outside 1-5.
    """
    checked = _check_segments(rules)
    store.set_setting(SETTING_SEGMENTS, checked)
    return checked


def rank_basis(ranks: Sequence[dict[str, Any]]) -> str:
    """``"revenue_12m"`` or ``"orders_12m"``: what checked ranks are set by."""
    return "orders_12m" if ranks and RANK_KEYS["orders_12m"] in ranks[0] else "revenue_12m"


def _check_ranks(ranks: Any) -> list[dict[str, Any]]:
    if not isinstance(ranks, (list, tuple)) or not ranks or len(ranks) > 20:
        raise InputError("会員ランクの定義が空か、形式が正しくありません。", "rank_thresholds must be a list of 1-20 ranks")
    first = ranks[0] if isinstance(ranks[0], dict) else {}
    key = RANK_KEYS["orders_12m"] if RANK_KEYS["orders_12m"] in first else RANK_KEYS["revenue_12m"]
    by_orders = key == RANK_KEYS["orders_12m"]
    out = []
    for i, rank in enumerate(ranks, start=1):
        name = rank.get("name") if isinstance(rank, dict) else None
        value = rank.get(key) if isinstance(rank, dict) else None
        if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
            raise InputError(f"会員ランクの{i}番目の名前は1〜{_MAX_NAME}文字で入力してください。", f"bad rank name {i}")
        if by_orders and not (_is_number(value) and value >= 0 and float(value).is_integer()):
            raise InputError(f"会員ランク「{name}」の基準回数は0以上の整数で入力してください。", f"bad rank minimum {value!r}")
        if not by_orders and (not _is_number(value) or value < 0):
            raise InputError(f"会員ランク「{name}」の基準金額は0以上の数値で入力してください。", f"bad rank minimum {value!r}")
        out.append({"name": name.strip(), key: int(value) if by_orders else value})
    out.sort(key=lambda r: r[key], reverse=True)
    names = [r["name"] for r in out]
    mins = [r[key] for r in out]
    what = "基準回数" if by_orders else "基準金額"
    if len(set(names)) != len(names) or len(set(mins)) != len(mins):
        raise InputError(f"会員ランクの名前と{what}は、それぞれ重複しないようにしてください。", "duplicate rank")
    if mins[-1] != 0:
        bottom = "0回" if by_orders else "0円"
        raise InputError(f"いちばん下の会員ランクの{what}は{bottom}にしてください。", f"lowest minimum is {mins[-1]}")
    return out


def rank_thresholds(store: Store) -> list[dict[str, Any]]:
    """The rank setting ``rank_thresholds``, highest rank first."""
    return _check_ranks(store.get_setting(SETTING_RANKS, DEFAULT_RANK_THRESHOLDS))


def set_rank_thresholds(store: Store, ranks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate and store ranks; the lowest must be 0.

    Every rank is ``{"name", "min_revenue_12m"}`` (12-month spend in yen) or
    every rank is ``{"name", "min_orders_12m"}`` (12-month orders, whole
    numbers), as the first rank decides.

    Raises
    ------
    InputError
        For missing names, negative or duplicate minimums, or no rank at 0.
    """
    checked = _check_ranks(ranks)
    store.set_setting(SETTING_RANKS, checked)
    return checked


def rank_gap_text(rank: str | None, next_rank: str | None, gap: float | None, orders_gap: float | None = None) -> str:
    """The nudge shown next to a customer's rank.

    ``gap`` is the yen missing (ranks by spend), ``orders_gap`` the orders
    missing (ranks by number of orders).

    Examples
    --------
    >>> rank_gap_text("シルバー", "ゴールド", 3200)
    'あと¥3,200でゴールド'
    >>> rank_gap_text("シルバー", "ゴールド", None, 2)
    'あと2回のご購入でゴールド'
    >>> rank_gap_text("プラチナ", None, None)
    '最上位ランク（プラチナ）です'
    """
    def missing(value: float | None) -> bool:
        return value is None or (isinstance(value, float) and math.isnan(value))

    if next_rank is not None and not missing(orders_gap):
        return f"あと{max(0, math.ceil(float(orders_gap) - 1e-9)):,}回のご購入で{next_rank}"
    if next_rank is None or missing(gap):
        return f"最上位ランク（{rank}）です" if rank else ""
    yen = max(0, math.ceil(float(gap) - 1e-9))
    return f"あと¥{yen:,}で{next_rank}"
