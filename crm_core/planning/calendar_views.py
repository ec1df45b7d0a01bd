"""Views of the sale calendar for planning: the lane chart, sales around events, the events table, ICS export."""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

import altair as alt
import pandas as pd

from crm_core import clock, jp
from crm_core.events import rakuten as events
from crm_core.events.calendar import (
    BAND_KINDS,
    JST,
    KIND_COLORS,
    KIND_LABELS,
    POINT_KINDS,
    STATUS_LABELS,
    _to_datetime,
    format_date,
    format_datetime,
    format_period,
    is_missing,
)

# --------------------------------------------------------------------------
# Views (Altair)
# --------------------------------------------------------------------------

LANE_SALE = "楽天イベント"
LANE_POINT = "ポイントデー"
LANE_OWN = "自社企画"
LANE_HOLIDAY = "祝日"
LANE_SENDS = "配信予定"
LANES = (LANE_SALE, LANE_POINT, LANE_OWN, LANE_HOLIDAY, LANE_SENDS)
CHANNEL_COLORS = {"LINE": "#06C755", "R-Mail": "#BF0000", "Shopify Email": "#5E8E3E", "メール": "#3B6FB6"}
_DAY_AXIS = "['日','月','火','水','木','金','土'][day(datum.value)]"


# The two charts' Vega-Lite specs are the same for every range of the same length: what changes with the month
# (the days shown, the title, which kinds are in the legend) is in their named datasets.  A browser that gets the
# same spec again only swaps the data of the chart it already drew (Streamlit's Vega-Lite element); a new spec is
# parsed, compiled and drawn from scratch (50–120 ms per chart on a laptop-class CPU).  The specs are built with
# Altair once per process and length of range; each month costs only its rows.
RANGE_DATA = "cal_range"
"""One row per end of the range (``x``: the first day and the day after the last), which spans the x axis; the
first row also carries the ``title`` and the ``|``-joined labels of the kinds and channels drawn (the legends)."""
_FIRST = f"(data('{RANGE_DATA}')[0] || {{}})"  # (an empty object before the data arrive)
_TITLE = alt.TitleParams(text=alt.ExprRef(expr=f"{_FIRST}.title"))


def _legend(column: str, **kwargs: Any) -> alt.Legend:
    """A legend of the labels the range row lists in ``column``; with none, no title either (the title alone would
    stand there)."""
    return alt.Legend(values=alt.ExprRef(expr=f"{_FIRST}.{column} ? split({_FIRST}.{column}, '|') : []"),
                      titleOpacity=alt.ExprRef(expr=f"{_FIRST}.{column} ? 1 : 0"), **kwargs)


def _axis_kind(start: dt.date, end: dt.date) -> str:
    span = (end - start).days
    return "days" if span <= 20 else ("every_other_day" if span <= 45 else "dates")


def _x_axis(kind: str) -> alt.Axis:
    if kind != "dates":
        return alt.Axis(title=None, format="%-m/%-d", labelExpr=f"timeFormat(datum.value, '%-m/%-d') + '(' + {_DAY_AXIS} + ')'",
                        tickCount={"interval": "day", "step": 1 if kind == "days" else 2}, labelAngle=-45, grid=True)
    return alt.Axis(title=None, labelExpr="timeFormat(datum.value, '%-m/%-d')", grid=True, labelAngle=0)


def _range_layer(axis_kind: str) -> alt.Chart:
    """The invisible layer whose two rows make the x axis span exactly the range (every other layer's rows lie within)."""
    return alt.Chart(alt.NamedData(RANGE_DATA)).mark_rule(opacity=0).encode(x=alt.X("x:T", axis=_x_axis(axis_kind)))


def _range_frame(start: dt.date, end: dt.date, title: str, **legends: list[str]) -> pd.DataFrame:
    first, after = pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1)
    extra = {k: ["|".join(v), ""] for k, v in legends.items()}
    return pd.DataFrame({"x": [first, after], "title": [title, ""], **extra})


def _clamped(frame: pd.DataFrame, start: dt.date, end: dt.date, lo: str = "starts_at", hi: str = "end_x") -> pd.DataFrame:
    """Bands cut to the range shown (the axis spans the rows' extent, so a sale that began earlier would widen it)."""
    first, after = pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1)
    return frame.assign(**{lo: frame[lo].clip(lower=first), hi: frame[hi].clip(upper=after)})


def _day_off_frame(start: dt.date, end: dt.date, hol: pd.DataFrame) -> pd.DataFrame:
    hol_days = set(hol.date.dt.date) if not hol.empty else set()
    rows = []
    d = start
    while d <= end:
        if d.weekday() >= 5 or d in hol_days:
            rows.append({"from": pd.Timestamp(d), "to": pd.Timestamp(d) + pd.Timedelta(days=1)})
        d += dt.timedelta(days=1)
    return pd.DataFrame(rows, columns=["from", "to"]).astype("datetime64[ns]")


_EVENT_COLUMNS = ["kind", "lane", "種類", "状態", "期間", "エントリー", "出典", "名前", "starts_at", "end_x", "day_mid", "pattern"]


def _event_frame(evts: pd.DataFrame) -> pd.DataFrame:
    if evts.empty:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c in ("starts_at", "end_x", "day_mid") else
                                          (bool if c == "pattern" else object)) for c in _EVENT_COLUMNS})
    df = evts.copy()
    df["lane"] = [LANE_SALE if k in events.KIND_LABELS and k not in POINT_KINDS else (LANE_POINT if k in POINT_KINDS else LANE_OWN)
                  for k in df.kind]
    df["種類"] = df.kind.map(KIND_LABELS)
    df["状態"] = df.status.map(STATUS_LABELS).fillna(df.status)
    df["期間"] = [format_period(s, e) for s, e in zip(df.starts_at, df.ends_at)]
    df["エントリー"] = [format_datetime(x) for x in df.entry_starts_at]
    df["出典"] = df.source
    df["名前"] = df.name
    df["end_x"] = df.ends_at + pd.Timedelta(seconds=1)
    df["day_mid"] = df.starts_at.dt.normalize() + pd.Timedelta(hours=12)
    df["pattern"] = df.status == "pattern"
    return df[_EVENT_COLUMNS]


def _kind_color(legend: alt.Legend) -> alt.Color:
    """Every kind's colour, always the same (a fixed domain); the legend lists the kinds drawn (from the range row)."""
    return alt.Color("種類:N", title="イベント", scale=alt.Scale(domain=list(KIND_LABELS.values()), range=[KIND_COLORS[k] for k in KIND_LABELS]),
                     legend=legend)


def _kinds_drawn(*frames: pd.DataFrame) -> list[str]:
    present = set().union(*(set(f.kind) for f in frames))
    return [label for k, label in KIND_LABELS.items() if k in present]


@functools.lru_cache(maxsize=8)
def _calendar_spec(axis_kind: str, width: int | str, channels: tuple[str, ...]) -> str:
    """The lane chart's spec without data (see :data:`RANGE_DATA`), validated once; JSON, so that no caller can
    change the kept one."""
    y = alt.Y("lane:N", title=None, scale=alt.Scale(domain=list(LANES)), axis=alt.Axis(labelFontSize=12, labelLimit=120))
    color = _kind_color(_legend("kinds", orient="bottom", columns={"expr": f"width >= {WIDE_FROM_PX} ? 5 : 1"}))
    tooltip = [alt.Tooltip("名前:N"), alt.Tooltip("種類:N"), alt.Tooltip("期間:N"), alt.Tooltip("エントリー:N"),
               alt.Tooltip("状態:N"), alt.Tooltip("出典:N")]
    bands, points = alt.NamedData("cal_bands"), alt.NamedData("cal_points")
    events_layer = alt.LayerChart(layer=[
        alt.Chart(bands).mark_bar(height=24, cornerRadius=3, clip=True).encode(
            x=alt.X("starts_at:T"), x2=alt.X2("end_x:T"), y=y, color=color,
            opacity=alt.OpacityValue(0.95, condition={"test": "datum.pattern", "value": 0.55}),
            strokeDash=alt.StrokeDashValue([1, 0], condition={"test": "datum.pattern", "value": [4, 3]}),
            stroke=alt.StrokeValue("#333333"),
            strokeWidth=alt.StrokeWidthValue(0, condition={"test": "datum.pattern", "value": 1}),
            tooltip=tooltip),
        # the label set is chosen where the real width is known: in the browser (a phone draws the plot ≈ 270 px wide)
        alt.Chart(bands).transform_calculate(
            ラベル=f"width >= {WIDE_FROM_PX} ? datum['短縮'] : datum['短縮_狭']",
        ).mark_text(align="left", dx=3, fontSize=10, color="#222222", clip=True).encode(
            x=alt.X("starts_at:T"), y=y, text=alt.Text("ラベル:N"), tooltip=tooltip),
        alt.Chart(points).mark_circle(size=60, opacity=0.9).encode(x=alt.X("day_mid:T"), y=y, color=color, tooltip=tooltip),
    ])
    hol = alt.NamedData("cal_holidays")
    layers = [
        _range_layer(axis_kind),
        alt.Chart(alt.NamedData("cal_days_off")).mark_rect(color="#F4F4F4").encode(x=alt.X("from:T"), x2=alt.X2("to:T")),
        events_layer,
        # A mark per holiday, the name in the tooltip and in the list under the chart: names written on
        # the chart overlap (Golden Week; any range on a phone).
        alt.Chart(hol).mark_tick(color="#C8463D", thickness=2, size=14).encode(
            x=alt.X("day_mid:T"), y=y, tooltip=[alt.Tooltip("祝日:N"), alt.Tooltip("日付:N")]),
        alt.Chart(hol).mark_rule(color="#C8463D", opacity=0.25).encode(x=alt.X("date:T")),
        alt.Chart(alt.NamedData("cal_sends")).mark_point(filled=True, size=160, shape="diamond", stroke="white", strokeWidth=1).encode(
            x=alt.X("send_at:T"), y=y,
            color=alt.Color("チャネル:N", title="配信チャネル",
                            scale=alt.Scale(domain=list(channels), range=[CHANNEL_COLORS.get(c, "#555555") for c in channels]),
                            legend=_legend("channels", orient="bottom", symbolType="diamond", symbolSize=120)),
            tooltip=[alt.Tooltip(f) for f in ("配信:N", "日時:N", "チャネル:N", "テンプレート:N", "対象:N")]),
    ]
    chart = alt.LayerChart(layer=layers, resolve=alt.Resolve(scale=alt.ScaleResolveMap(color="independent")),
                           width=width, height=alt.Step(36), title=_TITLE,
                           description="販促カレンダー（楽天イベント・ポイントデー・自社企画・祝日・配信予定）")
    return chart.to_json(indent=None)


def calendar_chart(evts: pd.DataFrame, hol: pd.DataFrame, sends: pd.DataFrame | None, start: dt.date, end: dt.date,
                   width: int | str = "container") -> dict[str, Any] | None:
    """The calendar as a timeline: one lane per kind of entry, days on the x axis.

    Parameters
    ----------
    evts : DataFrame
        :func:`list_events` rows (bands: sale windows and own events; point days as marks).
    hol : DataFrame
        :func:`holidays` (``date, name``); weekends and holidays get a grey background.
    sends : DataFrame or None
        Planned sends (``send_at, channel_label, label, template, recipients_text``),
        drawn as points coloured by channel.
    start, end : date
        The days shown.

    Returns
    -------
    dict or None
        The Vega-Lite spec with its ``datasets`` (frames; ``st.vega_lite_chart`` sends them as Arrow), the same spec
        for every range of the same length; None when there is nothing at all to draw.
    """
    sends = sends if sends is not None else pd.DataFrame()
    if evts.empty and hol.empty and sends.empty:
        return None
    first, after = pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1)
    long_range = (end - start).days > 100
    off = _day_off_frame(start, end, hol)
    if long_range:  # grey days are left out from four months on (a bar per weekend blurs into stripes)
        off = off.iloc[:0]

    df = _clamped(_event_frame(evts), start, end)
    span_days = (end - start).days + 1
    bands = df[df.kind.isin(BAND_KINDS)].drop(columns=["day_mid"]).reset_index(drop=True)
    bands = bands.assign(短縮=band_labels(bands, start, span_days, WIDE_PX),
                         短縮_狭=band_labels(bands, start, span_days, NARROW_PX))
    points = df[df.kind.isin(POINT_KINDS)].drop(columns=["starts_at", "end_x"]).reset_index(drop=True)

    h = hol.assign(day_mid=hol.date + pd.Timedelta(hours=12), lane=LANE_HOLIDAY,
                   日付=[format_date(d) for d in hol.date], 祝日=hol.name).drop(columns=["name"])

    if not sends.empty:
        sends = sends[(sends.send_at >= first) & (sends.send_at < after)]
    s = pd.DataFrame({"send_at": sends.get("send_at", pd.Series(dtype="datetime64[ns]")), "lane": LANE_SENDS,
                      "日時": [format_datetime(t) for t in sends.get("send_at", [])],
                      "チャネル": sends.get("channel_label", pd.Series(dtype=object)), "配信": sends.get("label", pd.Series(dtype=object)),
                      "テンプレート": sends.get("template", pd.Series(dtype=object)),
                      "対象": sends.get("recipients_text", pd.Series("—", index=sends.index, dtype=object))})
    present = set(s.チャネル)
    unknown = sorted(present - set(CHANNEL_COLORS))  # (in the spec's colour domain: a rare label changes the spec)
    drawn_channels = [c for c in CHANNEL_COLORS if c in present] + unknown
    spec = json.loads(_calendar_spec(_axis_kind(start, end), width, (*CHANNEL_COLORS, *unknown)))
    spec["datasets"] = {
        RANGE_DATA: _range_frame(start, end, f"{format_date(start)} 〜 {format_date(end)}",
                                 kinds=_kinds_drawn(bands, points), channels=drawn_channels),
        "cal_days_off": off, "cal_bands": bands, "cal_points": points, "cal_holidays": h, "cal_sends": s,
    }
    return spec
_SHORT = {"super_sale": "スーパーSALE", "marathon": "マラソン"}
WIDE_PX = 900  # the plot's width on a laptop, roughly
NARROW_PX = 270  # on a phone (390 px screen, lane names beside the plot)
WIDE_FROM_PX = 600  # the browser uses the wide labels from this plot width on
CHAR_PX = 11  # a character at font size 10, roughly (Japanese characters are the widest)


def band_labels(bands: pd.DataFrame, first_day: dt.date, span_days: int, plot_px: int) -> list[str]:
    """Each band's label for a plot ``plot_px`` wide: never a word cut short, never over another label.

    The longest of the full name, the short name (スーパーSALE, マラソン) and the
    kind's label that fits on the band; when none fits, the shortest whole one
    if it ends before the next band of the same lane starts (ranges up to 100
    days); otherwise no label (the colour legend and the tooltip name the event).

    Parameters
    ----------
    bands : DataFrame
        ``kind, lane, 名前, starts_at, end_x`` (:func:`_event_frame` rows of band kinds).
    first_day, span_days : date, int
        The first day on the x axis and how many days it shows.
    plot_px : int
        Width of the plot area in pixels.
    """
    per_day = plot_px / max(span_days, 1)
    first_day = pd.Timestamp(first_day)
    starts = pd.to_datetime(bands.starts_at)
    next_start: dict[int, pd.Timestamp | None] = {}
    for _lane, group in bands.assign(_s=starts).groupby("lane", sort=False):
        ordered = group.sort_values("_s")
        following = list(ordered["_s"].iloc[1:]) + [None]
        next_start.update(zip(ordered.index, following))
    out = []
    for i, kind, name, s, e in zip(bands.index, bands.kind, bands.名前, starts, pd.to_datetime(bands.end_x)):
        candidates = sorted(dict.fromkeys([name, _SHORT.get(kind, name), KIND_LABELS.get(kind, name)]), key=len, reverse=True)
        nxt = next_start.get(i)
        if nxt is None:  # the last band of its lane: the label must end before the plot does
            nxt = first_day + pd.Timedelta(days=span_days)
        on_band = (min(e, nxt) - s).total_seconds() / 86400 * per_day / CHAR_PX  # own events may overlap
        label = next((t for t in candidates if len(t) <= on_band), "")
        if not label and span_days <= 100:
            until_next = (nxt - s).total_seconds() / 86400 * per_day / CHAR_PX - 0.5
            shortest = candidates[-1]
            label = shortest if len(shortest) <= until_next else ""
        out.append(label)
    return out


@functools.lru_cache(maxsize=8)
def _sales_spec(axis_kind: str, width: int | str) -> str:
    """Last year's sales chart's spec without data (see :data:`RANGE_DATA`), validated once (JSON, as above)."""
    bands = alt.Chart(alt.NamedData("sales_events")).mark_rect(opacity=0.18, clip=True).encode(
        x=alt.X("starts_at:T"), x2=alt.X2("end_x:T"),
        color=_kind_color(_legend("kinds", orient="bottom")),
        tooltip=[alt.Tooltip("名前:N"), alt.Tooltip("期間:N"), alt.Tooltip("状態:N")])
    days = alt.Chart(alt.NamedData("sales_days")).mark_bar(color="#3B6FB6", opacity=0.85).encode(
        x=alt.X("date:T"),
        x2=alt.X2("date_end:T"),
        y=alt.Y("revenue:Q", title="売上（円）", axis=alt.Axis(labelExpr="'¥' + format(datum.value, ',.0f')")),
        y2=alt.Y2Datum(0),
        tooltip=[alt.Tooltip("日付:N"), alt.Tooltip("売上:N"), alt.Tooltip("注文数:N")]).transform_calculate(
        date_end="datum.date + 86400000 * 0.85")
    chart = alt.LayerChart(layer=[_range_layer(axis_kind), bands, days], width=width, height=360, title=_TITLE,
                           description="日別売上と楽天・自社イベント")
    return chart.to_json(indent=None)


def sales_overlay_chart(daily: pd.DataFrame, evts: pd.DataFrame, width: int | str = "container") -> dict[str, Any] | None:
    """Daily revenue of a past range with that range's sale periods drawn behind it.

    Returns the Vega-Lite spec with its ``datasets`` (the same spec for every range of the same length; see
    :func:`calendar_chart`), or None when the range has no revenue at all.  (Streamlit fits the whole
    chart, title and legend included, into the given height.)
    """
    if daily.empty or float(daily.revenue.sum()) == 0:
        return None
    start, end = daily.date.min().date(), daily.date.max().date()
    d = daily.assign(日付=[format_date(x) for x in daily.date], 売上=[jp.yen(v) for v in daily.revenue],
                     注文数=[f"{n:,}件" for n in daily.orders])
    bands = evts[evts.kind.isin(BAND_KINDS)] if not evts.empty else evts.iloc[:0]
    b = _clamped(_event_frame(bands), start, end)[["kind", "種類", "名前", "期間", "状態", "starts_at", "end_x"]]
    spec = json.loads(_sales_spec(_axis_kind(start, end), width))
    spec["datasets"] = {
        RANGE_DATA: _range_frame(start, end, f"日別売上（{format_date(start)} 〜 {format_date(end)}）と楽天・自社イベント",
                                 kinds=_kinds_drawn(b)),
        "sales_events": b.drop(columns=["kind"]), "sales_days": d,
    }
    return spec


# --------------------------------------------------------------------------
# Tables and ICS
# --------------------------------------------------------------------------


def events_table(evts: pd.DataFrame) -> pd.DataFrame:
    """Events as a Japanese table for the page and CSV export."""
    return pd.DataFrame({
        "イベントID": evts.event_id,
        "種類": evts.kind.map(KIND_LABELS).fillna(evts.kind),
        "イベント名": evts.name,
        "開始": [format_datetime(x) for x in evts.starts_at],
        "終了": [format_datetime(x) for x in evts.ends_at],
        "エントリー開始": [format_datetime(x) for x in evts.entry_starts_at],
        "状態": evts.status.map(STATUS_LABELS).fillna(evts.status),
        "出典": evts.source,
    })


def _aware(value: Any) -> dt.datetime:
    return _to_datetime(value).replace(tzinfo=JST)


def to_ics(evts: pd.DataFrame, sends: pd.DataFrame | None = None, name: str = "販促カレンダー",
           stamp: dt.datetime | None = None) -> bytes:
    """An RFC 5545 calendar (icalendar library) of events and planned sends, times in ``TZID=Asia/Tokyo``.

    Point days become all-day events; sale windows end at ``ends_at`` + 1 s
    (DTEND is exclusive); each planned send is a 30-minute event.

    Parameters
    ----------
    evts : DataFrame
        :func:`list_events` rows.
    sends : DataFrame, optional
        Planned sends with ``send_id, send_at, label, channel_label, template``
        and optionally ``plan_name, coupon, recipients``.
    stamp : datetime, optional
        DTSTAMP (UTC); now by default.
    """
    from icalendar import Calendar, Event

    stamp = stamp or clock.now_utc().replace(microsecond=0)
    cal = Calendar()
    cal.add("prodid", "-//crm-console//sale-calendar//JA")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", "Asia/Tokyo")
    for ev in evts.itertuples(index=False):
        item = Event()
        item.add("uid", f"{ev.event_id}@crm-console")
        item.add("dtstamp", stamp)
        item.add("summary", ev.name)
        if ev.kind in POINT_KINDS:
            item.add("dtstart", ev.starts_at.date())
            item.add("dtend", (ev.ends_at + pd.Timedelta(seconds=1)).date())
        else:
            item.add("dtstart", _aware(ev.starts_at))
            item.add("dtend", _aware(ev.ends_at + pd.Timedelta(seconds=1)))
        lines = [f"種類: {KIND_LABELS.get(ev.kind, ev.kind)}", f"状態: {STATUS_LABELS.get(ev.status, ev.status)}"]
        if not is_missing(ev.entry_starts_at) and ev.kind not in POINT_KINDS:
            lines.append(f"エントリー開始: {format_datetime(ev.entry_starts_at)}")
        if ev.source:
            lines.append(f"出典: {ev.source}")
        item.add("description", "\n".join(lines))
        item.add("categories", [KIND_LABELS.get(ev.kind, ev.kind)])
        item.add("transp", "TRANSPARENT")
        cal.add_component(item)
    if sends is not None:
        for s in sends.itertuples(index=False):
            item = Event()
            item.add("uid", f"send-{s.send_id}@crm-console")
            item.add("dtstamp", stamp)
            item.add("summary", f"【{s.channel_label}】{s.label}")
            item.add("dtstart", _aware(s.send_at))
            item.add("dtend", _aware(s.send_at + pd.Timedelta(minutes=30)))
            lines = [f"テンプレート: {s.template}"]
            for attr, label in (("plan_name", "キャンペーン"), ("segment_text", "対象"), ("coupon", "クーポン")):
                value = getattr(s, attr, "")
                if value and not is_missing(value):
                    lines.append(f"{label}: {value}")
            recipients = getattr(s, "recipients", None)
            if recipients is not None and not is_missing(recipients):
                lines.append(f"配信数（予定）: {int(recipients):,}通")
            item.add("description", "\n".join(lines))
            item.add("categories", ["配信予定", s.channel_label])
            cal.add_component(item)
    cal.add_missing_timezones()
    return cal.to_ical()
