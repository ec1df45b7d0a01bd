"""Altair chart builders for the analyses (Japanese titles, axes, legends, tooltips).

Every builder takes the DataFrame an analysis function returns and gives an
Altair chart, or ``None`` when there is nothing to draw (the page then shows
an explanatory empty state).  Numbers in tooltips are preformatted Japanese
strings (¥1,234 / 12.3% / 1,234人); month labels read 2026年11月.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import altair as alt
import pandas as pd

from crm_core import jp

YEN_AXIS = "'¥' + format(datum.value, ',.0f')"
BLUE = "#3B6FB6"
ORANGE = "#E08A2E"
RISK_COLORS = {"低": "#4C9A6A", "中": "#E0A030", "高": "#C8463D"}


# --------------------------------------------------------------------------
# Japanese number and date labels
# --------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# The labels are crm_core.jp's (one formatting for pages, charts and messages).
yen_label = jp.yen
pct_label = jp.pct
days_label = jp.days


def count_label(value: Any, unit: str = "人") -> str:
    """1,234人, or — when missing."""
    return jp.count(value, unit)


def month_label(value: dt.date | str) -> str:
    """2026年11月."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return f"{value.year}年{value.month}月"


def cohort_label(value: dt.date, unit: str = "month") -> str:
    """A cohort start as 2026年11月, 2026年Q4 (quarter) or 2026年 (year)."""
    if unit == "quarter":
        return f"{value.year}年Q{(value.month - 1) // 3 + 1}"
    if unit == "year":
        return f"{value.year}年"
    return month_label(value)


def item_labels(names: list[Any], ids: list[Any]) -> list[str]:
    """Display labels for products: the name, with the id added where names repeat.

    The same product sold on two channels (Rakuten and Shopify ids) often has
    one name; without the id both would fall on one row of a chart.
    """
    plain = [str(n) if not _missing(n) else str(i) for n, i in zip(names, ids, strict=True)]
    ids_per_name: dict[str, set[str]] = {}
    for label, i in zip(plain, ids, strict=True):
        ids_per_name.setdefault(label, set()).add(str(i))
    return [f"{label}（{i}）" if len(ids_per_name[label]) > 1 else label for label, i in zip(plain, ids, strict=True)]


def _empty(df: pd.DataFrame | None) -> bool:
    return df is None or df.empty


# --------------------------------------------------------------------------
# RFM and ranks
# --------------------------------------------------------------------------


def rfm_segment_chart(df: pd.DataFrame) -> alt.Chart | None:
    """Share of customers and of revenue per RFM segment, side by side.

    Input: :func:`crm_core.analytics.value.rfm_segment_summary`.
    """
    if _empty(df) or df["customers"].sum() == 0:
        return None
    order = list(df["segment"])
    rows = []
    for r in df.itertuples(index=False):
        common = {
            "セグメント": r.segment,
            "顧客数": count_label(r.customers),
            "売上": yen_label(r.revenue),
        }
        rows.append({**common, "指標": "顧客数の構成比", "構成比": r.customer_share, "構成比表示": pct_label(r.customer_share)})
        rows.append({**common, "指標": "売上の構成比", "構成比": r.revenue_share, "構成比表示": pct_label(r.revenue_share)})
    data = pd.DataFrame(rows)
    return (
        alt.Chart(data, title="RFMセグメント別の顧客数と売上の構成比")
        .mark_bar()
        .encode(
            x=alt.X("セグメント:N", sort=order, title="セグメント", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("指標:N", sort=["顧客数の構成比", "売上の構成比"]),
            y=alt.Y("構成比:Q", title="構成比", axis=alt.Axis(format=".0%")),
            color=alt.Color(
                "指標:N",
                title="指標",
                sort=["顧客数の構成比", "売上の構成比"],
                scale=alt.Scale(range=[BLUE, ORANGE]),
                legend=alt.Legend(orient="top"),
            ),
            tooltip=[
                alt.Tooltip("セグメント:N"),
                alt.Tooltip("指標:N"),
                alt.Tooltip("構成比表示:N", title="構成比"),
                alt.Tooltip("顧客数:N"),
                alt.Tooltip("売上:N", title="累計売上"),
            ],
        )
    )


def rf_heatmap_chart(df: pd.DataFrame) -> alt.LayerChart | None:
    """Customers on the recency × frequency grid (R 5 = bought most recently).

    Input: :func:`crm_core.analytics.value.rf_heatmap`.
    """
    if _empty(df) or df["customers"].sum() == 0:
        return None
    data = pd.DataFrame(
        {
            "Rスコア": df["r_score"].astype(int),
            "Fスコア": df["f_score"].astype(int),
            "顧客数": df["customers"].astype(int),
            "顧客数表示": df["customers"].map(count_label),
            "構成比": df["customer_share"].map(pct_label),
            "売上": df["revenue"].map(yen_label),
        }
    )
    base = alt.Chart(data, title="R×F ヒートマップ（顧客数）").encode(
        x=alt.X("Fスコア:O", title="Fスコア（購入回数：5が多い）", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("Rスコア:O", title="Rスコア（最終購入：5が最近）", sort="descending"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color("顧客数:Q", title="顧客数", scale=alt.Scale(scheme="blues")),
        tooltip=[
            alt.Tooltip("Rスコア:O"),
            alt.Tooltip("Fスコア:O"),
            alt.Tooltip("顧客数表示:N", title="顧客数"),
            alt.Tooltip("構成比:N"),
            alt.Tooltip("売上:N", title="累計売上"),
        ],
    )
    text = base.mark_text(baseline="middle", fontSize=12).encode(text=alt.Text("顧客数表示:N"))
    return alt.layer(rect, text)


def rank_movement_chart(df: pd.DataFrame, date_from: dt.date, date_to: dt.date) -> alt.LayerChart | None:
    """The 移動元 → 移動先 matrix of loyalty ranks as a heat map.

    Input: :func:`crm_core.analytics.value.rank_movement`.
    """
    if _empty(df) or df["customers"].sum() == 0:
        return None
    from_order = list(dict.fromkeys(df["from_rank"]))
    to_order = list(dict.fromkeys(df["to_rank"]))
    data = pd.DataFrame(
        {
            "移動元": df["from_rank"],
            "移動先": df["to_rank"],
            "顧客数": df["customers"].astype(int),
            "顧客数表示": df["customers"].map(count_label),
            "移動元に占める割合": df["share_of_from"].astype("float64"),
            "割合表示": df["share_of_from"].map(pct_label),
            "動き": df["movement"],
        }
    )
    title = f"ランクの移動（{date_from.year}年{date_from.month}月{date_from.day}日 → {date_to.year}年{date_to.month}月{date_to.day}日）"
    base = alt.Chart(data, title=title).encode(
        x=alt.X(
            "移動先:N", sort=to_order, title=f"移動先（{date_to.month}月{date_to.day}日のランク）", axis=alt.Axis(labelAngle=0)
        ),
        y=alt.Y("移動元:N", sort=from_order, title=f"移動元（{date_from.month}月{date_from.day}日のランク）"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "移動元に占める割合:Q",
            title="移動元に占める割合",
            scale=alt.Scale(scheme="oranges"),
            legend=alt.Legend(format=".0%"),
        ),
        tooltip=[
            alt.Tooltip("移動元:N"),
            alt.Tooltip("移動先:N"),
            alt.Tooltip("動き:N"),
            alt.Tooltip("顧客数表示:N", title="顧客数"),
            alt.Tooltip("割合表示:N", title="移動元に占める割合"),
        ],
    )
    text = base.mark_text(baseline="middle", fontSize=12).encode(text=alt.Text("顧客数表示:N"))
    return alt.layer(rect, text)


# --------------------------------------------------------------------------
# Repeat purchase
# --------------------------------------------------------------------------


def repeat_conversion_chart(df: pd.DataFrame, step: str = "f2") -> alt.Chart | None:
    """F2 (or F3) conversion rate by first-purchase month, one line per window.

    Input: :func:`crm_core.analytics.repeat.repeat_conversion`; immature cohorts are
    left out.
    """
    if step not in ("f2", "f3"):
        raise ValueError(f"unknown step: {step!r}")
    if _empty(df):
        return None
    rate = f"{step}_rate"
    part = df[df["mature"] & df[rate].notna()]
    if part.empty:
        return None
    order = [month_label(m) for m in sorted(set(part["cohort_month"]))]
    windows = sorted(set(part["window_days"]))
    data = pd.DataFrame(
        {
            "初回購入月": [month_label(m) for m in part["cohort_month"]],
            "期間": [f"{int(w)}日以内" for w in part["window_days"]],
            "転換率": part[rate].astype("float64").to_numpy(),
            "転換率表示": part[rate].map(pct_label).to_numpy(),
            "新規顧客数": part["customers"].map(count_label).to_numpy(),
            "転換した顧客数": part[f"{step}_customers"].map(count_label).to_numpy(),
        }
    )
    name = "F2転換率（2回目購入）" if step == "f2" else "F3転換率（F2から3回目購入）"
    return (
        alt.Chart(data, title=f"初回購入月別の{name}")
        .mark_line(point=True)
        .encode(
            x=alt.X("初回購入月:N", sort=order, title="初回購入月", axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("転換率:Q", title=name, axis=alt.Axis(format=".0%")),
            color=alt.Color("期間:N", title="初回購入から", sort=[f"{w}日以内" for w in windows]),
            tooltip=[
                alt.Tooltip("初回購入月:N"),
                alt.Tooltip("期間:N", title="初回購入から"),
                alt.Tooltip("転換率表示:N", title=name),
                alt.Tooltip("新規顧客数:N"),
                alt.Tooltip("転換した顧客数:N"),
            ],
        )
    )


def _binned_customers_chart(
    df: pd.DataFrame,
    label: Callable[[Any], str],
    unit: str,
    field: str,
    title: str,
    x_title: str,
    label_angle: int,
    share_title: str | None,
    extra: dict[str, pd.Series],
) -> alt.Chart | None:
    """Bars of customers per bin (``bin_start``, ``bin_end``, ``customers``, ``share``).

    Bins read "{start}〜{end}{unit}" or "{start}{unit}以上" for the open last
    bin, with ``label`` formatting the bounds; ``extra`` columns (already
    formatted) join the tooltip.
    """
    if _empty(df) or df["customers"].sum() == 0:
        return None
    labels = [
        f"{label(s)}〜{label(e)}{unit}" if not _missing(e) else f"{label(s)}{unit}以上"
        for s, e in zip(df["bin_start"], df["bin_end"], strict=True)
    ]
    data = pd.DataFrame(
        {
            field: labels,
            "顧客数": df["customers"].astype(int).to_numpy(),
            "顧客数表示": df["customers"].map(count_label).to_numpy(),
            "割合": df["share"].map(pct_label).to_numpy(),
            **{name: values.to_numpy() for name, values in extra.items()},
        }
    )
    share = alt.Tooltip("割合:N", title=share_title) if share_title else alt.Tooltip("割合:N")
    return (
        alt.Chart(data, title=title)
        .mark_bar(color=BLUE)
        .encode(
            x=alt.X(f"{field}:N", sort=labels, title=x_title, axis=alt.Axis(labelAngle=label_angle)),
            y=alt.Y("顧客数:Q", title="顧客数（人）"),
            tooltip=[
                alt.Tooltip(f"{field}:N"),
                alt.Tooltip("顧客数表示:N", title="顧客数"),
                share,
                *[alt.Tooltip(f"{name}:N") for name in extra],
            ],
        )
    )


def days_to_second_chart(df: pd.DataFrame) -> alt.Chart | None:
    """Histogram of days from the first to the second purchase.

    Input: :func:`crm_core.analytics.repeat.days_to_second_purchase`.
    """
    return _binned_customers_chart(
        df, lambda v: f"{int(v)}", "日", "日数", "初回購入から2回目購入までの日数", "2回目購入までの日数", -45,
        "リピーターに占める割合",
        {} if _empty(df) else {"累積割合": df["cumulative_share"].map(pct_label)},
    )


def new_vs_repeat_chart(df: pd.DataFrame) -> alt.Chart | None:
    """Monthly revenue stacked into 新規 and リピート.

    Input: :func:`crm_core.analytics.repeat.revenue_new_vs_repeat`.
    """
    if _empty(df) or df["revenue"].abs().sum() == 0:
        return None
    order = [month_label(m) for m in sorted(set(df["month"]))]
    data = pd.DataFrame(
        {
            "月": [month_label(m) for m in df["month"]],
            "区分": df["customer_type"].to_numpy(),
            "売上": df["revenue"].astype("float64").to_numpy(),
            "売上表示": df["revenue"].map(yen_label).to_numpy(),
            "構成比": df["revenue_share"].map(pct_label).to_numpy(),
            "注文数": df["orders"].map(lambda v: count_label(v, "件")).to_numpy(),
            "顧客数": df["customers"].map(count_label).to_numpy(),
        }
    )
    return (
        alt.Chart(data, title="月別売上（新規・リピート）")
        .mark_bar()
        .encode(
            x=alt.X("月:N", sort=order, title="月", axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("売上:Q", title="売上", stack="zero", axis=alt.Axis(labelExpr=YEN_AXIS)),
            color=alt.Color(
                "区分:N",
                title="区分",
                sort=["新規", "リピート"],
                scale=alt.Scale(range=[ORANGE, BLUE]),
                legend=alt.Legend(orient="top"),
            ),
            order=alt.Order("区分:N", sort="descending"),
            tooltip=[
                alt.Tooltip("月:N"),
                alt.Tooltip("区分:N"),
                alt.Tooltip("売上表示:N", title="売上"),
                alt.Tooltip("構成比:N", title="月の売上に占める割合"),
                alt.Tooltip("注文数:N"),
                alt.Tooltip("顧客数:N"),
            ],
        )
    )


# --------------------------------------------------------------------------
# Cohorts and LTV
# --------------------------------------------------------------------------


def retention_heatmap_chart(df: pd.DataFrame, unit: str = "month") -> alt.LayerChart | None:
    """Cohort × months-since-first-purchase retention heat map.

    Input: :func:`crm_core.analytics.cohorts.cohort_retention`; month 0 is left out
    (always 100%).
    """
    if _empty(df):
        return None
    part = df[df["months_since_first"] > 0]
    if part.empty:
        return None
    order = [cohort_label(c, unit) for c in sorted(set(part["cohort_start"]))]
    data = pd.DataFrame(
        {
            "コホート": [cohort_label(c, unit) for c in part["cohort_start"]],
            "経過月": [f"{int(k)}か月後" for k in part["months_since_first"]],
            "k": part["months_since_first"].astype(int).to_numpy(),
            "継続率": part["retention"].astype("float64").to_numpy(),
            "継続率表示": part["retention"].map(lambda v: pct_label(v, 0)).to_numpy(),
            "継続率詳細": part["retention"].map(pct_label).to_numpy(),
            "対象顧客数": part["eligible_customers"].map(count_label).to_numpy(),
            "購入顧客数": part["active_customers"].map(count_label).to_numpy(),
            "途中": ["集計中（当月）" if p else "確定" for p in part["partial"]],
        }
    )
    k_order = [f"{k}か月後" for k in sorted(set(data["k"]))]
    base = alt.Chart(data, title="コホート別 継続率（その月に購入した顧客の割合）").encode(
        x=alt.X("経過月:N", sort=k_order, title="初回購入からの経過月", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("コホート:N", sort=order, title="初回購入"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color("継続率:Q", title="継続率", scale=alt.Scale(scheme="greens"), legend=alt.Legend(format=".0%")),
        tooltip=[
            alt.Tooltip("コホート:N", title="初回購入"),
            alt.Tooltip("経過月:N"),
            alt.Tooltip("継続率詳細:N", title="継続率"),
            alt.Tooltip("購入顧客数:N"),
            alt.Tooltip("対象顧客数:N"),
            alt.Tooltip("途中:N", title="状態"),
        ],
    )
    text = base.mark_text(baseline="middle", fontSize=11).encode(text=alt.Text("継続率表示:N"))
    return alt.layer(rect, text)


def cohort_curve_chart(
    df: pd.DataFrame,
    value: str = "cumulative_revenue_per_customer",
    group: str = "cohort_start",
    unit: str = "month",
    title: str | None = None,
) -> alt.Chart | None:
    """One line per cohort over months since the first purchase.

    Parameters
    ----------
    df : DataFrame
        :func:`crm_core.analytics.cohorts.cohort_retention`, :func:`~crm_core.analytics.cohorts.ltv_curves`
        or :func:`~crm_core.analytics.cohorts.event_cohort_retention`.
    value : {"cumulative_revenue_per_customer", "retention", "revenue_per_customer"}
    group : {"cohort_start", "acquisition_event"}
    unit : str
        Cohort unit for the labels of ``cohort_start``.
    """
    labels = {
        "cumulative_revenue_per_customer": ("1人あたり累計売上", "yen"),
        "revenue_per_customer": ("1人あたり月間売上", "yen"),
        "retention": ("継続率", "pct"),
    }
    if value not in labels or group not in ("cohort_start", "acquisition_event"):
        raise ValueError(f"unknown value or group: {value!r}, {group!r}")
    if _empty(df):
        return None
    name, kind = labels[value]
    part = df if value != "retention" else df[df["months_since_first"] > 0]
    if part.empty:
        return None
    if group == "cohort_start":
        cohorts = [cohort_label(c, unit) for c in part["cohort_start"]]
        order = [cohort_label(c, unit) for c in sorted(set(part["cohort_start"]))]
        legend_title = "初回購入"
    else:
        cohorts = list(part["acquisition_event"])
        order = sorted(set(cohorts))
        legend_title = "獲得イベント"
    fmt = yen_label if kind == "yen" else pct_label
    data = pd.DataFrame(
        {
            "コホート": cohorts,
            "経過月": part["months_since_first"].astype(int).to_numpy(),
            "値": part[value].astype("float64").to_numpy(),
            "値表示": part[value].map(fmt).to_numpy(),
            "対象顧客数": part["eligible_customers"].map(count_label).to_numpy(),
        }
    )
    axis = alt.Axis(labelExpr=YEN_AXIS) if kind == "yen" else alt.Axis(format=".0%")
    return (
        alt.Chart(data, title=title or f"{legend_title}別の{name}")
        .mark_line(point=True)
        .encode(
            x=alt.X("経過月:Q", title="初回購入からの経過月", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("値:Q", title=name, axis=axis),
            color=alt.Color("コホート:N", title=legend_title, sort=order),
            tooltip=[
                alt.Tooltip("コホート:N", title=legend_title),
                alt.Tooltip("経過月:Q", title="経過月"),
                alt.Tooltip("値表示:N", title=name),
                alt.Tooltip("対象顧客数:N"),
            ],
        )
    )


def clv_distribution_chart(df: pd.DataFrame) -> alt.Chart | None:
    """Customers per predicted 365-day CLV bin.

    Input: :func:`crm_core.analytics.value.clv_distribution`.
    """
    return _binned_customers_chart(
        df, yen_label, "", "予測CLV", "今後1年間の予測CLVの分布", "予測CLV（今後365日）", -30, None,
        {} if _empty(df) else {"予測CLV合計": df["predicted_clv"].map(yen_label)},
    )


CHURN_BAND_TEXT = {"低": "33%未満", "中": "33〜66%", "高": "66%超"}
"""What each churn-risk band means: its range of the 90-day no-purchase probability (see the customer model)."""


def churn_risk_chart(df: pd.DataFrame) -> alt.Chart | None:
    """Customers per churn-risk band.

    Input: :func:`crm_core.analytics.value.churn_risk_summary`.
    """
    if _empty(df) or df["customers"].sum() == 0:
        return None
    order = list(df["churn_risk"])
    data = pd.DataFrame(
        {
            "離反リスク": df["churn_risk"].to_numpy(),
            "顧客数": df["customers"].astype(int).to_numpy(),
            "顧客数表示": df["customers"].map(count_label).to_numpy(),
            "割合": df["share"].map(pct_label).to_numpy(),
            "90日以内に購入しない確率（平均）": df["avg_churn_probability"].map(pct_label).to_numpy(),
            "生存確率（平均）": df["avg_p_alive"].map(pct_label).to_numpy(),
            "予測CLV合計": df["predicted_clv"].map(yen_label).to_numpy(),
        }
    )
    colors = [RISK_COLORS.get(b, "#888888") for b in order]
    bands = {k: f"{k}（{v}）" for k, v in CHURN_BAND_TEXT.items()}
    label = "datum.value === '低' ? '" + bands["低"] + "' : datum.value === '中' ? '" + bands["中"] + "' : datum.value === '高' ? '" \
        + bands["高"] + "' : datum.value"
    return (
        alt.Chart(data, title="離反リスク（90日以内に購入しない確率）別の顧客数")
        .mark_bar()
        .encode(
            x=alt.X("離反リスク:N", sort=order, title="離反リスク（90日以内に購入しない確率）",
                    axis=alt.Axis(labelAngle=0, labelExpr=label)),
            y=alt.Y("顧客数:Q", title="顧客数（人）"),
            color=alt.Color("離反リスク:N", sort=order, scale=alt.Scale(domain=order, range=colors), legend=None),
            tooltip=[
                alt.Tooltip("離反リスク:N"),
                alt.Tooltip("顧客数表示:N", title="顧客数"),
                alt.Tooltip("割合:N"),
                alt.Tooltip("90日以内に購入しない確率（平均）:N"),
                alt.Tooltip("生存確率（平均）:N"),
                alt.Tooltip("予測CLV合計:N"),
            ],
        )
    )


# --------------------------------------------------------------------------
# Subscriptions
# --------------------------------------------------------------------------


def subscription_delivery_chart(df: pd.DataFrame) -> alt.Chart | None:
    """Continuation rate from each delivery to the next.

    Input: :func:`crm_core.analytics.subscription.continuation_by_delivery`.
    """
    if _empty(df):
        return None
    part = df[df["continuation_rate"].notna()]
    if part.empty:
        return None
    labels = [f"{int(n)}→{int(n) + 1}回目" for n in part["delivery"]]
    data = pd.DataFrame(
        {
            "お届け回数": labels,
            "継続率": part["continuation_rate"].astype("float64").to_numpy(),
            "継続率表示": part["continuation_rate"].map(pct_label).to_numpy(),
            "到達率": part["survival"].map(pct_label).to_numpy(),
            "継続件数": part["continued"].map(lambda v: count_label(v, "件")).to_numpy(),
            "対象件数": part["eligible"].map(lambda v: count_label(v, "件")).to_numpy(),
            "判定待ち": part["pending"].map(lambda v: count_label(v, "件")).to_numpy(),
        }
    )
    return (
        alt.Chart(data, title="定期購入 お届け回数別の継続率")
        .mark_bar(color=BLUE)
        .encode(
            x=alt.X("お届け回数:N", sort=labels, title="お届け回数", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("継続率:Q", title="次回も継続した割合", axis=alt.Axis(format=".0%"), scale=alt.Scale(domain=[0, 1])),
            tooltip=[
                alt.Tooltip("お届け回数:N"),
                alt.Tooltip("継続率表示:N", title="継続率"),
                alt.Tooltip("継続件数:N"),
                alt.Tooltip("対象件数:N"),
                alt.Tooltip("判定待ち:N", title="判定待ち（直近のお届け）"),
                alt.Tooltip("到達率:N", title="1回目からの到達率"),
            ],
        )
    )


def subscription_monthly_chart(df: pd.DataFrame) -> alt.Chart | None:
    """Monthly continuation rate of subscriptions.

    Input: :func:`crm_core.analytics.subscription.continuation_by_month`.
    """
    if _empty(df):
        return None
    part = df[df["continuation_rate"].notna()]
    if part.empty:
        return None
    order = [month_label(m) for m in part["month"]]
    data = pd.DataFrame(
        {
            "月": order,
            "継続率": part["continuation_rate"].astype("float64").to_numpy(),
            "継続率表示": part["continuation_rate"].map(pct_label).to_numpy(),
            "稼働件数": part["active"].map(lambda v: count_label(v, "件")).to_numpy(),
            "新規件数": part["new"].map(lambda v: count_label(v, "件")).to_numpy(),
            "終了件数": part["ended"].map(lambda v: count_label(v, "件")).to_numpy(),
        }
    )
    return (
        alt.Chart(data, title="定期購入 月次継続率")
        .mark_line(point=True, color=BLUE)
        .encode(
            x=alt.X("月:N", sort=order, title="月", axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("継続率:Q", title="前月から継続した割合", axis=alt.Axis(format=".0%")),
            tooltip=[
                alt.Tooltip("月:N"),
                alt.Tooltip("継続率表示:N", title="継続率"),
                alt.Tooltip("稼働件数:N"),
                alt.Tooltip("新規件数:N"),
                alt.Tooltip("終了件数:N"),
            ],
        )
    )


# --------------------------------------------------------------------------
# Repurchase cycles and baskets
# --------------------------------------------------------------------------


def cycle_chart(df: pd.DataFrame, top: int = 20) -> alt.LayerChart | None:
    """Median repurchase cycle with its inter-quartile range per product (category).

    Input: :func:`crm_core.analytics.cycles.repurchase_cycles` (the ``top`` items with
    most intervals).
    """
    if _empty(df):
        return None
    part = df.head(top)
    if "product_name" in part.columns:
        names = item_labels(list(part["product_name"]), list(part["product_id"]))
    else:
        names = [str(c) for c in part["category"]]
    data = pd.DataFrame(
        {
            "商品": names,
            "中央値": part["median_days"].astype("float64").to_numpy(),
            "第1四分位": part["q1_days"].astype("float64").to_numpy(),
            "第3四分位": part["q3_days"].astype("float64").to_numpy(),
            "中央値表示": part["median_days"].map(days_label).to_numpy(),
            "範囲表示": [f"{days_label(a)}〜{days_label(b)}" for a, b in zip(part["q1_days"], part["q3_days"], strict=True)],
            "間隔の件数": part["intervals"].map(lambda v: count_label(v, "件")).to_numpy(),
            "対象顧客": part["due_customers"].map(count_label).to_numpy(),
        }
    )
    tooltip = [
        alt.Tooltip("商品:N"),
        alt.Tooltip("中央値表示:N", title="中央値"),
        alt.Tooltip("範囲表示:N", title="中間の50%（四分位範囲）"),
        alt.Tooltip("間隔の件数:N"),
        alt.Tooltip("対象顧客:N", title="まもなく買い替え時期の顧客"),
    ]
    base = alt.Chart(data, title="買い替え周期（中央値と四分位範囲）").encode(
        y=alt.Y("商品:N", sort=names, title=None, axis=alt.Axis(labelLimit=320)),
    )
    bar = base.mark_bar(color="#A9C3E6", height=12).encode(
        x=alt.X("第1四分位:Q", title="前回購入からの日数"),
        x2="第3四分位:Q",
        tooltip=tooltip,
    )
    tick = base.mark_tick(color=BLUE, thickness=3, size=18).encode(x="中央値:Q", tooltip=tooltip)
    return alt.layer(bar, tick)


def _pair_labels(df: pd.DataFrame) -> list[str]:
    if "product_id" in df.columns:
        n = len(df)
        both = item_labels(
            list(df["product_name"]) + list(df["other_product_name"]),
            list(df["product_id"]) + list(df["other_product_id"]),
        )
        left, right = both[:n], both[n:]
    else:
        left, right = list(df["category"]), list(df["other_category"])
    return [f"{a} → {b}" for a, b in zip(left, right, strict=True)]


def bought_together_chart(df: pd.DataFrame, top: int = 15) -> alt.Chart | None:
    """Lift of the strongest bought-together pairs.

    Input: :func:`crm_core.analytics.basket.bought_together` (first ``top`` rows).
    """
    if _empty(df):
        return None
    part = df.head(top)
    labels = _pair_labels(part)
    data = pd.DataFrame(
        {
            "組み合わせ": labels,
            "リフト": part["lift"].astype("float64").to_numpy(),
            "リフト表示": part["lift"].map(lambda v: f"{float(v):.2f}").to_numpy(),
            "支持度": part["support"].map(lambda v: pct_label(v, 2)).to_numpy(),
            "確信度": part["confidence"].map(pct_label).to_numpy(),
            "同時購入": part["orders_together"].map(lambda v: count_label(v, "件")).to_numpy(),
        }
    )
    return (
        alt.Chart(data, title="よく一緒に買われる組み合わせ（リフト値）")
        .mark_bar(color=BLUE)
        .encode(
            y=alt.Y("組み合わせ:N", sort=labels, title=None, axis=alt.Axis(labelLimit=420)),
            x=alt.X("リフト:Q", title="リフト値（1より大きいほど偶然以上に一緒に買われる）"),
            tooltip=[
                alt.Tooltip("組み合わせ:N", title="購入商品 → 一緒に買われる商品"),
                alt.Tooltip("同時購入:N", title="同時に購入された注文"),
                alt.Tooltip("支持度:N", title="支持度（全注文に占める割合）"),
                alt.Tooltip("確信度:N", title="確信度（左を買った注文のうち右も買った割合）"),
                alt.Tooltip("リフト表示:N", title="リフト値"),
            ],
        )
    )


def bought_next_chart(df: pd.DataFrame, top: int = 15) -> alt.Chart | None:
    """Confidence of the strongest "bought next" pairs.

    Input: :func:`crm_core.analytics.basket.bought_next` (first ``top`` rows).
    """
    if _empty(df):
        return None
    part = df.head(top)
    labels = _pair_labels(part)
    data = pd.DataFrame(
        {
            "組み合わせ": labels,
            "確信度": part["confidence"].astype("float64").to_numpy(),
            "確信度表示": part["confidence"].map(pct_label).to_numpy(),
            "リフト表示": part["lift"].map(lambda v: f"{float(v):.2f}").to_numpy(),
            "顧客数": part["customers"].map(count_label).to_numpy(),
        }
    )
    return (
        alt.Chart(data, title="次の注文で買われる商品（確信度）")
        .mark_bar(color=ORANGE)
        .encode(
            y=alt.Y("組み合わせ:N", sort=labels, title=None, axis=alt.Axis(labelLimit=420)),
            x=alt.X("確信度:Q", title="左を買った顧客のうち、次の注文で右を買った割合", axis=alt.Axis(format=".0%")),
            tooltip=[
                alt.Tooltip("組み合わせ:N", title="前回の商品 → 次に買った商品"),
                alt.Tooltip("顧客数:N"),
                alt.Tooltip("確信度表示:N", title="確信度"),
                alt.Tooltip("リフト表示:N", title="リフト値"),
            ],
        )
    )


def subscription_projection_chart(cohort: dict[str, Any] | None) -> alt.LayerChart | None:
    """Projected (sBG) vs observed share of subscriptions reaching each delivery.

    Input: one entry of ``cohorts`` of :func:`crm_core.sbg.cohort_fits`.
    """
    if not cohort or not cohort.get("fitted"):
        return None
    proj = cohort["survival"]
    rows = [{"お届け回数": n, "系列": "予測（sBGモデル）", "到達率": float(v), "表示": pct_label(v)}
            for n, v in enumerate(proj, start=1)]
    rows += [{"お届け回数": n, "系列": "実績", "到達率": float(v), "表示": pct_label(v)}
             for n, v in enumerate(cohort.get("observed") or [], start=1)]
    data = pd.DataFrame(rows)
    color = alt.Color("系列:N", title=None, scale=alt.Scale(domain=["実績", "予測（sBGモデル）"], range=[ORANGE, BLUE]),
                      legend=alt.Legend(orient="top"))
    base = alt.Chart(data, title=f"定期の到達率：実績と予測（{cohort['cohort']}）").encode(
        x=alt.X("お届け回数:Q", title="お届け回数", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("到達率:Q", title="その回まで続いた定期の割合", axis=alt.Axis(format=".0%"), scale=alt.Scale(domain=[0, 1])),
        color=color,
        tooltip=[alt.Tooltip("系列:N"), alt.Tooltip("お届け回数:Q"), alt.Tooltip("表示:N", title="到達率")],
    )
    return alt.layer(
        base.transform_filter(alt.datum["系列"] == "予測（sBGモデル）").mark_line(strokeDash=[4, 3]),
        base.transform_filter(alt.datum["系列"] == "実績").mark_line(point=True),
    )
