"""Widgets of the audience pages: the segment rule editor and the segment panels.

They live in this module rather than in the page script because Streamlit
recompiles a page script (with its "magic" AST pass) on every rerun in some
modes, which costs time in proportion to the script's size; an imported
module is compiled once.  The page (``pages/audience/segments.py``) stays a
short sequence of calls.

Session state (page-local, prefix ``seg_``):

``seg_rule``       the rule being edited (JSON, see :mod:`crm_core.audience.segments`)
``seg_rev``        revision of the editor's structure; widget keys carry it so
                   widgets are rebuilt after a structural change
``seg_loaded_id``  the saved segment being edited (None for a new one)
``seg_name``       the name to save under
``seg_flash``      a message shown once after a rerun
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from crm_core.analytics.overview import line_reach
from crm_core.audience import editor as E
from crm_core.audience import library as L
from crm_core.audience import segments as S
from crm_core.audience.fields import DAYS_RANGE, ELEMENT, FIELDS, GROUPS, OPERATORS, WINDOW_TYPES, field_label, operators_for
from crm_core.db import Store
from crm_core.ingest import products as PR
from crm_core.planning import planner
from crm_core.results import campaigns as C
from pages import ui

MAX_UI_DEPTH = 3
FIELD_KEYS = [k for g in GROUPS for k, f in FIELDS.items() if f.group == g]
MODES = {"all": "すべての条件を満たす（かつ）", "any": "いずれかの条件を満たす（または）"}
WINDOWS = {"all": "全期間", "days": "直近N日間", "range": "日付で指定"}
ENCODINGS = {"utf-8-sig": "UTF-8（BOM付き・Excel向け）", "cp932": "Shift_JIS（cp932・R-Mailなど）"}
Path = tuple[int, ...]
md = ui.md  # user-typed text shown inside Markdown


def init_state() -> None:
    """Page-local session defaults."""
    ss = st.session_state
    ss.setdefault("seg_rule", E.empty_rule())
    ss.setdefault("seg_rev", 0)
    ss.setdefault("seg_loaded_id", None)
    ss.setdefault("seg_name", "")


def open_rule(rule: dict[str, Any], name: str = "", loaded_id: int | None = None, flash: str = "") -> None:
    """Replace the rule being edited, rebuild the editor's widgets and rerun."""
    ss = st.session_state
    ss["seg_rule"] = E.as_root(rule)
    ss["seg_rev"] += 1
    ss["seg_loaded_id"] = loaded_id
    ss["seg_name"] = name
    if flash:
        ss["seg_flash"] = flash
    st.rerun()


def flash() -> None:
    """Show the message left by the previous run, once."""
    if "seg_flash" in st.session_state:
        st.success(st.session_state.pop("seg_flash"), icon="✅")


@st.cache_data(ttl=600, max_entries=200, show_spinner=False)
def _choices(db: str, version: int, model_day: dt.date, field_key: str) -> list[tuple[Any, str]]:
    return S.field_choices(ui.store(), field_key)


# ---------------------------------------------------------------------------
# Start: presets and saved segments
# ---------------------------------------------------------------------------


def start_panel(saved: list[dict[str, Any]]) -> None:
    """Open a preset, a saved segment, or start empty."""
    with st.container(border=True):
        c1, c2, c3 = st.columns([3, 3, 1.4], vertical_alignment="bottom")
        preset_key = c1.selectbox(
            "プリセットから始める", [p.key for p in S.PRESETS], index=None, placeholder="休眠・優良顧客・誕生月など",
            format_func=lambda key: S.PRESETS_BY_KEY[key].name, key="seg_preset",
            help="CRMでよく使う条件です。開いたあとで自由に変更できます。",
        )
        if preset_key:
            c1.caption(S.PRESETS_BY_KEY[preset_key].why)
        if c2.button("プリセットを開く", key="seg_open_preset", disabled=preset_key is None):
            p = S.PRESETS_BY_KEY[preset_key]
            open_rule(ui.run(S.preset_rule, p.key), p.name, None, f"プリセット「{md(p.name)}」を開きました。条件は自由に変更できます。")
        if c3.button("条件をすべてクリア", key="seg_new"):
            open_rule(E.empty_rule())
        if saved:
            c1, c2 = st.columns([3, 4.4], vertical_alignment="bottom")
            by_id = {s["segment_id"]: s for s in saved}
            pick = c1.selectbox("保存済みのセグメントを開く", list(by_id), index=None, placeholder="セグメントを選択",
                                format_func=lambda i: by_id[i]["name"], key="seg_open_pick")
            if c2.button("開いて編集", key="seg_open_saved", disabled=pick is None):
                seg = by_id[pick]
                open_rule(seg["rule"], seg["name"], seg["segment_id"], f"「{md(seg['name'])}」を開きました。")


# ---------------------------------------------------------------------------
# The rule editor
# ---------------------------------------------------------------------------


@dataclass
class Editor:
    """Renders a rule as widgets and reads it back; structural clicks become ``actions``."""

    as_of: dt.date
    rev: int
    version: int
    actions: list[tuple[str, Path]] = field(default_factory=list)

    def key(self, path: Path, name: str) -> str:
        return f"seg_{self.rev}_{'_'.join(map(str, path)) or 'root'}_{name}"

    def choices(self, field_key: str) -> list[tuple[Any, str]]:
        if FIELDS[field_key].type not in ("choice", "products", "categories", "sale", "month"):
            return []
        return ui.run(_choices, str(ui.store().path), self.version, self.as_of, field_key)

    # -- values -------------------------------------------------------------
    def scalar(self, f: Any, value: Any, key: str, label: str, holder: Any) -> Any:
        kind = ELEMENT[f.type]
        if f.type == "month":
            months = list(range(1, 13))
            return holder.selectbox(label, months, index=months.index(value) if value in months else 0,
                                    format_func=lambda m: f"{m}月", key=key)
        if kind == "date":
            try:
                day = dt.date.fromisoformat(value)
            except (TypeError, ValueError):
                day = self.as_of
            picked = holder.date_input(label, value=day, min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 12, 31), key=key)
            return picked.isoformat() if isinstance(picked, dt.date) else value
        if f.type == "ratio":
            start = float(value) * 100 if isinstance(value, (int, float)) else 50.0
            pct = holder.number_input(label + "（%）", min_value=0.0, max_value=100.0, step=5.0, value=start, key=key)
            return round(pct / 100, 6)
        if f.type in ("money", "window_money"):
            yen = int(round(value)) if isinstance(value, (int, float)) else 0
            return holder.number_input(label + "（円）", value=yen, step=1000, key=key)
        unit = f"（{f.unit}）" if f.unit else ""
        if kind == "int":
            lo = int(f.minimum) if f.minimum is not None else None
            hi = int(f.maximum) if f.maximum is not None else None
            start = int(value) if isinstance(value, (int, float)) else (lo or 0)
            return holder.number_input(label + unit, min_value=lo, max_value=hi, value=start, step=1, key=key)
        if kind == "number":
            start = float(value) if isinstance(value, (int, float)) else 0.0
            return holder.number_input(label + unit, value=start, step=1.0, key=key)
        opts = self.choices(f.key)
        if opts:
            names = dict(opts)
            values = [v for v, _ in opts]
            if value and value not in names:
                values = [value, *values]
            return holder.selectbox(label, values, index=values.index(value) if value in values else 0,
                                    format_func=lambda v: names.get(v, str(v)), key=key, accept_new_options=True)
        return holder.text_input(label, value=value or "", key=key)

    def many(self, f: Any, value: list[Any], key: str, holder: Any) -> list[Any]:
        opts = self.choices(f.key)
        kind = ELEMENT[f.type]
        if not opts and kind == "int":
            lo = int(f.minimum or 0)
            hi = int(f.maximum) if f.maximum is not None and f.maximum - lo <= 40 else lo + 30
            opts = [(i, f"{i}{f.unit}") for i in range(lo, hi + 1)]
        names = dict(opts)
        values = [v for v, _ in opts] + [v for v in value if v not in names]
        return holder.multiselect(
            "値（複数選べます）", values, default=[v for v in value if v in values],
            format_func=lambda v: names.get(v, str(v)), key=key, placeholder="選んでください",
            accept_new_options=kind == "str" and f.type != "sale",
        )

    def value(self, cond: dict[str, Any], path: Path, holder: Any) -> Any:
        f = FIELDS[cond["field"]]
        op = OPERATORS[cond["op"]]
        value = cond.get("value")
        key = self.key(path, f"v_{f.key}_{op.key}")
        if op.value == "none":
            holder.caption("（値の指定は不要です）")
            return None
        if op.value == "scalar":
            return self.scalar(f, value, key, "値", holder)
        if op.value == "pair":
            lo, hi = value if isinstance(value, list) and len(value) == 2 else (None, None)
            a, b = holder.columns(2)
            return [self.scalar(f, lo, key + "_lo", "から", a), self.scalar(f, hi, key + "_hi", "まで", b)]
        if op.value == "list":
            return self.many(f, value if isinstance(value, list) else [], key, holder)
        if op.value == "days":
            lo, hi = DAYS_RANGE[op.key]
            start = int(value) if isinstance(value, (int, float)) else lo
            return holder.number_input("日数", min_value=lo, max_value=hi, value=min(max(start, lo), hi), step=1, key=key)
        if op.value in ("percent", "factor"):
            label, lo, hi, step, default = ("上位（%）", 0.1, 100.0, 5.0, 20.0) if op.value == "percent" else ("倍率", 0.1, 1000.0, 0.5, 2.0)
            start = float(value) if isinstance(value, (int, float)) else default
            return holder.number_input(label, min_value=lo, max_value=hi, value=min(max(start, lo), hi), step=step, key=key)
        if op.value == "optional_text":
            return holder.text_input("クーポンコード（空欄ならすべて）", value=value or "", key=key) or None
        return holder.text_input("含む文字", value=value or "", key=key)

    def window(self, cond: dict[str, Any], path: Path) -> dict[str, Any] | None:
        window = cond.get("window") or {}
        start = "days" if "days" in window else "range" if window else "all"
        c1, c2, c3 = st.columns(3)
        kind = c1.selectbox("期間", list(WINDOWS), index=list(WINDOWS).index(start), format_func=WINDOWS.get,
                            key=self.key(path, f"w_{cond['field']}"))
        if kind == "days":
            days = c2.number_input("日数", min_value=1, max_value=36500, value=int(window.get("days", 90)), step=1,
                                   key=self.key(path, "w_days"))
            return {"days": int(days)}
        if kind == "range":
            def day(name: str, default: dt.date) -> dt.date:
                try:
                    return dt.date.fromisoformat(window[name])
                except (KeyError, TypeError, ValueError):
                    return default

            a = c2.date_input("開始日", value=day("from", self.as_of - dt.timedelta(days=89)), key=self.key(path, "w_from"))
            b = c3.date_input("終了日", value=day("to", self.as_of), key=self.key(path, "w_to"))
            return {"from": a.isoformat(), "to": b.isoformat()}
        return None

    # -- nodes --------------------------------------------------------------
    def condition(self, node: dict[str, Any], path: Path) -> dict[str, Any]:
        cond, negated = E.unwrap(node)
        if cond.get("field") not in FIELDS:
            cond = E.new_condition(as_of=self.as_of)
        with st.container(border=True):
            c1, c2, c3, c4 = st.columns([2.8, 2.2, 3.2, 1.8])
            field_key = c1.selectbox(
                "項目", FIELD_KEYS, index=FIELD_KEYS.index(cond["field"]),
                format_func=lambda key: f"{FIELDS[key].group}｜{field_label(key)}", key=self.key(path, "field"),
            )
            if field_key != cond["field"]:
                cond = E.change_field(cond, field_key, self.as_of, [v for v, _ in self.choices(field_key)])
            ops = operators_for(field_key)
            op_key = c2.selectbox("条件", ops, index=ops.index(cond["op"]) if cond["op"] in ops else 0,
                                  format_func=lambda key: OPERATORS[key].label, key=self.key(path, f"op_{field_key}"))
            if op_key != cond["op"]:
                cond = E.change_op(cond, op_key, self.as_of, [v for v, _ in self.choices(field_key)])
            new: dict[str, Any] = {"field": field_key, "op": op_key}
            value = self.value(cond, path, c3)
            if OPERATORS[op_key].value != "none":
                new["value"] = value
            negate = c4.checkbox("当てはまらない", value=negated, key=self.key(path, "not"),
                                 help="この条件に当てはまらないお客様を選びます（NOT）。")
            if c4.button("✕ 削除", key=self.key(path, "del")):
                self.actions.append(("remove", path))
            if FIELDS[field_key].help:
                st.caption(FIELDS[field_key].help)
            if FIELDS[field_key].type in WINDOW_TYPES:
                window = self.window(cond, path)
                if window:
                    new["window"] = window
        return E.wrap(new, negate)

    def group(self, node: dict[str, Any], path: Path = (), level: int = 1) -> dict[str, Any]:
        inner, negated = E.unwrap(node)
        mode = E.mode(inner)
        with st.container(border=level > 1):
            c1, c2, c3 = st.columns([4, 2, 1.2], vertical_alignment="bottom")
            new_mode = c1.radio(
                "組み合わせ方" if level == 1 else "グループ内の組み合わせ方", list(MODES), index=list(MODES).index(mode),
                format_func=MODES.get, horizontal=True, key=self.key(path, "mode"),
            )
            negate = False
            if path:
                negate = c2.checkbox("このグループに当てはまらない", value=negated, key=self.key(path, "not"))
                if c3.button("グループを削除", key=self.key(path, "del")):
                    self.actions.append(("remove", path))
            children = []
            for i, child in enumerate(inner[mode]):
                if E.mode(E.unwrap(child)[0]):
                    children.append(self.group(child, path + (i,), level + 1))
                else:
                    children.append(self.condition(child, path + (i,)))
            if not inner[mode]:
                st.caption("条件がありません（すべてのお客様が対象です）。「＋ 条件を追加」で絞り込みます。"
                           if level == 1 else "このグループには条件がありません（無視されます）。")
            b1, b2, _ = st.columns([1.4, 1.6, 4])
            if b1.button("＋ 条件を追加", key=self.key(path, "add")):
                self.actions.append(("add", path))
            if level < MAX_UI_DEPTH and b2.button("＋ グループを追加", key=self.key(path, "add_group"),
                                                   help="「または」や「当てはまらない」でまとめる条件のグループを作ります。"):
                self.actions.append(("add_group", path))
        return E.wrap({new_mode: children}, negate)


def rule_editor(as_of: dt.date, version: int) -> dict[str, Any]:
    """Render the rule in session state as widgets; return the rule they now describe.

    A structural click (add, remove) updates the rule and reruns.
    """
    ss = st.session_state
    editor = Editor(as_of, ss["seg_rev"], version)
    rule = editor.group(E.as_root(ss["seg_rule"]))
    ss["seg_rule"] = rule
    if editor.actions:
        what, path = editor.actions[0]
        if what == "remove":
            rule = E.remove(rule, path)
        elif what == "add":
            rule = E.append(rule, path, E.new_condition(as_of=as_of))
        else:
            rule = E.append(rule, path, {"any": [E.new_condition(as_of=as_of)]})
        ss["seg_rule"] = rule
        ss["seg_rev"] += 1
        st.rerun()
    return rule


# ---------------------------------------------------------------------------
# Result, save, saved segments, compare, export
# ---------------------------------------------------------------------------


@st.cache_data(ttl=600, max_entries=8, show_spinner=False)
def _line_reach(db: str, version: tuple) -> dict[str, Any]:
    """:func:`line_reach` counts every customer (20 ms at 2.3 M): kept per data version (LINE ids arrive by import)."""
    return line_reach(ui.store())


def reach_caption(store: Store) -> None:
    """How LINE reach grew with the last imports (LINE link files attach ids to Rakuten buyers)."""
    reach = ui.run(_line_reach, str(store.path), ui.data_version())
    steps = [h for h in reach["history"] if h["added"]]
    text = f"LINEで届くお客様は全体で{reach['line_customers']:,}人（{ui.pct(reach['share'])}）"
    if reach["linked_by_files"]:
        text += f"、そのうちLINE連携ファイルでつながった人 {reach['linked_by_files']:,}人"
    if steps:
        last = steps[-1]
        text += f"。直近で増えた取り込み: {ui.jdate(last['recorded_at'])}「{last['file_names']}」で{last['added']:+,}人"
    st.caption("📱 " + text + "。楽天のお客様のLINE IDは「データ取込」でLINE連携ファイル（注文番号・電話番号→LINEユーザーID）を取り込むと増えます。")


def rule_version(store: Store) -> tuple:
    """What a segment's figures depend on besides its rule: the data (imports, model rebuilds), the costs,
    and the campaigns a rule may refer to."""
    return (ui.data_version(), *ui.run(PR.costs_version, store), *ui.run(C.results_version, store))


@st.cache_data(ttl=600, max_entries=64, show_spinner="粗利を集計しています…")
def _profit_summary(db: str, version: tuple, rule: dict[str, Any]) -> dict[str, Any]:
    """:func:`S.profit_summary`: a sum of the customers' gross profit stored by the last refresh (when current,
    else every order line of the segment joined to the costs), kept per rule and version."""
    return S.profit_summary(ui.store(), rule, data_version=version[0][1:])  # version[0]: ui.data_version()


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def _summary(db: str, version: tuple, rule: dict[str, Any]) -> dict[str, Any]:
    """:func:`S.summary` reads every customer of the model: kept per rule and version (a rerun that leaves the
    rule as it is, such as choosing a preset or typing a name, does not count again)."""
    return S.summary(ui.store(), rule)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def _sample(db: str, version: tuple, rule: dict[str, Any]) -> pd.DataFrame:
    """:func:`S.sample` (the 20 biggest customers of the rule: 36 ms at 2.3 M customers), kept like :func:`_summary`."""
    return S.sample(ui.store(), rule, 20)


def profit_metrics(store: Store, rule: dict[str, Any]) -> None:
    """The segment's gross profit, historic and predicted, with how much of it rests on known costs."""
    gp = ui.run(_profit_summary, str(store.path), rule_version(store), rule)
    c = st.columns(3)
    if gp["gross_profit"] is None:
        c[0].metric("累計粗利", "原価未登録", help="このセグメントの商品に原価・粗利率が登録されていません。「データ取込」の「商品の原価・粗利率」で登録できます。")
    else:
        c[0].metric("累計粗利（原価が分かる商品）", ui.yen(gp["gross_profit"]),
                    help=f"粗利率 {ui.pct(gp['margin_rate'])}。商品代金 − 原価（送料・ポイント・クーポンは含みません）")
    c[1].metric("原価が分かる売上の割合", ui.pct(gp["coverage"]),
                help="100%未満のときは、原価が分からない商品の粗利を含まないため、粗利は実際より少なめに出ます（0円とはみなしません）。")
    c[2].metric("今後365日の予測粗利", ui.yen(gp["predicted_gross_profit_365d"]),
                help="お客様ごとの予測購入金額 × そのお客様の粗利率（購入した商品の構成から）の合計。"
                     + (f"予測購入金額のうち粗利率が分かる分は{ui.pct(gp['predicted_covered_share'])}です。" if gp["predicted_covered_share"] is not None else ""))


def result_panel(store: Store, rule: dict[str, Any]) -> dict[str, Any] | None:
    """The live sentence, size, reach and a sample; None when the rule needs fixing."""
    problem = S.check(rule)
    if problem:
        st.warning(problem, icon="✏️")
        return None
    result = ui.run(_summary, str(store.path), rule_version(store), rule)
    st.info("**条件：** " + md(result["description"]), icon="🎯")
    c = st.columns(5)
    c[0].metric("該当顧客数", ui.count(result["customers"], "人"), help=f"{ui.jdate(result['as_of'])}時点の顧客データ")
    c[1].metric("全顧客に占める割合", ui.pct(result["customer_share"]), help=f"全顧客 {result['total_customers']:,}人")
    c[2].metric("累計売上に占める割合", ui.pct(result["revenue_share"]), help=f"このセグメントの累計購入金額 {ui.yen(result['revenue'])}")
    c[3].metric("メールで届く", ui.count(result["email_reachable"], "人"), help="メール配信を許可し、メールアドレスがあるお客様")
    c[4].metric("LINEで届く", ui.count(result["line_reachable"], "人"), help="LINEユーザーIDが分かっているお客様")
    if result["customers"]:
        for channel, count, name in (("mail_list", result["email_reachable"], "メール"), ("line", result["line_reachable"], "LINE")):
            if count == 0:
                ui.reach_note(ui.run(planner.explain_reach, store, channel, rule), f"{name}で届くお客様が0人です。")
    reach_caption(store)
    profit_metrics(store, rule)
    if result["customers"] == 0:
        ui.empty_state(
            "この条件に当てはまるお客様はいません。日数を短く・金額を低くするなど条件をゆるめるか、"
            "「当てはまらない」の指定を見直してください。"
        )
        return result
    table = ui.run(_sample, str(store.path), rule_version(store), rule)
    table = table.rename(columns=S.labels(table.columns))
    st.caption(f"該当するお客様の例（累計購入金額の多い順に最大20人）　基準日: {ui.jdate(result['as_of'])}")
    # the name first (pinned), the 33-character customer ID last: on a phone it filled the screen
    order = [c for c in table.columns if c != "顧客ID"] + [c for c in table.columns if c == "顧客ID"]
    ui.dataframe(table, hide_index=True, width="stretch", key="seg_sample", column_order=order,
                 column_config={"氏名": st.column_config.TextColumn("氏名", pinned=True),
                                "累計購入金額": ui.yen_column("累計購入金額"),
                                "平均購入単価": ui.yen_column("平均購入単価"),
                                "最終購入日時": st.column_config.DatetimeColumn(format="YYYY/MM/DD HH:mm")})
    return result


def save_panel(store: Store, rule: dict[str, Any], valid: bool) -> None:
    """Save the rule under a name (new, or over the segment that was opened)."""
    ss = st.session_state
    name = st.text_input("セグメント名", value=ss["seg_name"], max_chars=L.MAX_NAME, key=f"seg_name_input_{ss['seg_rev']}",
                         placeholder="例: 休眠90日・東京")
    loaded = ss["seg_loaded_id"]
    c1, c2, _ = st.columns([1.5, 2, 3])
    if loaded is not None and c1.button("上書き保存", type="primary", key="seg_save_over", disabled=not valid):
        ui.run(L.save_segment, store, name, rule, loaded)
        ss["seg_name"] = name.strip()
        ss["seg_flash"] = f"「{md(name.strip())}」を上書き保存しました。"
        st.rerun()
    holder = c2 if loaded is not None else c1
    label = "新しいセグメントとして保存" if loaded is not None else "保存"
    if holder.button(label, type="secondary" if loaded is not None else "primary", key="seg_save_new", disabled=not valid):
        ss["seg_loaded_id"] = ui.run(L.save_segment, store, name, rule)
        ss["seg_name"] = name.strip()
        ss["seg_flash"] = f"「{md(name.strip())}」として保存しました。"
        st.rerun()
    if not valid:
        st.caption("条件を直すと保存できます。")


def describe_saved(store: Store, rule: Any) -> str:
    """The sentence of a saved rule, or why it can no longer be used (it never stops the page)."""
    problem = S.check(rule)
    return f"⚠️ {problem}" if problem else ui.run(S.describe, rule, store)


def saved_panel(store: Store, saved: list[dict[str, Any]]) -> None:
    """The saved segments: sizes, rename, duplicate, delete, size history."""
    ss = st.session_state
    if not saved:
        ui.empty_state("保存したセグメントはまだありません。条件を作って「💾 保存」から名前を付けて保存すると、ここに並びます。")
        return
    overview = pd.DataFrame(
        [{"名前": s["name"], "人数（最新）": s["customers"], "計測日時": s["measured_at"], "更新日時": s["updated_at"],
          "条件": describe_saved(store, s["rule"])} for s in saved]
    )
    ui.dataframe(overview, hide_index=True, width="stretch", key="seg_saved_table",
                 column_config=ui.count_columns(overview, "人数（最新）"))
    by_id = {s["segment_id"]: s for s in saved}
    pick = st.selectbox("セグメント", list(by_id), format_func=lambda i: by_id[i]["name"], key="seg_manage_pick")
    seg = by_id[pick]
    c1, c2, c3 = st.columns([3, 1.3, 1.3], vertical_alignment="bottom")
    new_name = c1.text_input("新しい名前", value=seg["name"], key=f"seg_rename_{pick}", max_chars=L.MAX_NAME)
    if c2.button("名前を変更", key="seg_rename", disabled=new_name.strip() == seg["name"]):
        ui.run(L.rename_segment, store, pick, new_name)
        if ss["seg_loaded_id"] == pick:
            ss["seg_name"] = new_name.strip()
        ss["seg_flash"] = f"名前を「{md(new_name.strip())}」に変更しました。"
        st.rerun()
    if c3.button("複製", key="seg_duplicate"):
        copy_id = ui.run(L.duplicate_segment, store, pick)
        ss["seg_flash"] = f"「{md(ui.run(L.get_segment, store, copy_id)['name'])}」を作りました。"
        st.rerun()
    c1, c2 = st.columns([3, 2.6], vertical_alignment="bottom")
    sure = c1.checkbox(f"「{md(seg['name'])}」を削除することを確認しました", key=f"seg_delete_ok_{pick}")
    if c2.button("削除", key="seg_delete", disabled=not sure):
        ui.run(L.delete_segment, store, pick)
        if ss["seg_loaded_id"] == pick:
            ss["seg_loaded_id"] = None
        ss["seg_flash"] = f"「{md(seg['name'])}」を削除しました。"
        st.rerun()
    history = ui.run(L.size_history, store, pick)
    if len(history):
        history.columns = ["計測日時", "人数"]
        st.caption("人数の推移（保存・上書きのたびに記録）")
        ui.dataframe(history, hide_index=True, width="content", key="seg_history",
                     column_config=ui.count_columns(history, "人数"))


def compare_panel(store: Store, rule: dict[str, Any], valid: bool, saved: list[dict[str, Any]]) -> None:
    """Overlap of two segments (the rule being edited or saved ones)."""
    options: dict[str, tuple[str, dict[str, Any]]] = {"current": ("いま編集中の条件", rule)}
    options.update({str(s["segment_id"]): (s["name"], s["rule"]) for s in saved})
    if len(options) < 2:
        ui.empty_state("比べるには、セグメントを1つ以上保存してください。いま編集中の条件と保存済みのセグメントを比べられます。")
        return
    keys = list(options)
    c1, c2 = st.columns(2)
    a = c1.selectbox("セグメントA", keys, index=0, format_func=lambda x: options[x][0], key="seg_cmp_a")
    b = c2.selectbox("セグメントB", keys, index=1, format_func=lambda x: options[x][0], key="seg_cmp_b")
    if not valid and "current" in (a, b):
        st.warning("いま編集中の条件を直すと比べられます。")
        return
    ov = ui.run(S.compare, store, options[a][1], options[b][1])
    c = st.columns(4)
    c[0].metric("Aだけ", ui.count(ov["a_only"], "人"))
    c[1].metric("AとBの両方", ui.count(ov["both"], "人"))
    c[2].metric("Bだけ", ui.count(ov["b_only"], "人"))
    c[3].metric("AかBのどちらか", ui.count(ov["either"], "人"))
    if ov["either"]:
        st.caption(f"重なり: Aの{ui.pct(ov['both'] / ov['a'] if ov['a'] else None)}、"
                   f"Bの{ui.pct(ov['both'] / ov['b'] if ov['b'] else None)}が両方に入っています。")


def export_panel(store: Store, rule: dict[str, Any], result: dict[str, Any] | None, as_of: dt.date) -> None:
    """Downloads: CSV (UTF-8 BOM or cp932, formulas neutralised) and a LINE user id list."""
    if result is None:
        st.warning("条件を直すと書き出せます。")
        return
    c1, c2 = st.columns(2)
    encoding = c1.radio("文字コード", list(ENCODINGS), horizontal=True, key="seg_encoding", format_func=ENCODINGS.get)
    opted = c2.checkbox("メール配信を許可しているお客様だけ", value=True, key="seg_opted_in",
                        help="広告メールは事前に同意したお客様にだけ送れます（特定電子メール法）。")
    frozen = copy.deepcopy(rule)
    n_csv = result["email_reachable"] if opted else result["customers"]
    st.download_button(
        f"CSVをダウンロード（{n_csv:,}人）", ui.download_data(S.csv_bytes, store, frozen, encoding, opted),
        file_name=f"segment_{as_of:%Y%m%d}.csv", mime="text/csv", key="seg_download_csv", disabled=n_csv == 0,
    )
    st.caption("先頭が「=」「+」「-」「@」の文字は、表計算ソフトで数式にならないよう「'」を付けて書き出します。"
               + ("cp932で表せない文字（絵文字など）は「?」になります。" if encoding == "cp932" else ""))
    st.download_button(
        f"LINEユーザーIDの一覧をダウンロード（{result['line_reachable']:,}人）", ui.download_data(S.line_ids_text, store, frozen),
        file_name=f"line_audience_{as_of:%Y%m%d}.txt", mime="text/plain", key="seg_download_line",
        disabled=result["line_reachable"] == 0,
    )
    st.caption("LINE公式アカウントの「オーディエンス」にアップロードできる、1行に1つのユーザーIDのテキストファイルです。")
