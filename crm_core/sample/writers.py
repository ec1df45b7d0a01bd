"""CSV rendering of a simulated chunk in the exact shape of each export (Rakuten cp932, Shopify, contacts, products)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from crm_core.sample.catalog import (
    _COMMENTS,
    _DELIVERY_SLOTS,
    _DEVICES,
    _NOSHI,
    _OPTIONS,
    _RAKUTEN_PAY,
    _RAKUTEN_STATUS,
    _SHOPIFY_PAY,
    _WRITE_BATCH,
    BRAND,
    FREE_SHIPPING_FROM,
    RAKUTEN_COLUMNS,
    RAKUTEN_PRODUCTS,
    SHIPPING_FEE,
    SHOP_ID,
    SHOPIFY_COLUMNS,
    SHOPIFY_PRODUCTS,
)
from crm_core.sample.simulate import _Col, _Context, _Sim
from crm_core.sample.timing import sale_calendar

# ---------------------------------------------------------------------------
# CSV rendering
# ---------------------------------------------------------------------------


class _Row:
    """A compiled CSV row: constant text and ``%s`` slots for the variable columns.

    ``spec`` maps a column to the key of its values; other columns get their
    constant from ``consts`` (default empty).  ``quote(column)`` says whether
    the field is wrapped in double quotes.  Values never contain a double
    quote (they are generated), so no escaping is needed.
    """

    def __init__(self, columns: Sequence[str], spec: dict[str, str], consts: dict[str, str],
                 quote: Callable[[str], bool]) -> None:
        parts: list[str] = []
        self.keys: list[str] = []
        for col in columns:
            q = '"' if quote(col) else ""
            if col in spec:
                parts.append(q + "%s" + q)
                self.keys.append(spec[col])
            else:
                parts.append(q + consts.get(col, "").replace("%", "%%") + q)
        self.fmt = ",".join(parts)

    def render(self, values: dict[str, list[str]], suffix: str = "") -> list[str]:
        """One text row per element of the value lists."""
        fmt = self.fmt + suffix.replace("%", "%%")
        return [fmt % t for t in zip(*(values[k] for k in self.keys))]


def _strs(a: np.ndarray) -> list[str]:
    return a.astype(str).tolist()


def _datetimes(ctx: _Context, seconds: np.ndarray, slash: np.ndarray | None = None,
               empty: np.ndarray | None = None) -> list[str]:
    """``yyyy-MM-dd HH:mm:ss`` (``yyyy/MM/dd`` where ``slash``), '' where ``empty``."""
    base = np.datetime64(ctx.start, "s")
    text = np.datetime_as_string(base + seconds.astype("timedelta64[s]"), unit="s")
    text = np.strings.replace(text, "T", " ")
    if slash is not None and slash.any():
        text = np.where(slash, np.strings.replace(text, "-", "/"), text)
    if empty is not None:
        text = np.where(empty, "", text)
    return text.tolist()


def _write_rakuten(out: IO[bytes], rng: np.random.Generator, ctx: _Context, sim: _Sim) -> None:
    """Write the chunk's rows of ``rakuten_orders.csv``: cp932, every field quoted, CRLF."""
    cat, ppl, clock = ctx.cats["rakuten"], sim.people, ctx.clocks["rakuten"]
    n_o, n_l = len(sim.o_cust), len(sim.l_order)
    if n_o == 0:
        return
    end_s = clock.hours * 3600
    c = sim.o_cust
    o_h = np.minimum(sim.o_ts // 3600, clock.hours - 1)
    in_ss = clock.super_sale[o_h]
    in_big = clock.big_event[o_h]
    sub = sim.o_sub == 1

    # Amounts (order level)
    line_amt = sim.l_price * sim.l_qty
    items = np.bincount(sim.l_order, weights=line_amt, minlength=n_o).astype(np.int64)
    rate = np.where(cat.supp[sim.l_prod], 8, 10)
    tax_l = np.bincount(sim.l_order, weights=line_amt * rate / (100 + rate), minlength=n_o)
    ship = np.where(items >= FREE_SHIPPING_FROM, 0, SHIPPING_FEE)
    tax = (np.floor(tax_l) + ship * 10 // 110).astype(np.int64)
    total = items + ship
    coupon_p = np.where(in_ss, 0.2, np.where(in_big, 0.14, 0.07))
    has_coupon = (rng.random(n_o) < coupon_p) & ~sub
    kind = rng.choice(5, size=n_o, p=[0.3, 0.25, 0.1, 0.25, 0.1])
    fixed = np.array([300, 500, 1000, 0, 0])[kind]
    minimum = np.array([3000, 5000, 10000, 0, 0])[kind]
    pct = np.array([0, 0, 0, 10, 15])[kind]
    amount = np.where(pct > 0, items * pct // 100, np.where(items >= minimum, fixed, items * 10 // 100))
    coupon = np.where(has_coupon, np.minimum(amount, items - 1), 0)
    by_rakuten = has_coupon & (rng.random(n_o) < 0.25)
    coupon_rakuten = np.where(by_rakuten, np.minimum(coupon, rng.choice([100, 200, 300, 500], n_o)), 0)
    coupon_shop = coupon - coupon_rakuten
    has_points = rng.random(n_o) < np.where(in_ss, 0.3, 0.19)
    pts = np.minimum(np.round(rng.lognormal(np.log(220), 1.1, n_o)).astype(np.int64) + 1, total - coupon)
    points = np.where(has_points, np.maximum(pts, 0), 0)
    billed = total - points - coupon

    # Status and processing timestamps
    pay = ppl.pay[c]
    risky = np.isin(pay, [2, 4, 5])  # 代金引換, 銀行振込, コンビニ前払決済
    cancelled = rng.random(n_o) < np.where(sub, 0.012, np.where(risky, 0.07, 0.018))
    confirm = sim.o_ts + rng.integers(1800, 20 * 3600, n_o)
    instruct = confirm + rng.integers(3600, 30 * 3600, n_o)
    shipped = instruct + rng.integers(3600, 30 * 3600, n_o)
    status = np.where(cancelled, 2, np.where(shipped < end_s, 0, 1))
    slash = rng.random(n_o) < 0.06
    when = _datetimes(ctx, sim.o_ts, slash)
    day_s = (sim.o_ts // 86400).astype(np.int64)

    # 注文番号: shop-yyyymmdd-seq, seq counted per day over all chunks.
    counts = np.bincount(day_s, minlength=ctx.n_days + 1)
    first_of_day = np.cumsum(counts) - counts
    seq = ctx.day_seq[day_s] + (np.arange(n_o) - first_of_day[day_s])
    ctx.day_seq += counts
    ymd = np.datetime_as_string(np.datetime64(ctx.start, "D") + day_s, unit="D")
    ymd = np.strings.replace(ymd, "-", "")
    order_no = [f"{SHOP_ID}-{d}-{s:07d}" for d, s in zip(ymd.tolist(), seq.tolist())]

    # Gift orders: half of them ship to someone else (a recipient from the chunk's address book).
    has_gift = np.bincount(sim.l_order, weights=cat.gift[sim.l_prod], minlength=n_o) > 0
    gift_ship = has_gift & (rng.random(n_o) < 0.5)
    ship_to = np.where(gift_ship, rng.integers(0, ppl.n, n_o), c)

    # Delivery method, slots, comments
    single_mail = np.bincount(sim.l_order, weights=~cat.mailable[sim.l_prod], minlength=n_o) == 0
    mail_ok = single_mail & (np.bincount(sim.l_order, weights=sim.l_qty, minlength=n_o) <= 2)
    mail = mail_ok & (rng.random(n_o) < 0.7)
    slot_pick = rng.integers(1, len(_DELIVERY_SLOTS) + 1, n_o)
    slot = np.where((rng.random(n_o) < 0.18) & ~mail, slot_pick, 0)
    wish_day = rng.random(n_o) < 0.08
    wish = _datetimes(ctx, (sim.o_ts // 86400 + rng.integers(3, 8, n_o)) * 86400)
    wish = [w[:10] if f else "" for w, f in zip(wish, wish_day.tolist())]
    cm_pick = rng.integers(1, len(_COMMENTS) + 1, n_o)
    comment = np.where(rng.random(n_o) < 0.015, cm_pick, 0)
    wrap = has_gift & (rng.random(n_o) < 0.6)
    noshi_pick = rng.integers(1, len(_NOSHI) + 1, n_o)
    noshi = np.where(wrap & (rng.random(n_o) < 0.3), noshi_pick, 0)

    # Columns as (values, index per line): the CSV text is materialised batch by batch.
    cust_l = c[sim.l_order]
    ship_l = ship_to[sim.l_order]
    zeros = np.zeros(n_l, dtype=np.int64)

    def per_order(values: Any) -> _Col:
        return pa.array(values), sim.l_order

    def per_line(table: Sequence[str], idx: np.ndarray) -> _Col:
        return pa.array(table), idx

    def const(value: str) -> _Col:
        return pa.array([value]), zeros

    sub_numbers = np.arange(sim.n_subs) + ctx.sub_no
    ctx.sub_no += sim.n_subs
    first_ts = np.full(max(sim.n_subs, 1), np.iinfo(np.int64).max)
    if sim.n_subs:
        np.minimum.at(first_ts, sim.o_sub_id[sub], sim.o_ts[sub])
    app_day = np.datetime_as_string(np.datetime64(ctx.start, "D") + first_ts[: sim.n_subs] // 86400, unit="D")
    app_day = np.strings.replace(app_day, "-", "").tolist()
    sub_no_txt = [""] + [f"{SHOP_ID}-{d}-{s:08d}" for d, s in zip(app_day, sub_numbers.tolist())]
    ship_ids = np.arange(n_o) + ctx.ship_id
    ctx.ship_id += n_o
    line_ids = np.arange(n_l) + ctx.line_id
    ctx.line_id += n_l

    when_a = per_order(when)
    when_base = when_a[0]
    confirm_a = per_order(_datetimes(ctx, confirm, slash, confirm >= end_s))
    items_a, ship_a, tax_a, total_a = per_order(items), per_order(ship), per_order(tax), per_order(total)
    people = {
        "郵便番号1": ppl.zip1, "郵便番号2": ppl.zip2, "住所都道府県": ctx.pref_name[ppl.pref].tolist(),
        "住所郡市区": ctx.city_name[ppl.city].tolist(), "住所それ以降の住所": ppl.street,
        "姓": ctx.sur[ppl.sur].tolist(), "名": ctx.given[ppl.given].tolist(),
        "姓カナ": ctx.sur_kana[ppl.sur].tolist(), "名カナ": ctx.given_kana[ppl.given].tolist(),
        "電話番号1": [t[0] for t in ppl.tel], "電話番号2": [t[1] for t in ppl.tel], "電話番号3": [t[2] for t in ppl.tel],
    }
    cols: dict[str, _Col] = {}
    for key, values in people.items():
        arr = pa.array(values)
        cols["注文者" + key] = (arr, cust_l)
        cols["送付先" + key] = (arr, ship_l)
    pay_names = [p for p, _ in _RAKUTEN_PAY]
    cycle_txt = ("", "お届けサイクル:1ヶ月ごと", "お届けサイクル:2ヶ月ごと")
    l_cycle = (np.where(sub[sim.l_order], sim.sub_cycle[np.maximum(sim.o_sub_id, 0)][sim.l_order], 0)
               if sim.n_subs else np.zeros(n_l, dtype=np.int64))
    option_table = list(cycle_txt) + ["カラー:" + o for opts in _OPTIONS.values() for o in opts]
    option_base = {fam: 3 + sum(len(v) for v in list(_OPTIONS.values())[:i]) for i, fam in enumerate(_OPTIONS)}
    opt_pick = rng.integers(0, 8, n_l)
    n_opt = np.array([len(o) for o in cat.options])[sim.l_prod]
    base = np.array([option_base.get(p.options, 0) for p in cat.products])[sim.l_prod]
    option_idx = np.where(l_cycle > 0, l_cycle, np.where(n_opt > 0, base + opt_pick % np.maximum(n_opt, 1), 0))
    cols.update({
        "注文番号": per_order(order_no),
        "ステータス": per_line(_RAKUTEN_STATUS, status[sim.l_order]),
        "注文日時": when_a,
        "注文日": (pc.utf8_slice_codeunits(when_base, 0, 10), sim.l_order),
        "注文時間": (pc.utf8_slice_codeunits(when_base, 11, 19), sim.l_order),
        "注文確認日時": confirm_a,
        "注文確定日時": confirm_a,
        "発送指示日時": per_order(_datetimes(ctx, instruct, slash, cancelled | (instruct >= end_s))),
        "発送完了報告日時": per_order(_datetimes(ctx, shipped, slash, cancelled | (shipped >= end_s))),
        "支払方法名": per_line(pay_names, pay[sim.l_order]),
        "クレジットカード支払い方法": per_line(["一括払い"] + [""] * (len(pay_names) - 1), pay[sim.l_order]),
        "配送方法": per_line(["宅配便", "メール便"], mail[sim.l_order].astype(np.int64)),
        "注文種別": per_line(["通常購入", "定期購入"], sub[sim.l_order].astype(np.int64)),
        "送付先一致フラグ": per_line(["1", "0"], gift_ship[sim.l_order].astype(np.int64)),
        "楽天会員フラグ": per_line(["0", "1"], ppl.member[c][sim.l_order].astype(np.int64)),
        "商品合計金額": items_a,
        "消費税合計": tax_a,
        "送料合計": ship_a,
        "請求金額": per_order(billed),
        "合計金額": total_a,
        "ポイント利用額": per_order(points),
        "クーポン利用総額": per_order(coupon),
        "店舗発行クーポン利用額": per_order(coupon_shop),
        "楽天発行クーポン利用額": per_order(coupon_rakuten),
        "注文者メールアドレス": (pa.array(ppl.email), cust_l),
        "注文者性別": per_line(["女", "男"], ppl.gender[c][sim.l_order]),
        "申込番号": per_line(sub_no_txt, sim.o_sub_id[sim.l_order] + 1),
        "申込お届け回数": per_order([str(s) if s else "" for s in sim.o_sub_seq.tolist()]),
        "送付先ID": per_order(ship_ids),
        "送付先送料": ship_a,
        "送付先消費税合計": tax_a,
        "送付先商品合計金額": items_a,
        "送付先合計金額": total_a,
        "のし": per_line(("",) + _NOSHI, noshi[sim.l_order]),
        "商品明細ID": (pa.array(line_ids), None),
        "商品ID": per_line([str(10_000_001 + i) for i in range(len(cat.products))], sim.l_prod),
        "商品名": per_line([p.title for p in cat.products], sim.l_prod),
        "商品番号": per_line([p.number for p in cat.products], sim.l_prod),
        "商品管理番号": per_line([p.key for p in cat.products], sim.l_prod),
        "単価": (pa.array(sim.l_price), None),
        "個数": (pa.array(sim.l_qty), None),
        "項目・選択肢": per_line(option_table, option_idx),
        "ポイント倍率": per_line(["1", "5"], (clock.big_event[o_h[sim.l_order]] & (rng.random(n_l) < 0.5))
                           .astype(np.int64)),
        "在庫タイプ": per_line(["1", "2"], (n_opt > 0).astype(np.int64)),
        "ラッピングタイトル1": per_line(["", "ラッピング"], wrap[sim.l_order].astype(np.int64)),
        "ラッピング名1": per_line(["", "ギフトラッピング（無料）"], wrap[sim.l_order].astype(np.int64)),
        "ラッピング料金1": per_line(["", "0"], wrap[sim.l_order].astype(np.int64)),
        "お届け時間帯": per_line(("",) + _DELIVERY_SLOTS, slot[sim.l_order]),
        "お届け日指定": per_order(wish),
        "ギフト配送希望": per_line(["0", "1"], gift_ship[sim.l_order].astype(np.int64)),
        "コメント": per_line(("",) + _COMMENTS, comment[sim.l_order]),
        "利用端末": per_line([d for d, _ in _DEVICES], ppl.device[c][sim.l_order]),
    })
    consts = {
        "複数送付先フラグ": "0", "離島フラグ": "0", "楽天確認中フラグ": "0", "警告表示タイプ": "0",
        "購入履歴修正有無フラグ": "0", "代引料合計": "0", "送付先代引料": "0", "送料込別": "0", "税込別": "0",
        "代引手数料込別": "0", "メールキャリアコード": "0", "あす楽希望フラグ": "0", "医薬品受注フラグ": "0",
        "楽天スーパーDEAL商品受注フラグ": "0",
    }
    sources = [cols[name] if name in cols else const(consts.get(name, "")) for name in RAKUTEN_COLUMNS]
    options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid", eol="\r\n", batch_size=_WRITE_BATCH)
    names = list(RAKUTEN_COLUMNS)
    for lo in range(0, n_l, _WRITE_BATCH):
        hi = min(n_l, lo + _WRITE_BATCH)
        arrays = [base.slice(lo, hi - lo) if idx is None else base.take(pa.array(idx[lo:hi])) for base, idx in sources]
        sink = pa.BufferOutputStream()
        pacsv.write_csv(pa.Table.from_arrays(arrays, names=names), sink, options)
        out.write(sink.getvalue().to_pybytes().decode("utf-8").encode("cp932"))


_SHOPIFY_QUOTED = {
    "Lineitem name", "Billing Name", "Billing Street", "Billing Address1", "Billing Address2", "Billing City",
    "Shipping Name", "Shipping Street", "Shipping Address1", "Shipping Address2", "Shipping City", "Notes",
    "Note Attributes", "Tags", "Payment Method", "Billing Company", "Shipping Company",
}
_SHOPIFY_LINE_COLS = (
    "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem compare at price", "Lineitem sku",
    "Lineitem requires shipping", "Lineitem taxable", "Lineitem fulfillment status", "Vendor", "Lineitem discount",
)


def _shopify_rows(rng: np.random.Generator, ctx: _Context, sim: _Sim) -> str:
    cat, ppl, clock = ctx.cats["shopify"], sim.people, ctx.clocks["shopify"]
    n_o, n_l = len(sim.o_cust), len(sim.l_order)
    if n_o == 0:
        return ""
    end_s = clock.hours * 3600
    c = sim.o_cust
    sub = sim.o_sub == 1
    line_amt = sim.l_price * sim.l_qty
    items = np.bincount(sim.l_order, weights=line_amt, minlength=n_o).astype(np.int64)
    supp_amt = np.bincount(sim.l_order, weights=line_amt * cat.supp[sim.l_prod], minlength=n_o).astype(np.int64)

    # Discount codes
    bf = np.zeros(n_o, dtype=bool)
    anniv = np.zeros(n_o, dtype=bool)
    for e in sale_calendar(ctx.start, ctx.end):
        if e.store != "shopify" or e.kind not in ("black_friday", "anniversary"):
            continue
        s = (e.start - dt.datetime.combine(ctx.start, dt.time())).total_seconds()
        t = (e.end - dt.datetime.combine(ctx.start, dt.time())).total_seconds()
        inside = (sim.o_ts >= s) & (sim.o_ts < t)
        if e.kind == "black_friday":
            bf |= inside
        else:
            anniv |= inside
    u = rng.random(n_o)
    code = np.full(n_o, "", dtype=object)
    pct = np.zeros(n_o, dtype=np.int64)
    fixed = np.zeros(n_o, dtype=np.int64)
    welcome = sim.o_first & ~sub & (u < 0.22)
    line500 = ~sim.o_first & ~sub & (u < 0.05) & (items >= 3000)
    thanks = ~sim.o_first & ~sub & (u >= 0.05) & (u < 0.08)
    bf_code = bf & ~sub & (u < 0.45)
    an_code = anniv & ~sub & (u < 0.35)
    for mask, name, p, f in ((welcome, "WELCOME15", 15, 0), (line500, "LINE500", 0, 500), (thanks, "THANKS10", 10, 0),
                             (an_code, "ANNIV15", 15, 0), (bf_code, "BF20", 20, 0)):
        code[mask], pct[mask], fixed[mask] = name, p, f
    discount = np.where(pct > 0, items * pct // 100, fixed)
    discount = np.minimum(discount, items)
    subtotal = items - discount
    ship = np.where(items >= FREE_SHIPPING_FROM, 0, SHIPPING_FEE)
    total = subtotal + ship
    scale = np.where(items > 0, subtotal / np.maximum(items, 1), 0)
    tax8 = np.floor(supp_amt * scale * 8 / 108).astype(np.int64)
    tax10 = np.floor((items - supp_amt) * scale * 10 / 110 + ship * 10 / 110).astype(np.int64)

    # Status
    pay = ppl.pay[c]
    pay_names = np.array([p for p, _ in _SHOPIFY_PAY], dtype=object)
    deferred = np.isin(pay, [3, 4])  # NP後払い, 銀行振込
    cancelled = rng.random(n_o) < np.where(deferred, 0.07, 0.022)
    # Partial refunds: one unit of the first line item (an item returned), when that is not everything.
    first_unit = np.zeros(n_o, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sim.l_order[1:] != sim.l_order[:-1]])
    first_unit[sim.l_order[starts]] = sim.l_price[starts]
    partial = ~cancelled & (rng.random(n_o) < 0.02) & (first_unit < total)
    recent = sim.o_ts >= end_s - 4 * 86400
    pending = ~cancelled & (pay == 4) & recent
    fin = np.where(cancelled, np.where(deferred, "voided", "refunded"),
                   np.where(partial, "partially_refunded", np.where(pending, "pending", "paid")))
    refunded = np.where(fin == "refunded", total, np.where(partial, first_unit, 0))
    paid_at = sim.o_ts + np.where(pay == 4, rng.integers(3600, 72 * 3600, n_o), rng.integers(0, 30, n_o))
    fulfilled_at = sim.o_ts + rng.integers(12 * 3600, 72 * 3600, n_o)
    fulfilled = ~cancelled & ~pending & (fulfilled_at < end_s)
    cancel_at = sim.o_ts + rng.integers(1800, 48 * 3600, n_o)

    def stamp(sec: np.ndarray, empty: np.ndarray | None = None) -> list[str]:
        text = _datetimes(ctx, sec)
        out = [s + " +0900" for s in text]
        if empty is not None:
            out = [("" if e else s) for s, e in zip(out, empty.tolist())]
        return out

    names = np.arange(n_o) + ctx.shop_no
    ctx.shop_no += n_o
    ids = np.arange(n_o) * 7 + ctx.shop_id + rng.integers(0, 7, n_o)
    ctx.shop_id += n_o * 7
    sur_k = ctx.sur[ppl.sur].tolist()
    giv_k = ctx.given[ppl.given].tolist()
    pref_idx = ppl.pref.tolist()
    pref_code = [f"JP-{p + 1:02d}" for p in pref_idx]
    pref_name = ctx.pref_name[ppl.pref].tolist()
    city = ctx.city_name[ppl.city].tolist()
    zipc = [f"{a}-{b}" for a, b in zip(ppl.zip1, ppl.zip2)]
    phone_local = ["-".join(t) for t in ppl.tel]
    phone_e164 = ["+81" + t[0][1:] + t[1] + t[2] for t in ppl.tel]
    style = ppl.phone_style.tolist()
    bill_phone = [(phone_e164[i] if s == 2 else phone_local[i] if s == 0 else phone_local[i].replace("-", ""))
                  for i, s in enumerate(style)]
    apos_zip = (rng.random(n_o) < 0.35).tolist()
    apos_tel = (rng.random(n_o) < 0.35).tolist()
    has_phone_col = ppl.phone_style[c] == 2
    cl = c.tolist()
    full_name = [sur_k[i] + " " + giv_k[i] for i in cl]
    zip_o = [("'" if a else "") + zipc[i] for i, a in zip(cl, apos_zip)]
    tel_o = [("'" if a and not bill_phone[i].startswith("+") else "") + bill_phone[i] for i, a in zip(cl, apos_tel)]
    source = np.where(sub & (sim.o_sub_seq > 1), "subscription_contract", "web")
    tags = np.where(sub, np.where(sim.o_sub_seq > 1, "Subscription, Subscription Recurring Order",
                                  "Subscription, Subscription First Order"), "")
    fin_l = fin.tolist()
    o_vals: dict[str, list[str]] = {
        "name": [f"#{k}" for k in names.tolist()],
        "email": [ppl.email[i] for i in cl],
        "fin": fin_l,
        "paid_at": stamp(paid_at, (fin == "voided") | pending | (paid_at >= end_s)),
        "ful": np.where(fulfilled, "fulfilled", "unfulfilled").tolist(),
        "ful_at": stamp(fulfilled_at, ~fulfilled),
        "accepts": np.where(ppl.opt_in[c], "yes", "no").tolist(),
        "subtotal": _strs(subtotal),
        "shipping": _strs(ship),
        "taxes": _strs(tax8 + tax10),
        "total": _strs(total),
        "code": code.tolist(),
        "discount": _strs(discount),
        "ship_method": np.where(ship == 0, "送料無料", "通常配送").tolist(),
        "created": stamp(sim.o_ts),
        "bname": full_name,
        "bstreet": [ppl.street[i] for i in cl],
        "ba1": [ppl.address1[i] for i in cl],
        "ba2": [ppl.address2[i] for i in cl],
        "bcity": [city[i] for i in cl],
        "bzip": zip_o,
        "bprov": [pref_code[i] for i in cl],
        "bphone": tel_o,
        "cancel_at": stamp(cancel_at, ~cancelled),
        "pay": pay_names[pay].tolist(),
        "refunded": _strs(refunded),
        "id": _strs(ids),
        "tags": tags.tolist(),
        "source": source.tolist(),
        "tax1n": np.where(tax10 > 0, "消費税 10%", "").tolist(),
        "tax1v": [str(v) if v else "" for v in tax10.tolist()],
        "tax2n": np.where(tax8 > 0, "消費税 8%（軽減税率）", "").tolist(),
        "tax2v": [str(v) if v else "" for v in tax8.tolist()],
        "phone": [phone_e164[i] if h else "" for i, h in zip(cl, has_phone_col.tolist())],
        "prov_name": [pref_name[i] for i in cl],
    }
    o_vals["currency"] = ["JPY"] * n_o
    o_vals["country"] = ["JP"] * n_o
    o_vals["outstanding"] = ["0"] * n_o
    o_vals["risk"] = ["Low"] * n_o
    spec_first = {
        "Name": "name", "Email": "email", "Financial Status": "fin", "Paid at": "paid_at", "Fulfillment Status": "ful",
        "Fulfilled at": "ful_at", "Accepts Marketing": "accepts", "Currency": "currency", "Subtotal": "subtotal",
        "Shipping": "shipping", "Taxes": "taxes", "Total": "total", "Discount Code": "code",
        "Discount Amount": "discount", "Shipping Method": "ship_method", "Created at": "created",
        "Billing Name": "bname", "Billing Street": "bstreet", "Billing Address1": "ba1", "Billing Address2": "ba2",
        "Billing City": "bcity", "Billing Zip": "bzip", "Billing Province": "bprov", "Billing Country": "country",
        "Billing Phone": "bphone", "Shipping Name": "bname", "Shipping Street": "bstreet", "Shipping Address1": "ba1",
        "Shipping Address2": "ba2", "Shipping City": "bcity", "Shipping Zip": "bzip", "Shipping Province": "bprov",
        "Shipping Country": "country", "Shipping Phone": "bphone", "Cancelled at": "cancel_at",
        "Payment Method": "pay", "Refunded Amount": "refunded", "Outstanding Balance": "outstanding", "Id": "id",
        "Tags": "tags", "Risk Level": "risk", "Source": "source", "Tax 1 Name": "tax1n", "Tax 1 Value": "tax1v",
        "Tax 2 Name": "tax2n", "Tax 2 Value": "tax2v", "Phone": "phone", "Billing Province Name": "prov_name",
        "Shipping Province Name": "prov_name",
    }
    line_spec = {
        "Lineitem quantity": "qty", "Lineitem name": "lname", "Lineitem price": "price", "Lineitem sku": "sku",
        "Lineitem requires shipping": "true", "Lineitem taxable": "true", "Lineitem fulfillment status": "lful",
        "Vendor": "vendor", "Lineitem discount": "zero",
    }
    prods = cat.products
    opt_pick = rng.integers(0, 8, n_l)
    lname = []
    for p, k in zip(sim.l_prod.tolist(), opt_pick.tolist()):
        opts = cat.options[p]
        lname.append(prods[p].name + (" - " + opts[k % len(opts)] if opts else ""))
    l_fulfilled = fulfilled[sim.l_order]
    l_vals = {
        "qty": _strs(sim.l_qty),
        "lname": lname,
        "price": _strs(sim.l_price),
        "sku": [prods[p].key for p in sim.l_prod.tolist()],
        "true": ["true"] * n_l,
        "lful": np.where(l_fulfilled, "fulfilled", "pending").tolist(),
        "vendor": [BRAND] * n_l,
        "zero": ["0"] * n_l,
        "name": [o_vals["name"][o] for o in sim.l_order.tolist()],
    }
    quote: Callable[[str], bool] = lambda col: col in _SHOPIFY_QUOTED  # noqa: E731
    first_row = _Row(SHOPIFY_COLUMNS, {**spec_first, **line_spec}, {}, quote)
    other_row = _Row(SHOPIFY_COLUMNS, {"Name": "name", **line_spec}, {}, quote)
    is_first = np.r_[True, sim.l_order[1:] != sim.l_order[:-1]]
    lo = sim.l_order.tolist()
    fidx = np.flatnonzero(is_first).tolist()
    oidx = np.flatnonzero(~is_first).tolist()
    first_vals = {k: [v[lo[i]] for i in fidx] for k, v in o_vals.items()}
    first_vals.update({k: [v[i] for i in fidx] for k, v in l_vals.items()})
    first_txt = first_row.render(first_vals, suffix="\r\n")
    other_txt = other_row.render({k: [v[i] for i in oidx] for k, v in l_vals.items()}, suffix="\r\n")
    out: list[str] = [""] * n_l
    for i, s in zip(fidx, first_txt):
        out[i] = s
    for i, s in zip(oidx, other_txt):
        out[i] = s
    return "".join(out)


def _contact_rows(rng: np.random.Generator, sims: Sequence[_Sim]) -> str:
    rows: list[str] = []
    for sim in sims:
        ppl = sim.people
        if ppl.n == 0:
            continue
        orders = np.bincount(sim.o_cust, minlength=ppl.n)
        p = np.where(orders >= 2, 0.62, 0.3) * (orders > 0)
        pick = np.flatnonzero(rng.random(ppl.n) < p)
        m = len(pick)
        line = rng.random(m) < 0.78
        ids = rng.integers(0, 2**64, size=(m, 2), dtype=np.uint64)
        bday = rng.random(m) < 0.7
        phone_fmt = rng.choice(3, size=m, p=[0.55, 0.3, 0.15])
        bd = np.datetime_as_string(ppl.birthday[pick] - rng.integers(0, 365, m), unit="D").tolist()
        for j, i in enumerate(pick.tolist()):
            tel = ppl.tel[i]
            phone = ("-".join(tel), "".join(tel), "")[phone_fmt[j]]
            uid = f"U{int(ids[j, 0]):016x}{int(ids[j, 1]):016x}" if line[j] else ""
            rows.append(",".join((ppl.email[i], phone, uid, bd[j] if bday[j] else "", "1" if ppl.opt_in[i] else "0")))
    order = rng.permutation(len(rows))
    return "".join(rows[i] + "\r\n" for i in order.tolist())


def _product_rows() -> str:
    rows = []
    for p in RAKUTEN_PRODUCTS + SHOPIFY_PRODUCTS:
        rows.append(",".join((p.key, p.name, p.category, str(p.cycle) if p.cycle else "")))
    return "".join(r + "\r\n" for r in rows)
