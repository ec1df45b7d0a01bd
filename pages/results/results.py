"""施策の効果: campaign list, one campaign's results against its holdout, A/B, cost; freeze a send; import result files.

Logic lives in :mod:`crm_core.results.campaigns`, :mod:`crm_core.results.attribution` and
:mod:`crm_core.results.charts`; session keys carry the ``res_`` prefix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from functools import partial

import pandas as pd
import streamlit as st

from crm_core import clock, jp, opsdb
from crm_core.audience import library as L
from crm_core.audience import references
from crm_core.audience import segments as S
from crm_core.ingest import products as PR
from crm_core.results import attribution as R
from crm_core.results import campaigns as C
from crm_core.results import charts as RC
from crm_core.results import engagement as EN
from crm_core.results import experiments as E
from crm_core.scenarios import report as SR
from pages import ui

st.title("📈 施策の効果")
st.caption("LINE・メール・R-Mailの施策ごとに、送ったお客様と「送らなかったお客様（比較用グループ）」の購入を比べて、"
           "施策が本当に売上を上乗せしたかを確かめます。")
st.caption(f"ℹ️ 送信から決めた日数（標準7日）以内の、キャンセルを除く注文を施策の成果として数えます。{R.LAST_TOUCH_NOTE}。")

store = ui.require_data()


def _version() -> tuple:
    """Changes whenever orders, campaigns or imported results change (the cache key)."""
    return (store.path, ui.data_version(), *C.results_version(store), *PR.costs_version(store), *EN.stats_version(store))


@st.cache_data(ttl=600, max_entries=8, show_spinner="施策の結果を集計しています…")
def _summaries(version: tuple) -> pd.DataFrame:
    return R.campaign_summaries(store)


@st.cache_data(ttl=600, max_entries=32, show_spinner="施策の結果を集計しています…")
def _report(version: tuple, campaign_id: int) -> dict:
    return R.campaign_report(store, campaign_id)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def _by_channel(version: tuple, campaign_id: int) -> list:
    """A LINE（なければメール） send's results per channel (the channel of each recipient is on the send ledger)."""
    from contextlib import closing

    from crm_core.results import live

    with closing(live.open_ops(store)) as ops:
        return live.results_by_channel(store, ops, campaign_id)


def _num(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return fmt.format(value)


# -- list -------------------------------------------------------------------------------------
version = _version()
summaries = ui.run(_summaries, version)
st.subheader("施策一覧")
if summaries.empty:
    ui.empty_state("まだ施策の記録がありません。下の「施策を記録する」で、配信したセグメントと送信日時を登録すると、"
                   "その後の注文から効果を集計します（配信前に登録すると、比較用に送らないお客様を自動で選びます）。")
else:
    # the verdict right after the name, so that it is read whole at 1440 px; the trend last
    view = pd.DataFrame({
        "No.": summaries["campaign_id"],
        "施策名": summaries["name"],
        "判定": summaries["verdict"],
        "購入率の差（pt）": summaries["lift"].astype(float) * 100,
        "対象者数": summaries["recipients"],
        "購入者数": summaries["buyers"],
        "購入率": summaries["conversion"] * 100,
        "売上（円）": summaries["revenue"].round(0),
        "送信日時": pd.to_datetime(summaries["sent_at"]).dt.strftime("%Y/%m/%d %H:%M"),
        "チャネル": summaries["channel"],
        "売上の推移": summaries["trend"],
    })
    ui.dataframe(
        view, hide_index=True, width="stretch",
        column_config={
            "購入率": st.column_config.NumberColumn(format="%.1f%%"),
            "購入率の差（pt）": st.column_config.NumberColumn(format="%+.1f", help="配信したグループ − 送らないグループ（ポイント）"),
            "売上（円）": ui.yen_column("売上（円）"),
            "対象者数": st.column_config.NumberColumn(format="localized"),
            "購入者数": st.column_config.NumberColumn(format="localized"),
            "No.": st.column_config.NumberColumn(width="small"),
            "売上の推移": st.column_config.AreaChartColumn("売上の推移（送信7日前〜）", width="small"),
            "判定": st.column_config.TextColumn(width="large"),
        },
    )
    st.caption(RC.CAPTIONS["list"] + "「購入率」と「売上」は配信したグループの数字です。")
    st.download_button("施策一覧をダウンロード（CSV）", partial(ui.csv_bytes, view.drop(columns=["売上の推移"])),
                       file_name="施策一覧.csv", mime="text/csv", key="res_list_download", on_click="ignore")

# -- detail ------------------------------------------------------------------------------------
if not summaries.empty:
    st.divider()
    labels = {f"No.{r.campaign_id} {r.name}（{pd.Timestamp(r.sent_at):%Y/%m/%d}・{r.channel}）": int(r.campaign_id)
              for r in summaries.itertuples()}
    cid = labels[st.selectbox("詳しく見る施策", list(labels), key="res_campaign")]
    report = ui.run(_report, version, cid)
    camp, treat, lift, cost = report["campaign"], report["groups"][0], report["lift"], report["cost"]
    st.subheader(ui.md(camp["name"]))
    st.caption(f"{C.CHANNEL_LABELS.get(camp['channel'], camp['channel'])}・送信 {ui.jdate(camp['sent_at'])} {pd.Timestamp(camp['sent_at']):%H:%M}"
               f"・集計期間 {camp['attribution_days']}日・送らないグループ {ui.pct(camp['holdout_share'])}"
               + (f"・クーポン {camp['coupon_code']}" if camp.get("coupon_code") else "")
               + ("・送信済みとして記録" if camp.get("marked_only") else ""))

    srm = report.get("srm")
    if srm and srm["broken"]:
        st.error("**比率のずれ（サンプル比率の不一致）** — " + srm["message"], icon="🚨")
    chance = "" if lift is None or lift.get("chance_to_win") is None else f"配信した方が上回っている確率（勝つ確率）は{E.chance_text(lift['chance_to_win'])}です。"
    if lift is None:
        st.info(R.VERDICT_NO_HOLDOUT + "。送らないグループがないため、施策がなくても買っていた人との区別がつきません。", icon="ℹ️")
    elif lift["verdict"] == R.VERDICT_YES:
        st.success(f"**{lift['verdict']}** — 購入率が {ui.points(lift['conversion_diff'])}"
                   f"（95%信頼区間 {ui.points(lift['conversion_low'])}〜{ui.points(lift['conversion_high'])}、p={lift['conversion_p']:.3f}）。"
                   f"施策による上乗せは約{ui.count(max(lift['incremental_buyers'], 0), '人')}・{ui.yen(lift['incremental_revenue'])}と推定されます。{chance}", icon="✅")
    elif lift["verdict"] == R.VERDICT_SMALL:
        st.warning(f"**{lift['verdict']}** — 送らないグループが{ui.count(report['groups'][1]['recipients'], '人')}、購入者が合計"
                   f"{ui.count(treat['buyers'] + report['groups'][1]['buyers'], '人')}です。各グループ{R.MIN_GROUP}人以上・購入者{R.MIN_BUYERS}人以上で判定します。"
                   "次回は送らないグループの割合を増やすか、対象を広げてください。", icon="⚠️")
    elif lift["verdict"] == R.VERDICT_NEGATIVE:
        st.error(f"**{lift['verdict']}** — 送らなかったお客様の方が多く購入しています（差 {ui.points(lift['conversion_diff'])}、p={lift['conversion_p']:.3f}）。{chance}", icon="🔻")
    else:
        st.info(f"**{lift['verdict']}** — 購入率の差は {ui.points(lift['conversion_diff'])}ですが、95%信頼区間"
                f"（{ui.points(lift['conversion_low'])}〜{ui.points(lift['conversion_high'])}）が0をまたいでいます（p={lift['conversion_p']:.3f}）。{chance}", icon="ℹ️")

    c = st.columns(6)
    c[0].metric("配信した人数", ui.count(treat["recipients"], "人"))
    c[1].metric("購入者", ui.count(treat["buyers"], "人"), help="集計期間内に1回以上購入した人")
    c[2].metric("購入率", ui.pct(treat["conversion"]),
                # the arrow's direction comes from an ASCII "-" at the start of the delta text
                delta=None if lift is None else ui.points(lift["conversion_diff"]).replace(jp.MINUS, "-"),
                help="集計期間内に購入した人の割合" + ("" if lift is None else "。矢印は送らないグループとの差（ポイント）"))
    c[3].metric("売上", ui.yen(treat["revenue"]), help=f"注文 {treat['orders']:,}件")
    c[4].metric("1人あたり売上", ui.yen(treat["revenue_per_recipient"]))
    c[5].metric("上乗せ売上", "—" if lift is None else ui.yen(lift["incremental_revenue"]),
                help="送らないグループと比べた推定" + ("" if lift is None else f"（95%信頼区間 {ui.yen(lift['incremental_revenue_low'])}〜{ui.yen(lift['incremental_revenue_high'])}）"))
    c = st.columns(6)
    c[0].metric("到達率", ui.pct(treat["delivery_rate"]))
    c[1].metric("開封率", ui.pct(treat["open_rate"]), help="到達した人のうち開封した人")
    c[2].metric("クリック率", ui.pct(treat["click_rate"]), help="到達した人のうちクリックした人")
    c[3].metric("費用", ui.yen(cost["total_cost"]),
                help=f"配信 {ui.yen(cost['message_cost'])}（{ui.count(cost['messages'], '通')}×¥{cost['rate']:g}）＋クーポン値引き {ui.yen(cost['coupon_cost'])}＋その他 {ui.yen(cost['fixed_cost'])}")
    c[4].metric("CPO", ui.yen(cost["cpo"]), help="1注文あたりの費用")
    roi_help = "上乗せ売上（推定）を費用と比べた割合です。送らないグループとの比較ができるときに表示します。"
    if cost["roi"] is not None:
        roi_help += f" 上乗せ売上の95%信頼区間から見た範囲: {ui.pct(cost['roi_low'], 0)}〜{ui.pct(cost['roi_high'], 0)}"
    c[5].metric("ROI", "—" if cost["roi"] is None else ui.pct(cost["roi"], 0), help=roi_help)

    c = st.columns(6)
    c[0].metric("粗利", ui.yen(cost["gross_profit"]) if cost.get("cost_coverage") else "原価未登録",
                help="配信したグループの注文の、原価が分かる商品の商品代金 − 原価（送料・ポイント・クーポンは含みません）")
    c[1].metric("原価判明率", ui.pct(cost.get("cost_coverage")),
                help="注文の商品売上のうち、原価が分かる商品の割合。100%未満のときは、原価が分からない商品の粗利を含まないため、粗利の数字は控えめです。")
    c[2].metric("上乗せ粗利", ui.yen(cost.get("incremental_gross_profit")),
                help="送らないグループと比べた推定。" if cost.get("incremental_gross_profit") is None else
                f"95%信頼区間 {ui.yen(cost['incremental_gross_profit_low'])}〜{ui.yen(cost['incremental_gross_profit_high'])}。"
                "送らないグループと比べて増えた分だけを数えます（クーポンがなくても買った注文は利益に数えません）。")
    roi_gp = cost.get("roi_gross_profit")
    c[3].metric("粗利ROI", "—" if roi_gp is None else ui.pct(roi_gp, 0),
                help="（上乗せ粗利 − 費用）÷ 費用。" + ("" if roi_gp is None else
                f"95%信頼区間から見た範囲: {ui.pct(cost['roi_gross_profit_low'], 0)}〜{ui.pct(cost['roi_gross_profit_high'], 0)}"))
    st.caption("粗利ベースのROIは、売上ベースより実際のもうけに近い数字です。値引き（クーポン）は使われたすべての注文の分を費用に入れ、"
               "利益は送らないグループより増えた分だけを数えます。")

    if camp["channel"] == "line_or_email":  # LINE（なければメール）: each channel against the holdout who would have got it
        by_channel = ui.run(_by_channel, version, cid)
        if by_channel:
            st.markdown("**チャネル別（LINEで送った人・メールで送った人）**")
            ui.dataframe(pd.DataFrame([{
                "チャネル": r["label"], "配信した人数": r["recipients"], "購入率": ui.pct(r["conversion"]),
                "送らないグループ": r["holdout"], "送らないグループの購入率": ui.pct(r["holdout_conversion"]),
                "購入率の差": "—" if r["diff"] is None else ui.points(r["diff"]), "判定": r["verdict"]} for r in by_channel]),
                hide_index=True)
            st.caption("比較用に送らないお客様は、チャネルを決める前に全体から選んでいます。送らないグループの各お客様は、"
                       "送っていたら届いたはずのチャネルで分けて比べます。")

    for note in report["notes"][1:]:
        if not (srm and note == srm["message"]):
            st.caption("※ " + note)

    if lift is not None:
        st.markdown("**配信したグループ − 送らないグループ（購入率の差）**")
        chart = RC.lift_chart(lift)
        if chart is not None:
            st.altair_chart(chart, width="stretch")
        st.caption(RC.CAPTIONS["lift"])
        st.markdown("**効果の大きさ：95%信頼区間と勝つ確率**")
        show_cuped = st.toggle("分散削減（CUPED）の区間も並べて表示", key="res_cuped",
                               help="送信前90日間の購入額で補正した、1人あたり売上の差の区間を横に並べます。")
        cu = lift.get("cuped") or {}
        rows = [
            {"指標": "購入率の差", "差": _num(lift["conversion_diff"] * 100, "{:+.2f}pt"),
             "95%信頼区間": f"{lift['conversion_low'] * 100:+.2f}〜{lift['conversion_high'] * 100:+.2f}pt",
             "勝つ確率": E.chance_text(lift.get("chance_to_win")),
             "p値": _num(lift["conversion_p"], "{:.4f}"), "判定": lift["verdict"]},
            {"指標": "1人あたり売上の差", "差": _num(lift["rpr_diff"], "{:+,.1f}円"),
             "95%信頼区間": f"{_num(lift['rpr_low'], '{:+,.1f}')}〜{_num(lift['rpr_high'], '{:+,.1f}')}円",
             "勝つ確率": E.chance_text(lift.get("chance_to_win_revenue")),
             "p値": _num(lift["rpr_p"], "{:.4f}"), "判定": lift["revenue_verdict"]},
        ]
        if show_cuped:
            rows[0]["95%信頼区間（CUPED）"] = "—"
            rows[0]["幅の比"] = "—"
            rows[1]["95%信頼区間（CUPED）"] = (f"{_num(cu.get('rpr_low'), '{:+,.1f}')}〜{_num(cu.get('rpr_high'), '{:+,.1f}')}円"
                                           if cu else "—")
            rows[1]["幅の比"] = _num(cu.get("width_ratio"), "{:.2f}")
        ui.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption(RC.CAPTIONS["chance"])
        if show_cuped:
            st.caption(RC.CAPTIONS["cuped"] + (f"（補正の強さ θ={cu['theta']:.2f}、送信前と後の購入額の相関 {cu['corr']:.2f}）" if cu else ""))
        if not math.isnan(lift.get("revenue_cap", math.nan)):
            st.caption(f"1人あたり売上は、上位{100 - lift['revenue_cap_percentile']:.1f}%の水準（{lift['revenue_cap_percentile']:g}パーセンタイル＝"
                       f"{ui.yen(lift['revenue_cap'])}）で頭打ちにしてから比べています（該当 {lift['capped_customers']}人）。"
                       "一人の大口購入で施策の良し悪しが決まらないようにするためです。")
        with st.expander("検定の詳細"):
            st.markdown(f"- {R.CONVERSION_TEST}\n- {R.REVENUE_TEST}\n- 勝つ確率：一様な事前分布のもとで、各グループの人数・合計・二乗和から"
                        "相対リフトの事後分布（正規近似）を求めています。\n"
                        "- グループの人数の比率は、設定した割合とカイ二乗検定で照合し、p<0.001なら警告します。")

    left, right = st.columns(2)
    with left:
        st.markdown("**送信日前後の売上（ショップ全体）**")
        daily = ui.run(R.daily_sales, store, cid)
        chart = RC.daily_sales_chart(daily)
        if chart is None:
            ui.empty_state("この期間の注文はありません。")
        else:
            st.altair_chart(chart, width="stretch")
        st.caption(RC.CAPTIONS["daily"])
    with right:
        st.markdown("**1人あたり累計売上：配信 vs 送らないグループ**")
        cum = ui.run(R.cumulative_revenue, store, cid)
        chart = RC.cumulative_chart(cum)
        if chart is None:
            ui.empty_state("比較するグループがありません。")
        else:
            st.altair_chart(chart, width="stretch")
        st.caption(RC.CAPTIONS["cumulative"])

    left, right = st.columns(2)
    with left:
        st.markdown("**到達 → 開封 → クリック → 購入**")
        chart = RC.funnel_chart(R.funnel(report))
        if chart is None:
            ui.empty_state("配信結果（到達・開封・クリック）のファイルが取り込まれると表示されます（下の「配信結果を取り込む」）。")
        else:
            st.altair_chart(chart, width="stretch")
        st.caption(RC.CAPTIONS["funnel"])
    with right:
        st.markdown("**グループ・パターン別の購入率（A/Bテスト）**")
        ab = report["ab"]
        rows = list(ab["variants"]) if ab else [{"variant": "配信", "conversion": treat["conversion"],
                                                  "low": R.wilson_interval(treat["buyers"], treat["recipients"])[0],
                                                  "high": R.wilson_interval(treat["buyers"], treat["recipients"])[1],
                                                  "recipients": treat["recipients"], "buyers": treat["buyers"]}]
        if lift is not None:
            hold = report["groups"][1]
            lo, hi = R.wilson_interval(hold["buyers"], hold["recipients"])
            rows.append({"variant": "送らないグループ", "conversion": hold["conversion"], "low": lo, "high": hi,
                         "recipients": hold["recipients"], "buyers": hold["buyers"]})
        chart = RC.variant_chart(rows)
        if chart is not None:
            st.altair_chart(chart, width="stretch")
        if ab:
            (st.warning if ab["too_small"] else st.success if ab["winner"] else st.info)(
                ab["message"] + ("" if ab["too_small"] else f" パターン{ab['leader']}が本当に良い確率（勝つ確率）：{E.chance_text(ab['prob_leader_better'])}"))
            st.caption(ab["test"])
        else:
            st.caption("この施策はA/Bテストではありません（パターンは1つ）。")
        st.caption(RC.CAPTIONS["variants"])
    if report["variant_lifts"]:
        st.markdown("**パターンごとの効果（送らないグループと比べて）**")
        ui.dataframe(pd.DataFrame([
            {"パターン": f"パターン{v['variant']}",
             "判定": v["verdict"],
             "購入率": ui.pct(v["conversion_treatment"]),
             "購入率の差": ui.points(v["conversion_diff"]),
             "95%信頼区間": f"{ui.points(v['conversion_low'])}〜{ui.points(v['conversion_high'])}",
             "上乗せ売上（推定）": ui.yen(v["incremental_revenue"])}
            for v in report["variant_lifts"]
        ]), hide_index=True, width="stretch")
        st.caption("各パターンを、同じ送らないグループと比べています。パターンの数が多いほど、"
                   "偶然「効果あり」に見えるものが混じりやすくなるので、判定は全体の結果とあわせて見てください。")

    groups = R.groups_frame(report)
    st.markdown("**グループ別の集計**")
    # Shown as Japanese-formatted text (groups without delivery results show "—", not "None");
    # the download keeps the numbers.
    view = groups.copy()
    for col in ("開封率", "クリック率", "購入率"):
        view[col] = view[col].map(ui.pct)
    for col, unit in (("対象者数", "人"), ("到達数", "人"), ("購入者数", "人"), ("注文数", "件"), ("クーポン利用注文", "件")):
        view[col] = view[col].map(lambda v, u=unit: ui.count(v, u))
    for col in ("売上（円）", "1人あたり売上（円）", "粗利（円、原価が分かる商品）"):
        view[col] = view[col].map(ui.yen)
    ui.dataframe(view.rename(columns={"売上（円）": "売上", "1人あたり売上（円）": "1人あたり売上", "粗利（円、原価が分かる商品）": "粗利（原価が分かる商品）"}),
                 hide_index=True, width="stretch")
    d1, d2 = st.columns(2)
    d1.download_button("グループ別の集計をダウンロード（CSV）", partial(ui.csv_bytes, groups), file_name=f"施策{cid}_集計.csv",
                       mime="text/csv", key="res_groups_download", on_click="ignore")
    rec = ui.run(R.recipient_table, store, cid)
    rec_view = rec.rename(columns={"customer_id": "顧客ID", "variant": "パターン", "holdout": "送らないグループ", "has_result": "配信結果あり",
                                   "delivered": "到達", "opened": "開封", "clicked": "クリック", "orders": "注文数", "revenue": "売上（円）",
                                   "coupon_orders": "クーポン利用注文", "discount": "クーポン値引き（円）"})
    d2.download_button("お客様ごとの結果をダウンロード（CSV）", partial(ui.csv_bytes, rec_view), file_name=f"施策{cid}_お客様別.csv",
                       mime="text/csv", key="res_recipients_download", on_click="ignore")

    # -- aggregate reports (LINE, R-Mail) beside the order-based results -----------------------
    st.markdown("**開封・クリック（配信元の集計レポート）**")
    if "res_link_flash" in st.session_state:
        st.success(st.session_state.pop("res_link_flash"), icon="✅")
    eng = ui.run(EN.engagement_table, store, cid)
    if eng.empty:
        ui.empty_state("この施策の配信レポートはまだありません。LINE公式アカウントやR-Mailの配信レポート（メッセージごとの開封・クリック数）を"
                       "「データ取込」で取り込み（種類「配信レポート」）、下でこの施策につなげてください。")
    else:
        ui.dataframe(eng, hide_index=True, width="stretch", key="res_engagement")
    st.caption(EN.APPROX_NOTE)
    unlinked = ui.run(EN.message_stats, store, None, True)
    if not unlinked.empty:
        options = {int(r.stats_id): f"{EN.SOURCE_LABELS.get(r.source, r.source)}「{r.message_name or '名前なし'}」"
                   + ("" if pd.isna(r.sent_on) else f"（{ui.jdate(pd.Timestamp(r.sent_on).date())}）") for r in unlinked.itertuples()}
        l1, l2 = st.columns([3, 1])
        pick = l1.selectbox("まだ施策につないでいない配信レポート", list(options), format_func=options.get, key="res_link_pick")
        if l2.button("この施策につなぐ", key="res_link"):
            ui.run(EN.link_report, store, pick, cid)
            st.session_state["res_link_flash"] = "配信レポートをこの施策につなぎました。"
            st.rerun()

    # -- result file import --------------------------------------------------------------------
    with st.expander("配信結果（到達・開封・クリック）を取り込む"):
        st.caption("LINEやメール配信ツールから書き出した、お客様ごとの配信結果CSVを取り込みます。"
                   "顧客ID・メールアドレス・LINEユーザーIDのどれか1列と、到達・開封・クリックの列（1/0、はい/いいえ など）を対応付けてください。")
        up = st.file_uploader("配信結果CSV", type=["csv", "txt"], key="res_upload")
        if up is not None:
            frame = ui.run(C.preview_result_csv, up.getvalue())  # the first rows only: big files are streamed on import
            guess = C.suggest_mapping(list(frame.columns))
            options = ["", *C.RESULT_FIELDS]
            mapping = {}
            cols = st.columns(min(len(frame.columns), 4) or 1)
            for i, col in enumerate(frame.columns):
                pick = cols[i % len(cols)].selectbox(
                    f"列「{col}」", options, index=options.index(guess.get(col, "")),
                    format_func=lambda k: C.RESULT_FIELDS.get(k, "（使わない）"), key=f"res_map_{cid}_{i}")
                mapping[col] = pick
            ui.dataframe(frame.head(5), hide_index=True, width="stretch")
            if st.button("取り込む", type="primary", key="res_import"):
                out = ui.run(C.import_results, store, cid, up.getvalue(), mapping, file_name=up.name)
                st.success(f"{out['rows']:,}行を読み、{out['matched']:,}人の配信結果を保存しました"
                           + (f"（この施策の対象ではないID {out['unmatched']:,}件は除きました）" if out["unmatched"] else "") + "。")

    with st.expander("この施策の記録を削除"):
        st.caption("記録した対象者・配信結果を削除します（注文データは消えません）。削除した施策は元に戻せません。")
        sure = st.checkbox("削除することを確認しました", key=f"res_confirm_delete_{cid}")
        if st.button("削除", disabled=not sure, key="res_delete"):
            ui.run(C.delete_campaign, store, cid)
            st.session_state.pop("res_frozen", None)
            st.rerun()

# -- scenarios (step sends) -------------------------------------------------------------------------
st.divider()
st.subheader("シナリオ（ステップ配信）の効果")
st.caption(f"シナリオとステップごとに、送ったお客様と比較用に送らなかったお客様の、送信時刻から{SR.ATTRIBUTION_DAYS}日以内の購入を比べます"
           "（上乗せは購入率の差と95%信頼区間で、施策と同じ計算です）。0のところは「説明」に理由を書いています。")
if store.read_only:  # the scenarios' records live beside the store, which cannot be opened for writing now
    ui.empty_state("保存先が読み取り専用のため、シナリオの効果はここでは表示できません。書き込みできる場所で開くと表示されます。")
    st.stop()
with contextlib.closing(ui.run(opsdb.connect, opsdb.ops_path(store.path))) as _ops:
    scenario_table = ui.run(SR.table, store, _ops)
if scenario_table.empty:
    ui.empty_state("シナリオがありません。")
else:
    ui.dataframe(scenario_table, hide_index=True, width="stretch", key="res_scenarios")
    st.page_link("pages/automation/scenarios.py", label="シナリオのオン・オフと編集へ", icon="🔁")


# -- the whole programme against the global holdout ----------------------------------------------
@st.cache_data(ttl=600, max_entries=8, show_spinner="CRM全体の効果を集計しています…")
def _programme(version: tuple, setting: tuple) -> dict:
    return R.programme_lift(store)


st.divider()
st.subheader("CRM全体の効果（全体の比較グループ）")
st.caption("お客様の一部（例: 5%）を「全体の比較グループ」として、どの施策からも外しておくと、LINE・メール・R-Mailなどの施策全体で"
           "売上がどれだけ増えたかを、月ごとに確かめられます。どのお客様が入るかは顧客IDから決まり、変わりません。"
           "このグループのお客様は、施策を記録するときに配信対象から自動で除かれます（外部ツールで送るときも、ダウンロードした一覧をお使いください）。")
setting = ui.run(C.global_holdout_setting, store)
g1, g2 = st.columns([3, 1])
share_pct = g1.slider("全体の比較グループの割合（0%でオフ）", 0, int(C.MAX_GLOBAL_HOLDOUT * 100), int(round(setting["share"] * 100)),
                      step=1, format="%d%%", key="res_global_share",
                      help="割合を変えると、その日から新しく比較を始めます（それまで施策を受けていたお客様が新たに入るためです）。")
if g2.button("割合を保存", key="res_global_save"):
    ui.run(C.set_global_holdout, store, share_pct / 100)
    st.rerun()
if setting["share"] <= 0:
    st.info("全体の比較グループは現在オフです。オンにすると、その日からの施策全体の効果を月ごとに表示します。"
            "数字が意味を持つには、比較グループに数百人以上が入る規模が目安です。", icon="ℹ️")
else:
    prog = ui.run(_programme, version, (setting["share"], setting["since"]))
    st.caption(f"現在の設定：全体の比較グループ {setting['share']:.0%}（{setting['since']}から比較）。{R.PROGRAMME_NOTE}")
    if prog["message"]:
        ui.empty_state(prog["message"])
    else:
        total = prog["total"]
        m = st.columns(3)
        m[0].metric("上乗せ売上（比較開始から）", ui.yen(total["incremental_revenue"]),
                    help=f"95%信頼区間 {ui.yen(total['incremental_low'])}〜{ui.yen(total['incremental_high'])}")
        m[1].metric("1人あたり売上（比較グループ以外）", ui.yen(total["revenue_per_customer"]), help=f"{total['customers']:,}人")
        m[2].metric("1人あたり売上（全体の比較グループ）", ui.yen(total["holdout_revenue_per_customer"]), help=f"{total['holdout_customers']:,}人")
        if total["too_small"]:
            st.warning(f"**{R.VERDICT_SMALL}** — 全体の比較グループが{total['holdout_customers']}人です。"
                       f"{R.MIN_GROUP}人以上・購入者{R.MIN_BUYERS}人以上で判定します。", icon="⚠️")
        else:
            st.info(f"**{R.verdict(total['low'], total['high'], False)}** — 1人あたり売上の差 {ui.yen(total['diff'])}"
                    f"（95%信頼区間 {ui.yen(total['low'])}〜{ui.yen(total['high'])}）。", icon="ℹ️")
        chart = RC.programme_chart(prog["months"])
        if chart is not None:
            st.altair_chart(chart, width="stretch")
        st.caption(RC.CAPTIONS["programme"])
        months = prog["months"]
        view = pd.DataFrame({
            "月": [f"{pd.Timestamp(x):%Y年%-m月}" for x in months["month"]],
            "対象（人）": months["customers"].map(lambda v: ui.count(v, "人")),
            "比較グループ（人）": months["holdout_customers"].map(lambda v: ui.count(v, "人")),
            "1人あたり売上": months["revenue_per_customer"].map(ui.yen),
            "1人あたり売上（比較グループ）": months["holdout_revenue_per_customer"].map(ui.yen),
            "差（95%信頼区間）": [f"{ui.yen(d)}（{ui.yen(lo)}〜{ui.yen(hi)}）" for d, lo, hi in zip(months["diff"], months["low"], months["high"])],
            "上乗せ売上": months["incremental_revenue"].map(ui.yen),
        })
        ui.dataframe(view, hide_index=True, width="stretch")
        st.download_button("月別の比較をダウンロード（CSV）", partial(ui.csv_bytes, months), file_name="CRM全体の効果.csv",
                           mime="text/csv", key="res_programme_download", on_click="ignore")


# -- freeze a new campaign -----------------------------------------------------------------------
def _rule(source: str) -> dict:
    """The segment rule of a source choice (one resolver; a deleted segment is a Japanese error)."""
    return ui.run(references.resolve, store, source) or {"all": []}


@st.cache_resource(ttl=600, max_entries=4, show_spinner="対象のお客様といつもの購入率を調べています…")
def _purchases(version: tuple, setting: tuple, source: str, channel: str) -> dict:
    """The audience's count and last year's purchases as numbers (no ids), per data version, global holdout
    setting, audience and channel: changing the holdout share or the window needs no query.  Read only."""
    return C.audience_purchases(store, _rule(source), channel)


def _hint(version: tuple, setting: tuple, source: str, channel: str, holdout: int, days: int) -> dict:
    return C.outlook(ui.run(_purchases, version, setting, source, channel), holdout / 100, days)


st.divider()
with st.expander("施策を記録する（配信対象を確定）", expanded=summaries.empty or bool(st.session_state.get("res_frozen"))):
    st.caption("配信する直前に記録すると、対象のお客様から比較用の「送らないグループ」を抽選で選びます（抽選は施策番号と顧客IDから決まり、"
               "後から変わりません）。送らないグループのお客様には配信しないでください。"
               "R-Mailなどコンソールの外で送った配信は「送信済みとして記録」にチェックを入れてください。")
    saved = ui.run(L.list_segments, store)
    sources = {f"saved:{s['segment_id']}": f"保存済み：{s['name']}" for s in saved}
    sources |= {f"preset:{p.key}": f"おすすめ：{p.name}" for p in S.PRESETS}
    sources["all"] = "すべてのお客様"
    # Audience, channel, holdout share and window sit outside the form: the detectable-effect hint follows them live.
    c1, c2 = st.columns([2, 1])
    source = c1.selectbox("配信対象（セグメント）", list(sources), format_func=sources.get, key="res_new_source")
    channel = c2.selectbox("チャネル", list(C.CHANNELS), format_func=C.CHANNELS.get, key="res_new_channel")
    c1, c2 = st.columns(2)
    holdout = c1.slider("送らないグループの割合", 0, 50, 10, step=5, format="%d%%", key="res_new_holdout",
                        help="10%なら、対象の10%のお客様には送らずに比較に使います。0%だと効果の判定はできません。")
    days = c2.number_input("効果を数える日数", 1, 60, C.DEFAULT_ATTRIBUTION_DAYS, key="res_new_days")
    hint = ui.run(_hint, version, (setting["share"], setting["since"]), source, channel, int(holdout), int(days))
    if hint["n"] == 0:
        st.warning("この条件とチャネルで届くお客様は0人です。", icon="⚠️")
    else:
        st.markdown("**この設定で見分けられる効果**")
        (st.warning if hint["too_small"] else st.info)(hint["message"], icon="🔎")
        st.caption(RC.CAPTIONS["mde"] + (f" 全体の比較グループのお客様 {hint['global_holdout']:,}人は、配信対象から除きます。"
                                          if hint["global_holdout"] else ""))
    with st.form("res_freeze_form"):
        name = st.text_input("施策名", key="res_new_name", placeholder="例: 11月 休眠掘り起こしクーポン")
        c1, c2, c3 = st.columns(3)
        day = c1.date_input("送信日", value=clock.today(), key="res_new_day")
        time_ = c2.time_input("送信時刻", value=dt.time(12, 0), key="res_new_time")
        variants = c3.text_input("A/Bテストのパターン（カンマ区切り）", "A", key="res_new_variants", help="例: A,B")
        c1, c2 = st.columns(2)
        coupon = c1.text_input("クーポンコード（任意）", key="res_new_coupon")
        fixed = c2.number_input("その他の費用（円・任意）", 0, 10_000_000, 0, step=1000, key="res_new_fixed")
        marked = st.checkbox("送信済みとして記録（コンソールの外で送った配信）", key="res_new_marked")
        reach_options = {"auto": "おまかせ（R-Mailや外で送った配信はセグメント全員、それ以外はチャネルで届くお客様だけ）", **C.REACH}
        reach = st.selectbox(
            "配信対象の決め方", list(reach_options), format_func=reach_options.get, key="res_new_reach",
            help="RMSのR-Mailなど、コンソールの外で送った配信には、コンソールの「届く・届かない」の判定は当てはまりません。"
                 "過去の日時で記録すると、その前日までのデータでセグメントを判定します（後から購入したお客様は入りません）。",
        )
        submitted = st.form_submit_button("配信対象を確定して記録", type="primary")
    if submitted:
        new_id = ui.run(
            C.freeze_campaign, store, name, channel, dt.datetime.combine(day, time_), rule=_rule(source),
            holdout_share=holdout / 100, attribution_days=int(days), variants=[v.strip() for v in variants.split(",")],
            coupon_code=coupon, fixed_cost=float(fixed), marked_only=marked, reach=reach,
        )
        st.session_state["res_frozen"] = new_id
        st.rerun()  # the list and the detail above show the new campaign
    frozen = st.session_state.get("res_frozen")
    if frozen:
        rec = ui.run(C.recipients, store, frozen)
        if len(rec):
            st.success(f"施策 No.{frozen} を記録しました：対象 {ui.count(len(rec), '人')}のうち、送らないグループ {ui.count(int(rec['holdout'].sum()), '人')}。"
                       "配信には「送らないグループ」を除いたお客様を使ってください。")
            send_to = rec[~rec["holdout"]].rename(columns={"customer_id": "顧客ID", "variant": "パターン"})[["顧客ID", "パターン"]]
            st.download_button("配信するお客様の一覧（CSV）", partial(ui.csv_bytes, send_to), file_name=f"施策{frozen}_配信対象.csv",
                               mime="text/csv", key="res_new_download", on_click="ignore")
