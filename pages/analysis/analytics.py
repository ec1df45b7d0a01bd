"""顧客分析 page: RFM, repeat, cohorts, subscriptions, LTV, repurchase cycles, baskets.

Thin: read widgets -> call ``crm_core`` (cached per data version) -> render.
Tabs run lazily: only the open tab computes.  Page-local session keys start
with ``ana_``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from crm_core import clock, jp, model
from crm_core.analytics import basket, charts, cohorts, cycles, profit, repeat, subscription
from crm_core.analytics import value as analytics
from crm_core.model.predict import REFIT_DAYS, REFIT_GROWTH
from pages import ui

TABS = ["RFM", "リピート", "コホート", "定期", "LTV・予測", "買い替え周期", "併売"]

# What the cache may call, by name (the store is not hashable, so it is not an argument).
_FUNCS: dict[str, Callable[..., Any]] = {
    "rfm_segment_summary": analytics.rfm_segment_summary,
    "rf_heatmap": analytics.rf_heatmap,
    "rank_spend_grid": analytics.rank_spend_grid,
    "clv_distribution": analytics.clv_distribution,
    "churn_risk_summary": analytics.churn_risk_summary,
    "repeat_conversion": repeat.repeat_conversion,
    "days_to_second_purchase": repeat.days_to_second_purchase,
    "second_purchase_stats": repeat.second_purchase_stats,
    "revenue_new_vs_repeat": repeat.revenue_new_vs_repeat,
    "cohort_retention": cohorts.cohort_retention,
    "event_cohort_retention": cohorts.event_cohort_retention,
    "ltv_curves": cohorts.ltv_curves,
    "continuation_by_delivery": subscription.continuation_by_delivery,
    "continuation_by_month": subscription.continuation_by_month,
    "retention_projection": subscription.retention_projection,
    "subscriber_values": subscription.subscriber_values,
    "repurchase_cycles": cycles.repurchase_cycles,
    "due_customers": cycles.due_customers,
    "bought_together": basket.bought_together,
    "bought_next": basket.bought_next,
}

NO_MODEL = (
    "顧客モデル（RFMスコア・ランク・予測値）がまだ作成されていません。"
    "注文データを取り込むと作成されます。取込後も表示されない場合は「データ取込」ページで顧客モデルを再計算してください。"
)


@st.cache_data(ttl=900, max_entries=256, show_spinner="集計しています…（大きなショップでは初回に数秒かかります。結果はしばらく保存されます）")
def _cached(name: str, db: str, version: tuple, kwargs: tuple) -> Any:
    """One analysis result, keyed by store file, data version and arguments."""
    return _FUNCS[name](ui.store(), **dict(kwargs))


@st.cache_data(ttl=900, max_entries=8, show_spinner=False)
def _latest_order_date(db: str, version: tuple) -> dt.date | None:
    """The latest order's day (a scan of every order), kept per data version: reruns reuse it."""
    return analytics.latest_order_date(ui.store())


def compute(name: str, _store: Any = None, **kwargs: Any) -> Any:
    """Run an analysis through the cache; errors become a Japanese message.

    A fragment passes its own run's store (``_store``): the cache key is then that store's file and versions,
    not the page run's, so an import between the page run and the fragment's rerun is not cached under the old key.
    """
    if _store is None:
        return ui.run(_cached, name, str(STORE.path), VERSION, tuple(sorted(kwargs.items())))
    return ui.run(_cached, name, str(_store.path), data_versions(_store), tuple(sorted(kwargs.items())))


def data_versions(store: Any) -> tuple:
    """What the cached analyses are kept per: the data version, the orders, the customer model's day."""
    return (ui.data_version(), store.table_count("orders"), str(analytics.customer_model_as_of(store)))


def table(df: pd.DataFrame, columns: dict[str, tuple[str, str]], file_name: str, key: str) -> None:
    """Show ``df`` with Japanese headers and offer it as a CSV Excel opens.

    ``columns`` maps a column to (Japanese header, kind); kind is one of
    text, int, yen, pct (ratio shown as 12.3%), days, ratio, month, date.
    The CSV keeps plain numbers (percentages as 12.3 under a "(%)" header);
    on screen, gaps read "—" (a numeric column with gaps becomes text) so
    that no "None" appears.
    """
    out = pd.DataFrame(index=df.index)
    screen = pd.DataFrame(index=df.index)
    config: dict[str, Any] = {}
    # On screen: separators and no spurious decimals (12%, 45日 rather than 12.0%, 45.0); one yen sign: amounts
    # are plain numbers under a 円 header (Streamlit's "yen" format shows ￥ in Japanese browsers).
    formats = {"pct": "percent", "yen": "localized", "int": "localized", "days": "localized", "ratio": "localized"}
    for col, (label, kind) in columns.items():
        values = df[col]
        if kind in formats:
            number = pd.to_numeric(values, errors="coerce").astype("Float64")
            if kind == "pct":
                number = (number * 100).round(1)
            elif kind == "yen":
                number = number.round(0)
            elif kind == "int":
                number = number.round(0).astype("Int64")
            else:
                number = number.round(1 if kind == "days" else 2)
            out[label] = number
            if number.isna().any():
                screen[label] = number.map(lambda v, k=kind: _text(v, k))
            else:
                screen[label] = (number / 100).round(3) if kind == "pct" else number  # "percent" formats a ratio
                shown = label.replace("(%)", "") if kind == "pct" else label if kind != "yen" or "円" in label else f"{label}（円）"
                config[label] = st.column_config.NumberColumn(shown, format=formats[kind])
        elif kind == "month":
            out[label] = screen[label] = values.map(charts.month_label)
        elif kind == "date":
            out[label] = screen[label] = values.map(ui.jdate)
        else:
            out[label] = values
            screen[label] = values.astype(object).where(values.notna(), "—")
    ui.dataframe(screen.reset_index(drop=True), column_config=config, hide_index=True, width="stretch")
    st.download_button(
        "CSVをダウンロード",
        partial(ui.csv_bytes, out.reset_index(drop=True)),
        file_name=f"{file_name}_{AS_OF:%Y%m%d}.csv",
        mime="text/csv",
        key=f"ana_dl_{key}",
        on_click="ignore",
        icon="⬇️",
    )


def _text(value: Any, kind: str) -> str:
    """A number of a column with gaps as display text ("—" for a gap)."""
    if pd.isna(value):
        return "—"
    if kind == "pct":
        return ui.pct(value / 100)
    if kind == "yen":
        return ui.yen(value)
    if kind == "int":
        return ui.count(value)
    return jp.number(value, 1 if kind == "days" else 2)


def chart(c: tuple, caption: str, empty: str) -> None:
    """Render ``(builder, *args)``'s chart with its how-to-read caption, or an explanatory empty state.

    The chart is built once per arguments (:func:`pages.ui.altair_chart`): a rerun after a widget that
    did not change its data reuses it."""
    if not ui.altair_chart(*c):
        ui.empty_state(empty)
        return
    st.caption(caption)


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` months earlier (clipped to the month's end)."""
    return (pd.Timestamp(day) - pd.DateOffset(months=months)).date()


# --------------------------------------------------------------------------
# Tabs
# --------------------------------------------------------------------------


def tab_rfm() -> None:
    st.subheader("RFMセグメント")
    if not HAS_MODEL:
        ui.empty_state(NO_MODEL)
    else:
        st.caption(f"セグメントとスコアは顧客モデルの基準日（{ui.jdate(analytics.customer_model_as_of(STORE))}）時点です。")
        seg = compute("rfm_segment_summary")
        chart(
            (charts.rfm_segment_chart, seg),
            "青は顧客数、オレンジは累計売上の構成比です。オレンジが青より高いセグメントは、人数以上に売上を支えています。",
            "セグメントに分類された顧客がいません。",
        )
        table(
            seg,
            {
                "segment": ("セグメント", "text"),
                "customers": ("顧客数", "int"),
                "customer_share": ("顧客構成比(%)", "pct"),
                "revenue": ("累計売上", "yen"),
                "revenue_share": ("売上構成比(%)", "pct"),
                "revenue_per_customer": ("1人あたり累計売上", "yen"),
                "revenue_12m": ("直近12か月売上", "yen"),
                "revenue_12m_share": ("直近12か月売上構成比(%)", "pct"),
            },
            "RFMセグメント",
            "rfm",
        )
        chart(
            (charts.rf_heatmap_chart, compute("rf_heatmap")),
            "縦が最終購入の新しさ（上ほど最近）、横が購入回数（右ほど多い）。右上は優良顧客、左上は最近買ったばかりの新規・育成中、"
            "下の段は離れつつある顧客です。色が濃いほど人数が多いマスです。",
            "RFMスコアのある顧客がいません。",
        )

    rank_movement()


@ui.fragment
def rank_movement() -> None:
    """Rank movement between two days: its days and thresholds rerun only this part, not the RFM charts above.

    A fragment (:func:`pages.ui.fragment`): the store comes from :func:`pages.ui.store` inside, never ``STORE``.
    """
    store = ui.store()
    st.subheader("ランクの移動")
    c1, c2 = st.columns(2)
    date_from = c1.date_input(
        "比較元の日付", value=months_before(AS_OF, 3), max_value=AS_OF, key="ana_rank_from", format="YYYY/MM/DD"
    )
    date_to = c2.date_input("比較先の日付", value=AS_OF, max_value=AS_OF, key="ana_rank_to", format="YYYY/MM/DD")
    ranks = analytics.shop_rank_thresholds(store)
    basis = analytics.shop_rank_basis(store)
    by_orders = basis == "orders_12m"
    with st.expander("ランクの基準（直近365日の" + ("購入回数" if by_orders else "購入金額") + "）"):
        cols = st.columns(max(len(ranks) - 1, 1))
        thresholds = []
        for i, (col, (name, default)) in enumerate(zip(cols, ranks[:-1], strict=False)):
            value = col.number_input(f"{ui.md(name)}（{'回' if by_orders else '円'}以上）", min_value=0, value=int(default),
                                     step=1 if by_orders else 1000,
                                     key=f"ana_rank_orders_{i}" if by_orders else f"ana_rank_{i}")
            thresholds.append((name, float(value)))
        thresholds.append(ranks[-1])
        st.caption(
            f"それ以外は{ui.md(ranks[-1][0])}です。初期値はショップのランク設定です。ここでの変更はこの分析にだけ使われます。"
            "基準は上位のランクほど高くしてください。"
        )
    # The orders are read once per pair of days; other thresholds only re-bucket the cached grid.
    grid = compute("rank_spend_grid", store, date_from=date_from, date_to=date_to, basis=basis)
    moves = ui.run(analytics.rank_movement_from_grid, grid, tuple(thresholds))
    summary = analytics.rank_movement_summary(moves)
    for col, row in zip(st.columns(4), summary.itertuples(index=False), strict=True):
        col.metric(ui.md(row.movement), ui.count(row.customers, "人"), help=f"全体の{ui.pct(row.share)}")
    chart(
        (charts.rank_movement_chart, moves, date_from, date_to),
        "行が比較元の日のランク、列が比較先の日のランクです。対角線上は維持、左下は昇格、右上は降格。"
        "「未購入」の行は、比較元の日より後に初めて購入した新規顧客です。ランクはその日までの365日間の購入金額で決まります。",
        "この期間に購入した顧客がいません。",
    )
    matrix = moves.pivot(index="from_rank", columns="to_rank", values="customers")
    matrix = matrix.reindex(index=list(dict.fromkeys(moves["from_rank"])), columns=list(dict.fromkeys(moves["to_rank"])))
    matrix = matrix.rename_axis(index="移動元", columns=None).reset_index()
    table(
        matrix,
        {c: (c if c != "移動元" else "移動元＼移動先", "int" if c != "移動元" else "text") for c in matrix.columns},
        "ランク移動",
        "rank",
    )


def tab_repeat() -> None:
    conv = compute("repeat_conversion", as_of=AS_OF, windows=(30, 60, 90), cohorts=12)
    summary = repeat.repeat_conversion_summary(conv)
    st.subheader("F2転換率（初回 → 2回目）")
    if summary.empty:
        ui.empty_state("集計期間に初回購入した顧客がいません。")
        return
    for col, row in zip(st.columns(len(summary)), summary.itertuples(index=False), strict=True):
        col.metric(
            f"{row.window_days}日以内のF2転換率",
            ui.pct(None if pd.isna(row.f2_rate) else row.f2_rate),
            help=f"集計対象 {row.cohorts}か月分・{row.customers:,}人。F2→F3転換率 "
            f"{ui.pct(None if pd.isna(row.f3_rate) else row.f3_rate)}",
        )
    step = st.radio("表示する指標", ["F2（2回目）", "F3（F2から3回目）"], horizontal=True, key="ana_repeat_step")
    immature = conv[~conv["mature"]]
    note = ""
    if not immature.empty:
        young = ", ".join(f"{w}日: {n}か月" for w, n in immature.groupby("window_days")["cohort_month"].nunique().items())
        note = f"初回購入から日数が経っていない月は、期間を全員が経過するまで集計に含めません（除外した直近の月数 — {young}）。"
    chart(
        (charts.repeat_conversion_chart, conv, "f2" if step.startswith("F2") else "f3"),
        "初回購入月ごとに、初回購入から30・60・90日以内に2回目（F3は3回目）を購入した顧客の割合です。"
        "同じ日の複数注文は1回と数えます。" + note,
        "まだ期間を経過した初回購入月がありません。データが増えると表示されます。",
    )
    table(
        conv,
        {
            "cohort_month": ("初回購入月", "month"),
            "window_days": ("期間(日)", "int"),
            "customers": ("新規顧客数", "int"),
            "f2_customers": ("F2顧客数", "int"),
            "f2_rate": ("F2転換率(%)", "pct"),
            "f3_customers": ("F3顧客数", "int"),
            "f3_rate": ("F2→F3転換率(%)", "pct"),
        },
        "F2転換率",
        "f2",
    )

    st.subheader("2回目購入までの日数")
    stats = compute("second_purchase_stats", as_of=AS_OF)
    c1, c2, c3 = st.columns(3)
    c1.metric("リピーター", ui.count(stats["repeat_customers"], "人"))
    c2.metric("リピート率", ui.pct(stats["repeat_share"]))
    c3.metric("2回目までの日数（中央値）", "—" if stats["median_days"] is None else f"{stats['median_days']:.0f}日")
    chart(
        (charts.days_to_second_chart, compute("days_to_second_purchase", as_of=AS_OF)),
        "2回目を購入した顧客が、初回から何日後に買ったかの分布です。山の位置がフォローのメールやLINEを送る目安になります。",
        "2回目の購入をした顧客がまだいません。",
    )

    st.subheader("新規・リピート別の売上")
    split = compute("revenue_new_vs_repeat", as_of=AS_OF, months=24)
    chart(
        (charts.new_vs_repeat_chart, split),
        "月ごとの売上を、初回購入日の注文（新規）とそれ以外（リピート）に分けています。リピートの割合が増えるほど、既存顧客に支えられた売上です。",
        "集計期間に売上がありません。",
    )
    if not split.empty:
        table(
            split,
            {
                "month": ("月", "month"),
                "customer_type": ("区分", "text"),
                "orders": ("注文数", "int"),
                "customers": ("顧客数", "int"),
                "revenue": ("売上", "yen"),
                "revenue_share": ("月の売上に占める割合(%)", "pct"),
            },
            "新規リピート売上",
            "split",
        )


def tab_cohorts() -> None:
    unit_label = st.radio("コホートの単位", ["月", "四半期"], horizontal=True, key="ana_cohort_unit")
    unit = "month" if unit_label == "月" else "quarter"
    ret = compute("cohort_retention", as_of=AS_OF, unit=unit, cohorts=12 if unit == "month" else 8, max_months=12)
    st.subheader("コホート別の継続率")
    chart(
        (charts.retention_heatmap_chart, ret, unit),
        "行は初回購入の月（四半期）、列は初回購入から何か月後か。マスの数字は、その月に購入した顧客の割合です。"
        "右へ行くほど薄くなるのが普通で、下の行（新しいコホート）が上の行より濃ければ、リピート施策が効いています。",
        "初回購入から1か月以上たった顧客がまだいません。",
    )
    if not ret.empty:
        wide = ret.pivot(index="cohort_start", columns="months_since_first", values="retention").sort_index()
        sizes = ret.groupby("cohort_start")["customers"].first()
        out = pd.DataFrame(
            {"初回購入": [charts.cohort_label(c, unit) for c in wide.index], "顧客数": sizes.reindex(wide.index).to_numpy()}
        )
        for k in wide.columns:
            out[f"{k}か月後(%)"] = (wide[k].to_numpy() * 100).round(1)
        table(
            out,
            {c: (c, "text" if c == "初回購入" else ("int" if c == "顧客数" else "days")) for c in out.columns},
            "コホート継続率",
            "cohort",
        )
    st.subheader("コホート別の1人あたり累計売上")
    chart(
        (charts.cohort_curve_chart, ret, "cumulative_revenue_per_customer", "cohort_start", unit),
        "初回購入からの経過月ごとに、コホートの1人あたり累計売上（初回購入を含む）を示します。線が上にあるコホートほど顧客が育っています。",
        "表示できるコホートがありません。",
    )
    st.subheader("獲得イベント別")
    if not HAS_MODEL:
        ui.empty_state(NO_MODEL)
        return
    ev = compute("event_cohort_retention", as_of=AS_OF, max_months=12, lookback_months=24)
    chart(
        (charts.cohort_curve_chart, ev, "retention", "acquisition_event", "month", "獲得イベント別の継続率"),
        "初回購入がスーパーSALE・お買い物マラソン・通常時のどれだったかで分けた継続率です。"
        "セールで獲得した顧客が通常時より早く離れていれば、セール後のフォローを厚くしましょう。",
        "初回購入から1か月以上たった顧客がまだいません。",
    )
    chart(
        (charts.cohort_curve_chart,
            ev, "cumulative_revenue_per_customer", "acquisition_event", "month", "獲得イベント別の1人あたり累計売上"
        ),
        "同じ顧客群の1人あたり累計売上です。経過月ごとに、その月まで観測できた顧客だけで平均しています。",
        "表示できるデータがありません。",
    )


def tab_subscription() -> None:
    if not subscription.has_subscriptions(STORE):
        ui.empty_state(
            "定期購入の注文が見つかりません。楽天の「楽天ペイ受注管理」CSVでは「申込番号」と「申込お届け回数」の列があると、"
            "定期購入として取り込まれます。汎用CSVの場合は、定期購入の申込番号を「subscription_id」、"
            "お届け回数を「subscription_seq」に割り当てて取り込んでください（回数がなければ注文日時の順に数えます）。"
        )
        return
    with st.expander("判定の設定"):
        grace = st.number_input(
            "最後のお届けから何日たったら解約とみなすか",
            min_value=0,
            max_value=365,
            value=subscription.GRACE_DAYS,
            step=5,
            key="ana_sub_grace",
            help="この日数より新しいお届けで止まっている定期は、次回がまだ来ていないだけかもしれないため「判定待ち」として継続率から除きます。",
        )
    by_n = compute("continuation_by_delivery", as_of=AS_OF, max_deliveries=12, grace_days=int(grace))
    by_m = compute("continuation_by_month", as_of=AS_OF, months=12, grace_days=int(grace))
    c1, c2, c3 = st.columns(3)
    if not by_m.empty:
        c1.metric("今月の稼働件数", ui.count(by_m["active"].iloc[-1], "件"))
        rate = by_m["continuation_rate"].dropna()
        c2.metric("直近の月次継続率", ui.pct(rate.iloc[-1] if len(rate) else None))
    if len(by_n) and pd.notna(by_n["continuation_rate"].iloc[0]):
        c3.metric("1回目→2回目の継続率", ui.pct(by_n["continuation_rate"].iloc[0]))
    st.subheader("お届け回数別の継続率")
    chart(
        (charts.subscription_delivery_chart, by_n),
        "各回のお届けのあと、次の回も届いた定期の割合です。多くの定期は2回目・3回目で大きく離脱します。"
        f"最後のお届けから{int(grace)}日以内のものは判定待ちとして除いています。",
        "継続率を計算できるお届けがまだありません。",
    )
    if not by_n.empty:
        table(
            by_n,
            {
                "delivery": ("お届け回数", "int"),
                "subscriptions": ("到達した定期", "int"),
                "continued": ("次回も継続", "int"),
                "pending": ("判定待ち", "int"),
                "eligible": ("判定対象", "int"),
                "continuation_rate": ("継続率(%)", "pct"),
                "survival": ("1回目からの到達率(%)", "pct"),
            },
            "定期お届け回数別継続率",
            "sub_n",
        )
    st.subheader("月次継続率")
    chart(
        (charts.subscription_monthly_chart, by_m),
        "前月に稼働していた定期のうち、その月も続いていた割合です。隔月などのお届けでも、"
        f"最後のお届けから{int(grace)}日までは稼働中として数えます。",
        "月次継続率を計算できる期間がまだありません。",
    )
    if not by_m.empty:
        table(
            by_m,
            {
                "month": ("月", "month"),
                "active": ("稼働件数", "int"),
                "new": ("新規件数", "int"),
                "continued": ("継続件数", "int"),
                "ended": ("終了件数", "int"),
                "continuation_rate": ("継続率(%)", "pct"),
            },
            "定期月次継続率",
            "sub_m",
        )
    subscription_projection(int(grace))


def subscription_projection(grace: int) -> None:
    """The sBG projection: fitted parameters per start cohort, projected survival, value per subscriber."""
    st.subheader("これからの継続の予測（sBGモデル）")
    unit = st.selectbox("開始時期のまとめ方（コホート）", list(subscription.COHORT_UNITS), index=list(subscription.COHORT_UNITS).index("half"),
                        format_func=subscription.COHORT_UNITS.get, key="ana_sub_unit")
    report = compute("retention_projection", as_of=AS_OF, grace_days=grace, unit=unit)
    cohorts_ = report["cohorts"] if report else []
    pooled = cohorts_[0] if cohorts_ else None
    if pooled is None or not pooled["fitted"]:
        ui.empty_state("解約した定期がまだないため、継続の予測はできません。" if pooled else "定期購入の注文がありません。")
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("12回目まで続く割合（予測）", ui.pct(pooled["survival"][11] if len(pooled["survival"]) > 11 else None))
    c2.metric("新規1件の今後のお届け（予測）", f"{pooled['derl_new']:.1f}回",
              help=f"2回目以降に届く回数の期待値。先のお届けほど割り引いています（年{report['annual_discount']:.0%}）。")
    c3.metric("新規1件の定期の価値（予測）", ui.yen(pooled["value_new"]), help="1回目を含むお届け回数の期待値 × 1回あたりの平均金額")
    chart(
        (charts.subscription_projection_chart, pooled),
        "オレンジの線が実績（その回まで続いた定期の割合）、青の点線がsBGモデルによる予測です。sBGモデルは、定期ごとに"
        "「毎回やめる確率」が違うと考え、やめやすい人から先に抜けるので、回を重ねるほど継続率が上がる様子を表します。"
        "実績の線に予測が沿っていれば、その先の予測も参考にできます（Fader & Hardie 2007）。",
        "予測を表示できません。",
    )
    rows = pd.DataFrame([{
        "cohort": c["cohort"], "subscriptions": c["subscriptions"], "ended": c["ended"], "active": c["active"],
        "alpha": c["alpha"], "beta": c["beta"], "mean_churn": c["mean_churn"],
        "s6": c["survival"][5] if c["fitted"] else None, "s12": c["survival"][11] if c["fitted"] else None,
        "derl": c["derl_new"], "value": c["value_new"], "note": c["note"] or "—",
    } for c in cohorts_])
    table(
        rows,
        {
            "cohort": ("開始時期", "text"), "subscriptions": ("定期件数", "int"), "ended": ("解約", "int"),
            "active": ("継続中", "int"), "alpha": ("alpha", "ratio"), "beta": ("beta", "ratio"),
            "mean_churn": ("平均解約率(%)", "pct"), "s6": ("6回目到達(%)", "pct"), "s12": ("12回目到達(%)", "pct"),
            "derl": ("今後のお届け(回)", "ratio"), "value": ("新規1件の価値", "yen"), "note": ("メモ", "text"),
        },
        "定期継続予測_コホート別",
        "sub_sbg",
    )
    st.caption(
        "開始時期ごとに、お届け回数ごとの継続・解約から2つの数（alpha・beta）を推定しています。平均解約率は1回ごとにやめる確率の平均"
        f"（alpha÷(alpha+beta)）。最後のお届けから{grace}日以内の定期は「まだ続くかもしれない」ものとして扱います（打ち切り）。"
        "「今後のお届け」は2回目以降に届く回数の期待値で、先の回ほど割り引いています。件数が少ない開始時期は「全体」を参考にしてください。"
    )
    values = compute("subscriber_values", as_of=AS_OF, grace_days=grace)
    if values is not None and not values.empty:
        st.markdown("**継続中の定期ごとの予測**")
        table(
            values.head(500),
            {
                "subscription_id": ("申込番号", "text"), "customer_id": ("顧客ID", "text"), "deliveries": ("お届け回数", "int"),
                "avg_amount": ("1回あたり金額", "yen"), "p_next": ("次回も届く確率(%)", "pct"),
                "expected_remaining": ("今後のお届け(回)", "ratio"), "projected_value": ("今後の予測売上", "yen"),
            },
            "定期継続予測_お客様別",
            "sub_values",
        )
        st.caption("継続中の定期ごとに、次回も届く確率と、今後のお届け回数・売上の期待値です（全体の予測から計算。長く続いている定期ほど、"
                   "次回も届く確率が高くなります）。解約しそうな定期より先に、価値の高い定期のフォローに使えます。")


def tab_ltv() -> None:
    st.subheader("これまでのLTV（1人あたり累計売上）")
    curves = compute("ltv_curves", as_of=AS_OF, unit="quarter", cohorts=8, max_months=24)
    chart(
        (charts.cohort_curve_chart,
            curves, "cumulative_revenue_per_customer", "cohort_start", "quarter", "初回購入の四半期別 1人あたり累計売上"
        ),
        "初回購入の四半期ごとに、1人あたりの累計売上が経過月とともにどう伸びるかを示します。"
        "同じ経過月で比べて上にある四半期ほど、価値の高い顧客を獲得できています。",
        "表示できるコホートがありません。",
    )
    st.subheader("予測（今後1年間）")
    if not HAS_MODEL:
        ui.empty_state(NO_MODEL)
        return
    model_day = analytics.customer_model_as_of(STORE)
    if model_day:
        fitted = (ui.run(model.last_report, STORE) or {}).get("fitted_at")
        fit_text = (f"。モデルの推定日: {ui.jdate(dt.datetime.fromisoformat(fitted).date())}"
                    f"（毎日の取り込みでは推定を使い回し、{REFIT_DAYS}日ごとか顧客数が{REFIT_GROWTH:.0%}以上変わったときに推定し直します）"
                    if fitted else "")
        st.caption(f"予測の基準日: {ui.jdate(model_day)}（BG/NBD・Gamma-Gammaモデルによる推定）{fit_text}")
    chart(
        (charts.clv_distribution_chart, compute("clv_distribution")),
        "今後365日に見込まれる1人あたり売上（予測CLV）の分布です。右側の少数の顧客が売上の大部分を生むことが多く、手厚いフォローの候補になります。",
        "予測CLVが計算された顧客がいません（購入データが少ないと予測できません）。",
    )
    risk = compute("churn_risk_summary")
    chart(
        (charts.churn_risk_chart, risk),
        "離反リスクは、今後90日以内に購入しない確率で分けています: 低＝33%未満、中＝33〜66%、高＝66%超。"
        "「中」はまだ引き戻しやすい層なので、クーポンや新商品のお知らせの優先候補です。",
        "離反リスクが計算された顧客がいません。",
    )
    st.caption(
        "「生存確率」は、まだこのショップのお客様でいる（いつかまた買う）確率、「90日以内に購入しない確率」は"
        "次の90日に1回も買わない確率です。年に1〜2回だけ買うお客様は、離れていなくても90日の間には買わないことが"
        "多いため、両方が高くなります（例: 生存確率90%、90日以内に購入しない確率80%）。"
        "生存確率が低いお客様ほど、すでに離れている可能性が高い方です。"
    )
    if not risk.empty:
        table(
            risk,
            {
                "churn_risk": ("離反リスク", "text"),
                "customers": ("顧客数", "int"),
                "share": ("構成比(%)", "pct"),
                "avg_p_alive": ("平均生存確率(%)", "pct"),
                "avg_churn_probability": ("90日以内に購入しない確率・平均(%)", "pct"),
                "revenue_12m": ("直近12か月売上", "yen"),
                "predicted_clv": ("予測CLV合計", "yen"),
            },
            "離反リスク",
            "risk",
        )
    tab_profit()


def tab_profit() -> None:
    """Gross profit by category, with how much of it rests on known costs (not cached: costs are edited live)."""
    st.subheader("粗利（カテゴリ別）")
    ov = ui.run(profit.profit_overview, STORE)
    if ov["gross_profit"] is None:
        ui.empty_state("商品の原価・粗利率がまだ登録されていません。「データ取込」で商品マスタ（楽天の商品CSV・Shopifyの商品エクスポート・"
                       "原価の一覧）を取り込むか、「商品の原価・粗利率」で入力すると、粗利で見られるようになります。")
        return
    table(
        ui.run(profit.profit_by_category, STORE),
        {
            "category": ("カテゴリ", "text"),
            "line_revenue": ("商品売上", "yen"),
            "gross_profit": ("粗利（原価が分かる商品）", "yen"),
            "margin_rate": ("粗利率(%)", "pct"),
            "coverage": ("原価が分かる売上の割合(%)", "pct"),
        },
        "カテゴリ別粗利",
        "profit",
    )
    st.caption(f"粗利 = 商品代金 − 原価（キャンセルを除く全期間。送料・ポイント・クーポンは含みません）。お店全体の粗利率 {ui.pct(ov['margin_rate'])}、"
               f"原価が分かる売上の割合 {ui.pct(ov['coverage'])}。原価が分からない商品は0円とはみなさず、粗利から除いています。"
               "割合が低いカテゴリは粗利が少なめに出るので、先に原価を登録してください。")


def tab_cycles() -> None:
    c1, c2, c3 = st.columns(3)
    level_label = c1.radio("単位", ["商品", "カテゴリ"], horizontal=True, key="ana_cycle_level")
    level = "product" if level_label == "商品" else "category"
    within = c2.number_input("何日以内に買い替え時期か", min_value=0, max_value=180, value=14, step=1, key="ana_cycle_days")
    min_n = c3.number_input("周期の計算に必要な購入間隔の件数", min_value=1, max_value=100, value=3, step=1, key="ana_cycle_min")
    cyc = compute("repurchase_cycles", as_of=AS_OF, level=level, min_intervals=int(min_n), within_days=int(within))
    st.subheader("買い替え周期")
    if cyc.empty:
        if level == "category":
            extra = "カテゴリは商品マスタ（商品管理番号・商品名・カテゴリ）の取込で登録されます。"
        else:
            extra = ""
        ui.empty_state(
            f"同じ{level_label}をくり返し購入した記録が{int(min_n)}件以上ある{level_label}がありません。"
            "「周期の計算に必要な購入間隔の件数」を下げるか、データが増えてから確認してください。" + extra
        )
        return
    chart(
        (charts.cycle_chart, cyc),
        "同じ顧客が同じ商品（カテゴリ）を再び買うまでの日数です。縦線が中央値、帯が中間の50%の範囲（四分位範囲）。"
        "帯が狭い商品ほど買い替え時期が読みやすく、リマインドのタイミングを合わせやすい商品です。",
        "表示できる商品がありません。",
    )
    keys = (
        {"product_id": ("商品管理番号", "text"), "product_name": ("商品名", "text")}
        if level == "product"
        else {"category": ("カテゴリ", "text")}
    )
    table(
        cyc,
        {
            **keys,
            "intervals": ("購入間隔の件数", "int"),
            "buyers": ("購入者数", "int"),
            "repeat_share": ("くり返し購入した人の割合(%)", "pct"),
            "median_days": ("周期の中央値(日)", "days"),
            "q1_days": ("第1四分位(日)", "days"),
            "q3_days": ("第3四分位(日)", "days"),
            "iqr_days": ("四分位範囲(日)", "days"),
            "due_customers": (f"{int(within)}日以内に時期の顧客", "int"),
            "due_share": ("購入者に占める割合(%)", "pct"),
        },
        "買い替え周期",
        "cycles",
    )
    st.subheader(f"{int(within)}日以内に買い替え時期を迎える顧客")
    due = compute("due_customers", as_of=AS_OF, level=level, within_days=int(within), min_intervals=int(min_n))
    if due.empty:
        ui.empty_state(f"{ui.jdate(AS_OF)}から{int(within)}日以内に買い替え時期を迎える顧客はいません。")
        return
    st.caption(
        "前回の購入日に周期を足した日が、基準日から指定日数以内に来る顧客です。2回以上くり返し購入している顧客は本人の周期、"
        "それ以外は商品の中央値を使っています。リマインドの配信リストとしてダウンロードできます（最大5,000行）。"
    )
    table(
        due,
        {
            "customer_id": ("顧客ID", "text"),
            "name": ("氏名", "text"),
            **keys,
            "last_purchased_on": ("前回購入日", "date"),
            "cycle_days": ("周期(日)", "days"),
            "cycle_basis": ("周期の根拠", "text"),
            "due_date": ("買い替え予定日", "date"),
            "days_until_due": ("あと何日", "int"),
        },
        "買い替え時期の顧客",
        "due",
    )


def tab_basket() -> None:
    c1, c2 = st.columns(2)
    level_label = c1.radio("単位", ["商品", "カテゴリ"], horizontal=True, key="ana_basket_level")
    level = "product" if level_label == "商品" else "category"
    support = c2.select_slider(
        "最小支持度（組み合わせを含む注文の割合）",
        options=[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05],
        value=0.001,
        format_func=lambda v: f"{v * 100:g}%",
        key="ana_basket_support",
    )
    st.subheader("よく一緒に買われる組み合わせ")
    together = compute("bought_together", as_of=AS_OF, level=level, min_support=float(support), min_orders=2)
    chart(
        (charts.bought_together_chart, together),
        "同じ注文で一緒に買われた組み合わせです。支持度は全注文のうちその組み合わせを含む割合、確信度は左を買った注文のうち右も買った割合、"
        "リフト値は偶然の何倍一緒に買われているか（1より大きいほど強い関係）。セット販売や同梱チラシの候補になります。",
        "条件を満たす組み合わせがありません。1つの注文で複数の商品が買われている必要があります。最小支持度を下げてみてください。",
    )
    cols = (
        {"product_name": ("商品", "text"), "other_product_name": ("一緒に買われる商品", "text")}
        if level == "product"
        else {"category": ("カテゴリ", "text"), "other_category": ("一緒に買われるカテゴリ", "text")}
    )
    if not together.empty:
        table(
            together,
            {
                **cols,
                "orders_together": ("同時購入の注文数", "int"),
                "support": ("支持度(%)", "pct"),
                "confidence": ("確信度(%)", "pct"),
                "lift": ("リフト値", "ratio"),
            },
            "併売",
            "together",
        )
    st.subheader("次の注文で買われる商品")
    nxt = compute("bought_next", as_of=AS_OF, level=level, min_customers=2)
    chart(
        (charts.bought_next_chart, nxt),
        "ある商品を買った顧客が、その次の注文で何を買ったか（同じ商品の買い直しは除く）。確信度は左を買った顧客のうち、次の注文で右を買った人の割合です。"
        "購入後のステップ配信でおすすめする商品の候補になります。",
        "次の注文のデータがまだ足りません（2回以上購入した顧客が必要です）。",
    )
    if not nxt.empty:
        nxt_cols = (
            {"product_name": ("前回の商品", "text"), "other_product_name": ("次に買った商品", "text")}
            if level == "product"
            else {"category": ("前回のカテゴリ", "text"), "other_category": ("次に買ったカテゴリ", "text")}
        )
        table(
            nxt,
            {
                **nxt_cols,
                "customers": ("顧客数", "int"),
                "confidence": ("確信度(%)", "pct"),
                "lift": ("リフト値", "ratio"),
            },
            "次に買われる商品",
            "next",
        )

    st.subheader("顧客ごとのおすすめ商品")
    st.caption(
        "一人ひとりに、まだ買ったことのない商品を1つ選びます（上の2つの分析の結果から。当てはまらない顧客には最近の人気商品）。"
        "メッセージのテンプレートで「おすすめ商品」として使えます。"
    )
    if st.button("おすすめ商品を作成・更新", key="ana_build_recs", icon="🔄"):
        n = ui.run(basket.build_recommendations, STORE, AS_OF)
        st.success(f"{n:,}人分のおすすめ商品を作成しました。")
    recs = ui.run(basket.recommendation_summary, STORE)
    if recs.empty:
        ui.empty_state("まだおすすめ商品が作成されていません。上のボタンで作成できます。")
        return
    st.metric("おすすめ商品がある顧客", ui.count(basket.recommended_customers(STORE), "人"))
    table(
        recs,
        {
            "product_id": ("商品管理番号", "text"),
            "product_name": ("おすすめ商品", "text"),
            "customers": ("対象顧客数", "int"),
            "share": ("構成比(%)", "pct"),
            "avg_score": ("平均スコア", "ratio"),
            "reason": ("主な理由", "text"),
        },
        "おすすめ商品",
        "recs",
    )


# --------------------------------------------------------------------------
# Page
# --------------------------------------------------------------------------

st.title("顧客分析")
STORE = ui.require_data()
LATEST = ui.run(_latest_order_date, str(STORE.path), ui.data_version()) or clock.today()
HAS_MODEL = analytics.has_customer_model(STORE)
VERSION = data_versions(STORE)
default_as_of = st.session_state.get("as_of") or LATEST
AS_OF: dt.date = st.date_input(
    "基準日",
    value=analytics.as_of_date(default_as_of),
    key="ana_as_of",
    format="YYYY/MM/DD",
    help="この日までの注文で分析します。初期値は最終注文日です。",
)
st.caption(f"{ui.jdate(AS_OF)}までの注文（キャンセルを除く）で集計しています。最終注文日: {ui.jdate(LATEST)}")

RENDER = [tab_rfm, tab_repeat, tab_cohorts, tab_subscription, tab_ltv, tab_cycles, tab_basket]
for tab, render in zip(st.tabs(TABS, key="ana_tab", on_change="rerun"), RENDER, strict=True):
    with tab:
        if tab.open is not False:
            render()
