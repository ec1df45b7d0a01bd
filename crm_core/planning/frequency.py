"""How often customers hear from the shop: the weekly limit, per-send recipient counts and conflicts, export rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.events import calendar as cal
from crm_core.planning.planner import (
    CHANNELS,
    DEFAULT_MAX_PER_WEEK,
    MAX_PER_WEEK_SETTING,
    WINDOW,
    audience_condition,
    in_recommended_slot,
    model_ready,
    planned_sends,
    segment_text,
    template_labels,
)

# --------------------------------------------------------------------------
# Recipient counts and frequency conflicts
# --------------------------------------------------------------------------


def max_per_week(store: Store) -> int:
    """The frequency limit N (messages per customer in any 7 days) from the settings."""
    value = store.get_setting(MAX_PER_WEEK_SETTING, DEFAULT_MAX_PER_WEEK)
    return int(value) if isinstance(value, int | float) and value >= 1 else DEFAULT_MAX_PER_WEEK


def set_max_per_week(store: Store, n: int) -> int:
    """Store the frequency limit N (1–50)."""
    if not isinstance(n, int | float) or not 1 <= int(n) <= 50:
        raise InputError("1週間（7日間）の上限は1〜50通で指定してください。", f"bad limit {n!r}")
    store.set_setting(MAX_PER_WEEK_SETTING, int(n))
    return int(n)


@dataclass
class FrequencyReport:
    """What :func:`send_counts` found.

    Attributes
    ----------
    sends : DataFrame
        Per send, in time order: ``send_id, send_at, channel, audience`` (segment ∩
        channel reach), ``over_limit`` (customers for whom this send would be more than
        N messages in the 7 days ending with it), ``excluded`` (of those, left out
        because the send excludes conflicts), ``recipients`` (``audience - excluded``),
        ``problem`` (a Japanese reason when the audience could not be read, e.g. a
        deleted saved segment; the send then counts 0).
    weeks : DataFrame
        ``week_start`` (Monday), ``customers`` (distinct customers over the limit
        in a send of that week), ``sends`` (sends with such customers).
    customers : int
        Distinct customers over the limit anywhere.
    limit : int
        N.
    model_ready : bool
        False when there is no customer model (all counts are then 0).
    """

    sends: pd.DataFrame
    weeks: pd.DataFrame
    customers: int
    limit: int
    model_ready: bool = True


def send_counts(store: Store, sends: pd.DataFrame, limit: int | None = None) -> FrequencyReport:
    """Recipient counts of planned sends, with the frequency conflicts between them.

    Sends are processed in time order (ties by ``send_id``).  A customer is
    over the limit at a send when, counting this send, they would receive
    more than ``limit`` messages in the 7 days ending with it (the window is
    ``(send_at - 7 days, send_at]``, over every channel).  A send with
    ``exclude_conflicts`` leaves those customers out, so they do not count for
    later windows either.

    How: one scan of ``customer_model`` gives, per customer, the pattern of
    sends they are in (a string of 0/1, one character per send) and DuckDB
    counts the customers per pattern.  Customers with the same pattern receive
    exactly the same messages, so the sequential rule above runs once per
    distinct pattern (a few hundred at most) in Python, weighted by its count.

    Parameters
    ----------
    sends : DataFrame
        ``send_id, send_at, channel, segment`` and optionally ``exclude_conflicts``.
    limit : int, optional
        N; the stored setting (:func:`max_per_week`) by default.
    """
    limit = max_per_week(store) if limit is None else int(limit)
    cols = ["send_id", "send_at", "channel", "audience", "over_limit", "excluded", "recipients", "problem"]
    week_cols = ["week_start", "customers", "sends"]
    if sends is None or sends.empty:
        return FrequencyReport(pd.DataFrame(columns=cols), pd.DataFrame(columns=week_cols), 0, limit, model_ready(store))
    order = (sends.assign(at_=pd.to_datetime(sends.send_at)).sort_values(["at_", "send_id"], kind="stable")
             .reset_index(drop=True))
    if not model_ready(store):
        out = order[["send_id", "send_at", "channel"]].assign(audience=0, over_limit=0, excluded=0, recipients=0, problem="")
        return FrequencyReport(out, pd.DataFrame(columns=week_cols), 0, limit, False)

    times = [pd.Timestamp(t).to_pydatetime() for t in order.at_]
    excludes = [False if f is None or pd.isna(f) else bool(f) for f in order.get("exclude_conflicts", [False] * len(order))]
    problems = [""] * len(order)
    bits, params = [], {}
    for k, s in enumerate(order.itertuples(index=False)):
        try:
            cond, p = audience_condition(store, getattr(s, "segment", None), s.channel, prefix=f"s{k}_")
        except InputError as exc:  # e.g. a deleted saved segment: this send reaches nobody, say why
            problems[k] = exc.message
            cond, p = "FALSE", {}
        bits.append(f"CASE WHEN coalesce({cond}, FALSE) THEN '1' ELSE '0' END")
        params.update(p)
    sql = (f"SELECT pattern, count(*) AS n FROM (SELECT concat({', '.join(bits)}) AS pattern "  # noqa: S608 - fixed fragments, values bound
           "FROM customer_model AS cm) GROUP BY pattern")
    patterns = store.execute(sql, params).fetchall()

    n_sends = len(order)
    audience, over, excluded = [0] * n_sends, [0] * n_sends, [0] * n_sends
    week_customers: dict[dt.date, int] = {}
    week_sends: dict[dt.date, set[int]] = {}
    total = 0
    for pattern, count in patterns:
        members = [k for k in range(n_sends) if pattern[k] == "1"]
        received: list[dt.datetime] = []
        over_here: list[int] = []
        for k in members:
            at = times[k]
            n = 1 + sum(1 for r in received if at - WINDOW < r <= at)
            audience[k] += count
            if n > limit:
                over[k] += count
                over_here.append(k)
                if excludes[k]:
                    excluded[k] += count
                    continue
            received.append(at)
        if over_here:
            total += count
            for week in {(times[k] - dt.timedelta(days=times[k].weekday())).date() for k in over_here}:
                week_customers[week] = week_customers.get(week, 0) + count
            for k in over_here:
                week_sends.setdefault((times[k] - dt.timedelta(days=times[k].weekday())).date(), set()).add(k)
    out = pd.DataFrame({
        "send_id": order.send_id, "send_at": order.at_, "channel": order.channel, "audience": audience,
        "over_limit": over, "excluded": excluded, "recipients": [a - e for a, e in zip(audience, excluded)],
        "problem": problems,
    }, columns=cols)
    weeks = pd.DataFrame(
        [{"week_start": pd.Timestamp(w), "customers": c, "sends": len(week_sends[w])} for w, c in sorted(week_customers.items())],
        columns=week_cols,
    )
    return FrequencyReport(out, weeks, total, limit, True)


def with_counts(sends: pd.DataFrame, report: FrequencyReport) -> pd.DataFrame:
    """``sends`` joined with the counts of :func:`send_counts` (``audience, over_limit, excluded, recipients``)."""
    counts = report.sends[["send_id", "audience", "over_limit", "excluded", "recipients", "problem"]]
    return sends.merge(counts, on="send_id", how="left")


def sends_for_export(store: Store, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Planned sends of a range with their recipient counts and audience text (for ICS and CSV)."""
    sends = planned_sends(store, start, end)
    if sends.empty:
        return sends.assign(recipients=pd.Series(dtype="Int64"), segment_text=pd.Series(dtype=str))
    # counts depend on earlier sends (frequency window): count from a week before the range
    history = planned_sends(store, start - WINDOW, end)
    report = send_counts(store, history)
    out = with_counts(sends, report)
    out["segment_text"] = [segment_text(s, c, store) for s, c in zip(out.segment, out.channel)]
    if not report.model_ready:
        out["recipients"] = pd.NA
    return out


def plan_table(sends: pd.DataFrame, store: Store | None = None) -> pd.DataFrame:
    """Planned sends as a Japanese table (page and CSV export).

    ``sends`` is :func:`planned_sends` output, optionally with the count columns of :func:`with_counts`.
    """
    def num(col: str) -> Iterable[Any]:
        return sends[col] if col in sends.columns else [None] * len(sends)

    labels = template_labels(store)

    return pd.DataFrame({
        "キャンペーン": sends.get("plan_name", pd.Series([""] * len(sends))),
        "配信": sends.label,
        "配信日時": [cal.format_datetime(t) for t in sends.send_at],
        "推奨時間帯": ["○" if in_recommended_slot(t) else "開始に合わせて" if ph == "start" else "時間帯外"
                   for t, ph in zip(sends.send_at, sends.get("phase", pd.Series([""] * len(sends))))],
        "チャネル": sends.channel.map(CHANNELS).fillna(sends.channel),
        "テンプレート": [labels.get(t, t) for t in sends.template],
        "対象": [segment_text(s, c, store) for s, c in zip(sends.segment, sends.channel)],
        "クーポン": sends.coupon.fillna(""),
        "対象者数": [None if v is None or pd.isna(v) else int(v) for v in num("audience")],
        "頻度上限超え": [None if v is None or pd.isna(v) else int(v) for v in num("over_limit")],
        "除外": [None if v is None or pd.isna(v) else int(v) for v in num("excluded")],
        "配信数": [None if v is None or pd.isna(v) else int(v) for v in num("recipients")],
    })
