"""Altair charts of campaign results (Japanese labels); each returns a chart or None when there is nothing to draw.

Inputs are the frames of :mod:`crm_core.results.attribution`; every chart is tested
through ``chart.to_dict()``.  Captions saying how to read each chart are in
:data:`CAPTIONS` so the page and the tests use the same words.
"""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import pandas as pd

from crm_core import jp

CAPTIONS = {
    "daily": "ショップ全体の日別売上です。赤い線が送信日。送信後に売上の山ができていれば、施策がきっかけになった可能性があります"
             "（セールや季節の影響も含むため、効果の判断は下の「送らないグループ」との比較で行います）。",
    "cumulative": "送信からの日数ごとに、1人あたりの累計売上を「配信したグループ」と「送らないグループ」で比べています。"
                  "2本の線の開きが、施策による上乗せです。線が重なっていれば効果は見られません。",
    "funnel": "配信したお客様のうち、届いた・開いた・クリックした・購入した人数です。開封率とクリック率は届いた人に対する割合、"
              "到達率と購入率は配信対象に対する割合で、上の数字と同じです。どこで大きく減っているかが改善のヒントです"
              "（購入は集計期間内の注文。開封はメールでは画像の表示で数えるため少なめに出ることがあります）。",
    "variants": "パターンごとの購入率です。点が購入率、横線が95%信頼区間（この範囲にほぼ確実に本当の値がある幅）。"
                "横線どうしが大きく重なっていれば、差は偶然の範囲かもしれません。",
    "lift": "配信したグループと送らないグループの購入率の差（ポイント）です。横線が95%信頼区間。"
            "横線全体が0より右にあれば「効果あり」、0をまたいでいれば効果は確認できません。",
    "list": "各施策について、送信7日前から集計期間の終わりまでの、配信したお客様の日別売上の推移です。",
    "programme": "月ごとの、1人あたり売上の差（全体の比較グループ以外 − 全体の比較グループ）です。点が差、縦線が95%信頼区間。"
                 "縦線全体が0より上にある月は、施策全体で売上を上乗せできていたと言えます。0をまたぐ月は、差が誤差の範囲です。",
    "chance": "「勝つ確率」は、配信した方が本当に上回っている確率です（事前の思い込みを入れないベイズ推定、GrowthBookと同じ考え方）。"
              "95%以上なら「ほぼ確実に上回っている」、50%前後なら「どちらとも言えない」と読みます。対象が少なすぎるときは出しません。",
    "cuped": "分散削減（CUPED）：送信前90日間の購入額で、もともとよく買う人・買わない人がたまたま片方に偏った分を補正した区間です。"
             "推定する差は同じもので、区間が狭いほど判定が確かになります。「幅の比」が小さいほど補正が効いています。",
    "mde": "いつもの購入率・1人あたり売上は、対象のお客様の直近1年の購入を、効果を数える日数ごとに区切って計算しています。"
           "「見分けられる最小の差」より小さい効果は、実際にあっても「効果は確認できません」と出やすくなります。",
}


def _axis_yen() -> alt.Axis:
    return alt.Axis(format=",.0f", title="売上（円）")


def daily_sales_chart(daily: pd.DataFrame, send_label: str = "送信日") -> alt.LayerChart | None:
    """Daily shop revenue with the send day marked (``day, offset, revenue, orders``)."""
    if daily is None or daily.empty:
        return None
    df = daily.copy()
    df["day"] = pd.to_datetime(df["day"])
    df["label"] = df["day"].dt.strftime("%-m月%-d日")
    base = alt.Chart(df)
    bars = base.mark_bar(color="#8fb3d9").encode(
        x=alt.X("day:T", title="日付", axis=alt.Axis(format="%m/%d")),
        y=alt.Y("revenue:Q", axis=_axis_yen()),
        tooltip=[alt.Tooltip("label:N", title="日付"), alt.Tooltip("revenue:Q", title="売上（円）", format=",.0f"),
                 alt.Tooltip("orders:Q", title="注文数"), alt.Tooltip("offset:Q", title="送信からの日数")],
    )
    send = df[df["offset"] == 0].assign(text=send_label)
    rule = alt.Chart(send).mark_rule(color="#d62728", strokeWidth=2).encode(x="day:T")
    text = alt.Chart(send).mark_text(color="#d62728", align="left", dx=4, dy=-6, baseline="top").encode(
        x="day:T", y=alt.value(0), text="text:N")
    return alt.layer(bars, rule, text).properties(height=260)


def cumulative_chart(cum: pd.DataFrame) -> alt.Chart | None:
    """Cumulative revenue per customer by day since the send (``day, group, revenue_per_customer``)."""
    if cum is None or cum.empty:
        return None
    return alt.Chart(cum).mark_line(point=True).encode(
        x=alt.X("day:O", title="送信からの日数"),
        y=alt.Y("revenue_per_customer:Q", title="1人あたり累計売上（円）", axis=alt.Axis(format=",.0f")),
        color=alt.Color("group:N", title="グループ", scale=alt.Scale(domain=["配信", "送らないグループ"], range=["#1f77b4", "#9e9e9e"])),
        tooltip=[alt.Tooltip("group:N", title="グループ"), alt.Tooltip("day:O", title="日数"),
                 alt.Tooltip("revenue_per_customer:Q", title="1人あたり累計売上（円）", format=",.1f")],
    ).properties(height=260)


def funnel_chart(funnel: pd.DataFrame) -> alt.LayerChart | None:
    """Delivered → opened → clicked → bought (``step, customers, share``)."""
    if funnel is None or funnel.empty:
        return None
    df = funnel.copy()
    if "rate_label" not in df:
        df["rate_label"], df["rate"] = "", df["share"]
    df["text"] = [f"{jp.count(n, '人')}" + (f"（{lab} {jp.pct(r)}）" if lab else "")
                  for n, r, lab in zip(df["customers"], df["rate"], df["rate_label"])]
    order = df["step"].tolist()
    base = alt.Chart(df).encode(y=alt.Y("step:N", sort=order, title=None))
    bars = base.mark_bar(color="#4c78a8").encode(
        x=alt.X("customers:Q", title="人数"),
        tooltip=[alt.Tooltip("step:N", title="段階"), alt.Tooltip("customers:Q", title="人数", format=","),
                 alt.Tooltip("text:N", title="割合（上の数字と同じ）"),
                 alt.Tooltip("share:Q", title="配信対象に対する割合", format=".1%")],
    )
    text = base.mark_text(align="left", dx=4).encode(x="customers:Q", text="text:N")
    return alt.layer(bars, text).properties(height=40 * len(df) + 20)


def variant_chart(rows: list[dict[str, Any]]) -> alt.LayerChart | None:
    """Conversion per group with 95% intervals (``variant, conversion, low, high, recipients, buyers``)."""
    rows = [r for r in rows or [] if r.get("recipients")]
    if not rows:
        return None
    df = pd.DataFrame(rows)
    df = df[["variant", "conversion", "low", "high", "recipients", "buyers"]]
    base = alt.Chart(df).encode(y=alt.Y("variant:N", title=None, sort=df["variant"].tolist()))
    bars = base.mark_rule(strokeWidth=3, color="#7f7f7f").encode(
        x=alt.X("low:Q", title="購入率（95%信頼区間）", axis=alt.Axis(format=".0%")), x2="high:Q")
    points = base.mark_point(filled=True, size=120, color="#1f77b4").encode(
        x="conversion:Q",
        tooltip=[alt.Tooltip("variant:N", title="グループ"), alt.Tooltip("conversion:Q", title="購入率", format=".1%"),
                 alt.Tooltip("low:Q", title="下限", format=".1%"), alt.Tooltip("high:Q", title="上限", format=".1%"),
                 alt.Tooltip("buyers:Q", title="購入者数"), alt.Tooltip("recipients:Q", title="対象者数")],
    )
    return alt.layer(bars, points).properties(height=50 * len(df) + 30)


def lift_chart(lift: dict[str, Any] | None) -> alt.LayerChart | None:
    """The conversion difference (treatment − holdout) with its interval and the zero line."""
    if not lift or any(math.isnan(float(lift[k])) for k in ("conversion_diff", "conversion_low", "conversion_high")):
        return None
    df = pd.DataFrame([{"label": "購入率の差", "diff": lift["conversion_diff"], "low": lift["conversion_low"],
                        "high": lift["conversion_high"], "verdict": lift["verdict"]}])
    base = alt.Chart(df).encode(y=alt.Y("label:N", title=None))
    interval = base.mark_rule(strokeWidth=4, color="#7f7f7f").encode(
        x=alt.X("low:Q", title="配信 − 送らないグループ（購入率の差）", axis=alt.Axis(format="+.0%")), x2="high:Q")
    point = base.mark_point(filled=True, size=150, color="#1f77b4").encode(
        x="diff:Q",
        tooltip=[alt.Tooltip("diff:Q", title="差", format="+.2%"), alt.Tooltip("low:Q", title="下限", format="+.2%"),
                 alt.Tooltip("high:Q", title="上限", format="+.2%"), alt.Tooltip("verdict:N", title="判定")],
    )
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#d62728", strokeDash=[4, 4]).encode(x="x:Q")
    return alt.layer(interval, point, zero).properties(height=90)


def trends_chart(summaries: pd.DataFrame) -> alt.Chart | None:
    """Small multiples of each campaign's recipients' daily revenue (``name, trend``), one row per campaign."""
    if summaries is None or summaries.empty:
        return None
    rows = []
    for _, s in summaries.iterrows():
        for i, v in enumerate(s["trend"]):
            rows.append({"name": s["name"], "day": i - 7, "revenue": v})
    df = pd.DataFrame(rows)
    return alt.Chart(df).mark_area(line=True, opacity=0.4).encode(
        x=alt.X("day:Q", title="送信からの日数"),
        y=alt.Y("revenue:Q", title=None, axis=alt.Axis(format=",.0f", tickCount=2)),
        tooltip=[alt.Tooltip("name:N", title="施策"), alt.Tooltip("day:Q", title="日数"),
                 alt.Tooltip("revenue:Q", title="売上（円）", format=",.0f")],
    ).properties(height=50, width=300).facet(row=alt.Row("name:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")))


def programme_chart(months: pd.DataFrame) -> alt.LayerChart | None:
    """Monthly revenue-per-customer difference against the global holdout with its interval (:func:`programme_lift`)."""
    if months is None or months.empty:
        return None
    df = months.copy()
    df["label"] = [f"{pd.Timestamp(m):%Y年%-m月}" for m in df["month"]]
    order = df["label"].tolist()
    base = alt.Chart(df).encode(x=alt.X("label:N", title="月", sort=order, axis=alt.Axis(labelAngle=0)))
    interval = base.mark_rule(strokeWidth=3, color="#7f7f7f").encode(
        y=alt.Y("low:Q", title="1人あたり売上の差（円）", axis=alt.Axis(format=",.0f")), y2="high:Q")
    point = base.mark_point(filled=True, size=120, color="#1f77b4").encode(
        y="diff:Q",
        tooltip=[alt.Tooltip("label:N", title="月"), alt.Tooltip("diff:Q", title="差（円）", format=",.0f"),
                 alt.Tooltip("low:Q", title="下限", format=",.0f"), alt.Tooltip("high:Q", title="上限", format=",.0f"),
                 alt.Tooltip("incremental_revenue:Q", title="上乗せ売上（円）", format=",.0f")],
    )
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#d62728", strokeDash=[4, 4]).encode(y="y:Q")
    return alt.layer(interval, point, zero).properties(height=260)
