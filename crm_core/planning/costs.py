"""Message costs and monthly load per channel: LINE plans, R-Mail, Shopify Email (FACTS.md §1, §3, §5).

LINE Official Account plans (Japan, tax excluded; unchanged since 2023-06-01):

=====================  ========  ===============  =======================================
plan                   fee/month free messages    beyond the free messages
=====================  ========  ===============  =======================================
コミュニケーションプラン   ¥0       200              cannot send (the quota is a hard limit)
ライトプラン              ¥5,000   5,000            cannot send
スタンダードプラン         ¥15,000  30,000           ¥3.0 each for the first 50,000 extra,
                                                    ¥2.8 each for extra 50,001–100,000;
                                                    beyond 130,000 a month: unconfirmed
                                                    (the user enters a rate, default ¥2.8)
=====================  ========  ===============  =======================================

Counting: recipients × sends (several bubbles in one send count once;
blocked friends are not counted).  R-Mail: ¥1 per mail.  Shopify Email:
10,000 free e-mails a month, then $1 per 1,000 (charged per e-mail,
$0.001 each).  Own e-mail (SMTP) is not priced here.

Money is computed with :class:`decimal.Decimal` (¥2.8 × 50,000 is exactly ¥140,000).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import altair as alt
import pandas as pd

from crm_core.audience import reach
from crm_core.db import Store
from crm_core.errors import InputError


@dataclass(frozen=True)
class LinePlan:
    """One LINE Official Account plan.

    ``tiers`` are ``(extra messages in the tier, yen per message)`` in order;
    ``can_exceed`` False means messages beyond ``free_messages`` cannot be sent.
    """

    key: str
    name: str
    monthly_fee: int
    free_messages: int
    can_exceed: bool
    tiers: tuple[tuple[int, Decimal], ...] = ()


LINE_PLANS: dict[str, LinePlan] = {
    "communication": LinePlan("communication", "コミュニケーションプラン", 0, 200, False),
    "light": LinePlan("light", "ライトプラン", 5_000, 5_000, False),
    "standard": LinePlan("standard", "スタンダードプラン", 15_000, 30_000, True,
                         ((50_000, Decimal("3.0")), (50_000, Decimal("2.8")))),
}
LINE_PLAN_SETTING = "line_plan"
"""Settings key of the chosen LINE plan (a key of :data:`LINE_PLANS`)."""
LINE_BEYOND_RATE_SETTING = "line_beyond_rate"
"""Settings key of the yen rate beyond the confirmed Standard tiers (unconfirmed; user-entered)."""
DEFAULT_LINE_PLAN = "light"
DEFAULT_BEYOND_RATE = Decimal("2.8")
USD_JPY_SETTING = "usd_jpy"
DEFAULT_USD_JPY = Decimal("150")
RMAIL_YEN = Decimal("1")
SHOPIFY_FREE = 10_000
SHOPIFY_USD_PER_1000 = Decimal("1")


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _yen(value: Decimal) -> str:
    return f"¥{int(value.quantize(Decimal('1'), ROUND_HALF_UP)):,}"


@dataclass
class LineCost:
    """A month of LINE messages against a plan.

    ``sendable`` messages go out; ``blocked`` ones cannot (plans without
    extra messages); ``extra`` are paid messages beyond the free ones, of
    which ``unconfirmed`` lie beyond the confirmed tiers and are priced at
    the user's rate.  Amounts are yen, tax excluded.
    """

    plan: LinePlan
    messages: int
    sendable: int
    blocked: int
    extra: int
    unconfirmed: int
    overage_cost: Decimal
    total_cost: Decimal
    warnings: list[str] = field(default_factory=list)


def line_plan(key: str) -> LinePlan:
    """A plan by key, or an :class:`InputError`."""
    if key not in LINE_PLANS:
        raise InputError("LINEのプランは「コミュニケーション」「ライト」「スタンダード」から選んでください。", f"unknown plan {key!r}")
    return LINE_PLANS[key]


def line_cost(messages: int, plan: LinePlan | str, beyond_rate: Decimal | float | None = DEFAULT_BEYOND_RATE) -> LineCost:
    """What ``messages`` LINE messages in one month cost on ``plan`` (FACTS.md §3).

    Parameters
    ----------
    messages : int
        Recipients × sends in the month.
    plan : LinePlan or key
        The plan.
    beyond_rate : Decimal, optional
        Yen per message beyond the confirmed Standard tiers (130,000 a month);
        unconfirmed, so the user sets it.  ``None`` leaves those messages unpriced.
    """
    plan = line_plan(plan) if isinstance(plan, str) else plan
    messages = max(int(messages), 0)
    free = plan.free_messages
    warnings: list[str] = []
    if not plan.can_exceed:
        sendable = min(messages, free)
        blocked = messages - sendable
        if blocked:
            warnings.append(
                f"{plan.name}は月{free:,}通までで、追加メッセージは送れません。{blocked:,}通が送信できません"
                "（スタンダードプランへの変更か、配信の絞り込みが必要です）。"
            )
        fee = Decimal(plan.monthly_fee)
        return LineCost(plan, messages, sendable, blocked, 0, 0, Decimal(0), fee, warnings)
    extra = max(messages - free, 0)
    left = extra
    cost = Decimal(0)
    for size, rate in plan.tiers:
        used = min(left, size)
        cost += used * rate
        left -= used
    unconfirmed = left
    if unconfirmed:
        if beyond_rate is None:
            warnings.append(f"月{free + sum(s for s, _ in plan.tiers):,}通を超える{unconfirmed:,}通の単価は未確認のため、費用に含めていません。")
        else:
            cost += unconfirmed * _dec(beyond_rate)
            warnings.append(
                f"月{free + sum(s for s, _ in plan.tiers):,}通を超える{unconfirmed:,}通は、未確認の単価 ¥{_dec(beyond_rate)} で概算しています。"
            )
    if extra:
        warnings.insert(0, f"{plan.name}の無料メッセージ{free:,}通を{extra:,}通超えます。追加料金 {_yen(cost)}（税抜）。")
    return LineCost(plan, messages, messages, 0, extra, unconfirmed, cost, Decimal(plan.monthly_fee) + cost, warnings)


def rmail_cost(mails: int) -> Decimal:
    """R-Mail: ¥1 per mail (the free weekly send some shops get is not deducted)."""
    return max(int(mails), 0) * RMAIL_YEN


def shopify_email_cost_usd(emails: int) -> Decimal:
    """Shopify Email: 10,000 free a month, then $1 per 1,000 ($0.001 each)."""
    extra = max(int(emails) - SHOPIFY_FREE, 0)
    return extra * SHOPIFY_USD_PER_1000 / 1000


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


def line_plan_setting(store: Store) -> str:
    """The chosen LINE plan's key (:data:`LINE_PLAN_SETTING`; the light plan by default)."""
    key = store.get_setting(LINE_PLAN_SETTING, DEFAULT_LINE_PLAN)
    return key if key in LINE_PLANS else DEFAULT_LINE_PLAN


def set_line_plan(store: Store, key: str) -> None:
    """Store the chosen LINE plan."""
    store.set_setting(LINE_PLAN_SETTING, line_plan(key).key)


def beyond_rate_setting(store: Store) -> Decimal:
    """Yen per LINE message beyond 130,000 a month on the Standard plan (user-set; unconfirmed)."""
    value = store.get_setting(LINE_BEYOND_RATE_SETTING, str(DEFAULT_BEYOND_RATE))
    try:
        return _dec(value)
    except ArithmeticError:
        return DEFAULT_BEYOND_RATE


def set_beyond_rate(store: Store, rate: float | Decimal) -> None:
    """Store the unconfirmed rate beyond the Standard tiers (¥0–¥10)."""
    rate = _dec(rate)
    if not Decimal(0) <= rate <= Decimal(10):
        raise InputError("追加メッセージの単価は¥0〜¥10で入力してください。", f"bad rate {rate}")
    store.set_setting(LINE_BEYOND_RATE_SETTING, str(rate))


def usd_jpy_setting(store: Store) -> Decimal:
    """Yen per US dollar used to show Shopify Email charges in yen (user-set)."""
    try:
        return _dec(store.get_setting(USD_JPY_SETTING, str(DEFAULT_USD_JPY)))
    except ArithmeticError:
        return DEFAULT_USD_JPY


def uses_shopify_email(store: Store, sends: pd.DataFrame | None = None, shopify_orders: bool | None = None) -> bool:
    """True when Shopify Email matters to this shop: a planned send uses it, or orders came from Shopify.

    The page asks for a dollar rate only then (a Rakuten-only shop has no dollar charges).  ``shopify_orders``:
    :func:`has_shopify_orders` when the caller keeps it per data version (it reads every order).
    """
    if sends is not None and not sends.empty and "channel" in sends and (sends.channel == "shopify_email").any():
        return True
    if store.has_table("planned_sends") and store.scalar("SELECT count(*) FROM planned_sends WHERE channel = 'shopify_email'"):
        return True
    return has_shopify_orders(store) if shopify_orders is None else shopify_orders


def has_shopify_orders(store: Store) -> bool:
    """True when any order came from Shopify (a scan of every order's source)."""
    return bool(store.has_table("orders") and store.scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE source = 'shopify')"))


def set_usd_jpy(store: Store, rate: float | Decimal) -> None:
    rate = _dec(rate)
    if not Decimal(50) <= rate <= Decimal(500):
        raise InputError("為替レートは1ドル=50〜500円で入力してください。", f"bad usd_jpy {rate}")
    store.set_setting(USD_JPY_SETTING, str(rate))


# --------------------------------------------------------------------------
# Monthly load
# --------------------------------------------------------------------------

CHANNEL_LABELS = reach.labels()
"""``{key: short label}`` of the channel table (:mod:`crm_core.audience.reach`)."""
CHANNEL_COLORS = {"LINE": "#06C755", "R-Mail": "#BF0000", "Shopify Email": "#5E8E3E", "メール": "#3B6FB6"}
LOAD_COLUMNS = ("month", "channel", "sends", "messages", "free", "over", "blocked", "cost_yen", "cost_text", "warning")


def monthly_load(sends: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
    """Messages per JST month and channel.

    Parameters
    ----------
    sends : DataFrame
        ``send_at, channel, recipients`` (one row per planned send).
    start, end : date, optional
        When given, every month of the range appears (months without sends as
        a LINE row with 0 messages) and sends outside it are left out.

    Returns
    -------
    DataFrame
        ``month`` (first day, timestamp), ``channel``, ``sends``, ``messages``
        (sum of recipients).
    """
    cols = ["month", "channel", "sends", "messages"]
    out = pd.DataFrame(columns=cols)
    if sends is not None and not sends.empty:
        at = pd.to_datetime(sends.send_at)
        keep = pd.Series(True, index=sends.index)
        if start is not None:
            keep &= at >= pd.Timestamp(start)
        if end is not None:
            keep &= at < pd.Timestamp(end) + pd.Timedelta(days=1)
        df = sends[keep].assign(month=at[keep].dt.to_period("M").dt.to_timestamp(),
                                messages=pd.to_numeric(sends.recipients[keep], errors="coerce").fillna(0).astype(int))
        if not df.empty:
            out = df.groupby(["month", "channel"], as_index=False).agg(sends=("channel", "size"), messages=("messages", "sum"))
    if start is not None and end is not None:
        months = pd.period_range(pd.Timestamp(start), pd.Timestamp(end), freq="M").to_timestamp()
        empty = [m for m in months if m not in set(out.month)]
        if empty:
            fill = pd.DataFrame({"month": empty, "channel": "line", "sends": 0, "messages": 0})
            out = fill if out.empty else pd.concat([out, fill], ignore_index=True)
    if out.empty:
        return pd.DataFrame(columns=cols)
    out["sends"] = out["sends"].astype(int)
    out["messages"] = out["messages"].astype(int)
    return out.sort_values(["month", "channel"]).reset_index(drop=True)[cols]


def monthly_costs(load: pd.DataFrame, plan: LinePlan | str, beyond_rate: Decimal | float | None = DEFAULT_BEYOND_RATE,
                  usd_jpy: Decimal | float = DEFAULT_USD_JPY) -> pd.DataFrame:
    """Cost and limits per month and channel.

    Returns
    -------
    DataFrame
        :data:`LOAD_COLUMNS`: ``free`` is the channel's free messages (LINE: the
        plan's, Shopify Email 10,000; NaN where not applicable), ``over``
        messages beyond them, ``blocked`` LINE messages the plan cannot send,
        ``cost_yen`` the variable cost (LINE extra messages, R-Mail, Shopify in
        yen at ``usd_jpy``; the LINE monthly fee is not included), ``cost_text``
        a Japanese amount, ``warning`` a Japanese sentence or "".
    """
    plan = line_plan(plan) if isinstance(plan, str) else plan
    rows = []
    for r in (load.itertuples(index=False) if load is not None else []):
        free: float = float("nan")
        over = blocked = 0
        warning = ""
        month = f"{r.month.year}年{r.month.month}月"
        cost_key = reach.CHANNELS[r.channel].cost_key if r.channel in reach.CHANNELS else "none"
        if cost_key == "line":
            c = line_cost(r.messages, plan, beyond_rate)
            free, over, blocked = plan.free_messages, max(r.messages - plan.free_messages, 0), c.blocked
            cost = c.overage_cost
            text = _yen(cost) + "（追加分・税抜）" if c.extra else "¥0（無料枠内）" if not blocked else "送信不可あり"
            warning = " ".join(c.warnings)
        elif cost_key == "rmail":
            cost = rmail_cost(r.messages)
            text = _yen(cost)
        elif cost_key == "shopify_email":
            usd = shopify_email_cost_usd(r.messages)
            free, over = SHOPIFY_FREE, max(r.messages - SHOPIFY_FREE, 0)
            cost = usd * _dec(usd_jpy)
            text = f"${usd:,.2f}（約{_yen(cost)}）" if usd else "$0（無料枠内）"
            if over:
                warning = f"Shopify Emailの無料枠10,000通を{over:,}通超えます。追加料金 ${usd:,.2f}（約{_yen(cost)}、1ドル={_dec(usd_jpy)}円で換算）。"
        else:
            cost = Decimal(0)
            text = "—（自社配信）"
        rows.append({"month": r.month, "channel": r.channel, "sends": int(r.sends), "messages": int(r.messages),
                     "free": free, "over": int(over), "blocked": int(blocked), "cost_yen": float(cost),
                     "cost_text": text, "warning": (f"{month}: {warning}" if warning else "")})
    return pd.DataFrame(rows, columns=list(LOAD_COLUMNS))


def load_table(costs: pd.DataFrame) -> pd.DataFrame:
    """:func:`monthly_costs` as a Japanese table."""
    return pd.DataFrame({
        "月": [f"{m.year}年{m.month}月" for m in costs.month],
        "チャネル": costs.channel.map(CHANNEL_LABELS).fillna(costs.channel),
        "配信回数": costs.sends,
        "メッセージ数": costs.messages,
        "無料枠": [None if pd.isna(f) else int(f) for f in costs.free],
        "超過": costs.over,
        "送信不可": costs.blocked,
        "費用": costs.cost_text,
    })


def load_chart(costs: pd.DataFrame, plan: LinePlan | str) -> alt.LayerChart | None:
    """Monthly messages per channel (bars side by side) with the LINE plan's free limit drawn in.

    The LINE limit is a red rule labelled with the plan; Shopify Email's 10,000
    free e-mails a dashed rule when Shopify Email is planned.  Returns None
    without planned messages.
    """
    plan = line_plan(plan) if isinstance(plan, str) else plan
    if costs is None or costs.empty or int(costs.messages.sum()) == 0:
        return None
    df = costs.assign(
        チャネル=costs.channel.map(CHANNEL_LABELS).fillna(costs.channel),
        月=[f"{m.year}年{m.month}月" for m in costs.month],
        メッセージ数=[f"{n:,}通" for n in costs.messages],
        費用=costs.cost_text,
        警告=costs.warning,
    )
    months = list(dict.fromkeys(df.月))
    domain = [c for c in CHANNEL_COLORS if c in set(df.チャネル)]
    x = alt.X("月:N", title=None, sort=months, axis=alt.Axis(labelAngle=0))
    bars = alt.Chart(df).mark_bar().encode(
        x=x, xOffset=alt.XOffset("チャネル:N", sort=domain),
        y=alt.Y("messages:Q", title="メッセージ数（通）", axis=alt.Axis(format=",d")),
        color=alt.Color("チャネル:N", title="チャネル", scale=alt.Scale(domain=domain, range=[CHANNEL_COLORS[c] for c in domain]),
                        legend=alt.Legend(orient="bottom")),
        tooltip=["月:N", "チャネル:N", "メッセージ数:N", "費用:N", "警告:N"],
    )
    limits = [{"limit": plan.free_messages, "text": f"LINE {plan.name} 無料枠 {plan.free_messages:,}通"
                                                   + ("（これ以上は送信不可）" if not plan.can_exceed else ""), "dash": False}]
    if "shopify_email" in set(costs.channel):
        limits.append({"limit": SHOPIFY_FREE, "text": f"Shopify Email 無料枠 {SHOPIFY_FREE:,}通", "dash": True})
    lim = pd.DataFrame(limits)
    rule = alt.Chart(lim).mark_rule(color="#C8463D", strokeWidth=2).encode(
        y="limit:Q", strokeDash=alt.condition("datum.dash", alt.value([6, 4]), alt.value([1, 0])), tooltip=["text:N"])
    text = alt.Chart(lim).mark_text(align="left", baseline="bottom", dx=4, dy=-2, color="#C8463D", fontSize=11).encode(
        y="limit:Q", x=alt.value(0), text="text:N")
    return alt.layer(bars, rule, text).properties(height=420, width="container", title="月別の配信メッセージ数とLINEプランの無料枠")


def cost_summary(costs: pd.DataFrame, plan: LinePlan | str) -> dict[str, Any]:
    """Totals for the page: variable cost, LINE monthly fee per month, months over the limit, warnings."""
    plan = line_plan(plan) if isinstance(plan, str) else plan
    months = costs.month.nunique() if not costs.empty else 0
    return {
        "variable_cost_yen": float(costs.cost_yen.sum()) if not costs.empty else 0.0,
        "line_fee_per_month": plan.monthly_fee,
        "months": int(months),
        "blocked": int(costs.blocked.sum()) if not costs.empty else 0,
        "warnings": [w for w in costs.warning if w] if not costs.empty else [],
    }


def month_label(value: dt.date | pd.Timestamp) -> str:
    """2026年6月."""
    return f"{value.year}年{value.month}月"
