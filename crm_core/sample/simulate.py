"""The simulation: the context shared by all chunks and one chunk of customers and their orders per store."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from crm_core.sample.catalog import (
    _BUILDINGS,
    _COMPANIES,
    _DEVICES,
    _FULLWIDTH,
    _GIVEN_F,
    _GIVEN_M,
    _OPTIONS,
    _PREFECTURES,
    _RAKUTEN_PAY,
    _SHOPIFY_PAY,
    _SURNAMES,
    _TOWNS,
    _UV_SEASON,
    RAKUTEN_PRODUCTS,
    RAKUTEN_RELAY_DOMAIN,
    SHOPIFY_PRODUCTS,
    Product,
)
from crm_core.sample.timing import (
    _ADHOC_MEAN_DAYS,
    _B36,
    _DAY_CURVE,
    _DROPOUT_BETA,
    _IMPULSE_GAP,
    _IMPULSE_KEEP,
    _IMPULSE_LOYAL_FLOOR,
    _LINES_CUM,
    _LINES_CUM_SALE,
    _ONE_AND_DONE,
    _PACE,
    _REPLENISH_SHARE,
    _SUBSCRIBER_ADHOC_KEEP,
    _build_clocks,
    _choice,
    _Clock,
    _cum_table,
    _draw_rows,
    _sample_hours,
    _scramble,
)

# ---------------------------------------------------------------------------
# Global context shared by all chunks
# ---------------------------------------------------------------------------


@dataclass
class _StoreCat:
    products: tuple[Product, ...]
    price: np.ndarray
    cycle: np.ndarray  # days, 0 for one-off
    cum_any: np.ndarray  # [gender, month] -> cumulative product weights (repeat, cross-sell)
    cum_first: np.ndarray  # [gender, month] -> cumulative product weights (first order)
    upgrade: np.ndarray
    loyalty: np.ndarray
    subscribable: np.ndarray
    cum_sub: np.ndarray  # cumulative weights over subscribable products
    mailable: np.ndarray
    gift: np.ndarray
    supp: np.ndarray
    options: list[tuple[str, ...]]


def _store_catalog(products: tuple[Product, ...]) -> _StoreCat:
    keys = [p.key for p in products]
    wf = np.array([p.weight_f for p in products], dtype=float)
    wm = np.array([p.weight_m for p in products], dtype=float)
    uv = np.array([p.category == "日焼け止め" for p in products])
    season = np.where(uv[None, :], _UV_SEASON[:, None], 1.0)  # [month, product]
    w_any = np.stack([wf, wm])[:, None, :] * season[None, :, :]  # [gender, month, product]
    boost = np.array([p.first_boost for p in products])
    sub = np.array([p.subscribable for p in products])
    return _StoreCat(
        products=products,
        price=np.array([p.price for p in products], dtype=np.int64),
        cycle=np.array([p.cycle or 0 for p in products], dtype=float),
        cum_any=_cum_table(w_any),
        cum_first=_cum_table(w_any * boost),
        upgrade=np.array([keys.index(p.upgrade) if p.upgrade else i for i, p in enumerate(products)]),
        loyalty=np.array([p.loyalty for p in products]),
        subscribable=sub,
        cum_sub=_cum_table(np.where(sub, wf, 0.0)),
        mailable=np.array([p.mailable for p in products]),
        gift=np.array([p.category == "ギフトセット" for p in products]),
        supp=np.array([p.category == "サプリメント" for p in products]),
        options=[_OPTIONS.get(p.options, ()) for p in products],
    )


@dataclass
class _Context:
    start: dt.date
    end: dt.date
    n_days: int
    clocks: dict[str, _Clock]
    cats: dict[str, _StoreCat]
    sur: np.ndarray  # object arrays of names
    sur_kana: np.ndarray
    sur_roma: np.ndarray
    sur_cum: np.ndarray
    given: np.ndarray
    given_kana: np.ndarray
    given_roma: np.ndarray
    given_cum: np.ndarray  # [gender] -> cumulative over the concatenated table
    city_cum: np.ndarray
    city_name: np.ndarray
    city_zip3: np.ndarray
    city_pref: np.ndarray
    pref_name: np.ndarray
    relay_alphabets: list[str]
    keys: list[int]
    mail_digits: int
    n_customers: int
    # running counters over chunks
    day_seq: np.ndarray
    line_id: int = 0
    ship_id: int = 0
    sub_no: int = 0
    shop_no: int = 1001
    shop_id: int = 0


def _make_context(start: dt.date, end: dt.date, n_days: int, seed: int, customers: int,
                  rng: np.random.Generator) -> _Context:
    sur = np.array([s[0] for s in _SURNAMES], dtype=object)
    gf, gm = _GIVEN_F, _GIVEN_M
    given_w = np.zeros((2, len(gf) + len(gm)))
    given_w[0, : len(gf)] = [g[3] for g in gf]
    given_w[1, len(gf):] = [g[3] for g in gm]
    city_rows = [(pi, c) for pi, (_, _, cities) in enumerate(_PREFECTURES) for c in cities]
    city_w = np.array([_PREFECTURES[pi][1] * c[2] / sum(x[2] for x in _PREFECTURES[pi][2]) for pi, c in city_rows])
    alphabets = ["".join(rng.permutation(list(_B36))) for _ in range(10)]
    mail_digits = max(3, len(str(max(customers, 1))))
    return _Context(
        start=start,
        end=end,
        n_days=n_days,
        clocks=_build_clocks(start, n_days, seed),
        cats={"rakuten": _store_catalog(RAKUTEN_PRODUCTS), "shopify": _store_catalog(SHOPIFY_PRODUCTS)},
        sur=sur,
        sur_kana=np.array([s[1] for s in _SURNAMES], dtype=object),
        sur_roma=np.array([s[2] for s in _SURNAMES], dtype=object),
        sur_cum=_cum_table(np.array([s[3] for s in _SURNAMES])),
        given=np.array([g[0] for g in gf + gm], dtype=object),
        given_kana=np.array([g[1] for g in gf + gm], dtype=object),
        given_roma=np.array([g[2] for g in gf + gm], dtype=object),
        given_cum=_cum_table(given_w),
        city_cum=_cum_table(city_w),
        city_name=np.array([c[0] for _, c in city_rows], dtype=object),
        city_zip3=np.array([c[1] for _, c in city_rows], dtype=object),
        city_pref=np.array([pi for pi, _ in city_rows]),
        pref_name=np.array([p[0] for p in _PREFECTURES], dtype=object),
        relay_alphabets=alphabets,
        keys=[int(k) for k in rng.integers(1 << 20, 1 << 31, size=4)],
        mail_digits=mail_digits,
        n_customers=customers,
        day_seq=rng.integers(200_000, 900_000, size=n_days + 1),
        line_id=int(rng.integers(100_000_000, 200_000_000)),
        ship_id=int(rng.integers(1_000_000_000, 2_000_000_000)),
        sub_no=int(rng.integers(1_000, 9_000)),
        shop_id=int(rng.integers(5_100_000_000_000, 5_200_000_000_000)),
    )


# ---------------------------------------------------------------------------
# Simulation of one chunk of one store
# ---------------------------------------------------------------------------


_Col = tuple[pa.Array, "np.ndarray | None"]  # values and, per line item, the index into them


@dataclass
class _People:
    n: int
    gender: np.ndarray  # 0 女, 1 男
    sur: np.ndarray
    given: np.ndarray
    pref: np.ndarray
    city: np.ndarray
    zip1: list[str]
    zip2: list[str]
    street: list[str]
    address1: list[str]
    address2: list[str]
    tel: list[tuple[str, str, str]]
    email: list[str]
    birthday: np.ndarray  # datetime64[D]
    pay: np.ndarray
    device: np.ndarray
    opt_in: np.ndarray
    member: np.ndarray
    phone_style: np.ndarray


def _people(rng: np.random.Generator, gidx: np.ndarray, ctx: _Context, store: str) -> _People:
    n = len(gidx)
    female_share = 0.82 if store == "rakuten" else 0.86
    gender = (rng.random(n) >= female_share).astype(np.int64)
    sur = _draw_rows(ctx.sur_cum[None, :], np.zeros(n, dtype=np.int64), rng.random(n))
    given = _draw_rows(ctx.given_cum, gender, rng.random(n))
    city = _draw_rows(ctx.city_cum[None, :], np.zeros(n, dtype=np.int64), rng.random(n))
    pref = ctx.city_pref[city]
    zip4 = rng.integers(0, 10_000, n)
    town = rng.integers(0, len(_TOWNS), n)
    chome = rng.integers(1, 6, n)
    ban = rng.integers(1, 31, n)
    go = rng.integers(1, 26, n)
    style = rng.choice(3, size=n, p=[0.62, 0.23, 0.15])
    has_bld = rng.random(n) < 0.45
    bld = rng.integers(0, len(_BUILDINGS), n)
    room = rng.integers(1, 13, n) * 100 + rng.integers(1, 10, n)
    company = rng.random(n) < 0.012
    comp = rng.integers(0, len(_COMPANIES), n)
    address1, address2, street = [], [], []
    for i in range(n):
        nums = f"{chome[i]}-{ban[i]}-{go[i]}"
        if style[i] == 1:
            nums = nums.translate(_FULLWIDTH)
        elif style[i] == 2:
            nums = f"{chome[i]}丁目{ban[i]}番{go[i]}号"
        a1 = _TOWNS[town[i]] + nums
        if company[i]:
            a2 = _COMPANIES[comp[i]] + " 気付"
        elif has_bld[i]:
            a2 = f"{_BUILDINGS[bld[i]]} {room[i]}"
        else:
            a2 = ""
        address1.append(a1)
        address2.append(a2)
        street.append(a1 + (" " + a2 if a2 else ""))
    zip1 = ctx.city_zip3[city].tolist()
    zip2 = [f"{z:04d}" for z in zip4.tolist()]
    # Phones: an 8-digit core unique per customer; mobile or (Tokyo/Osaka) landline prefix.
    core = _scramble(gidx, 10**4, 10**4, ctx.keys)
    mobile = rng.choice(np.array(["090", "080", "070"], dtype=object), size=n, p=[0.5, 0.36, 0.14])
    landline = (rng.random(n) < 0.15) & np.isin(pref, [12, 26])
    prefix = np.where(landline, np.where(pref == 12, "03", "06"), mobile)
    tel = [(p, f"{c // 10_000:04d}", f"{c % 10_000:04d}") for p, c in zip(prefix.tolist(), core.tolist())]
    # E-mails
    if store == "rakuten":
        v = _scramble(gidx, 36**5, 36**5, ctx.keys)
        digits = []
        for pos in range(10):
            alpha = ctx.relay_alphabets[pos]
            digits.append([alpha[d] for d in (v % 36).tolist()])
            v = v // 36
        email = ["".join(t) + "@" + RAKUTEN_RELAY_DOMAIN for t in zip(*digits)]
    else:
        d = ctx.mail_digits
        num = _scramble(gidx, 10 ** (d - d // 2), 10 ** (d // 2), ctx.keys).tolist()
        pattern = rng.choice(5, size=n, p=[0.4, 0.15, 0.15, 0.15, 0.15]).tolist()
        dom = np.where(rng.random(n) < 0.6, "example.jp", "example.com").tolist()
        gr = ctx.given_roma[given].tolist()
        sr = ctx.sur_roma[sur].tolist()
        email = []
        for g, s, k, p, d in zip(gr, sr, num, pattern, dom):
            local = (f"{g}.{s}", f"{s}.{g}", f"{g}{s}", f"{g[0]}{s}", f"{g}_")[p]
            email.append(f"{local}{k}@{d}")
    age = np.clip(rng.normal(41, 11, n), 18, 79)
    birth = np.datetime64(ctx.end, "D") - (age * 365.25).astype(np.int64)
    return _People(
        n=n,
        gender=gender,
        sur=sur,
        given=given,
        pref=pref,
        city=city,
        zip1=zip1,
        zip2=zip2,
        street=street,
        address1=address1,
        address2=address2,
        tel=tel,
        email=email,
        birthday=birth,
        pay=_choice(rng, _RAKUTEN_PAY if store == "rakuten" else _SHOPIFY_PAY, n),
        device=_choice(rng, _DEVICES, n),
        opt_in=rng.random(n) < (0.62 if store == "rakuten" else 0.55),
        member=rng.random(n) < 0.97,
        phone_style=rng.choice(3, size=n, p=[0.5, 0.2, 0.3]),
    )


@dataclass
class _Sim:
    """Orders (sorted by time) and their lines for one chunk of one store."""

    people: _People
    o_cust: np.ndarray
    o_ts: np.ndarray  # seconds since period start (JST)
    o_sub: np.ndarray  # 0 normal, 1 subscription delivery
    o_sub_id: np.ndarray  # local subscription index or -1
    o_sub_seq: np.ndarray
    o_first: np.ndarray
    l_order: np.ndarray
    l_prod: np.ndarray
    l_qty: np.ndarray
    l_price: np.ndarray
    sub_cycle: np.ndarray  # months per subscription (local index)
    n_subs: int


def _add_months(day: np.ndarray, months: np.ndarray) -> np.ndarray:
    """``day`` (datetime64[D]) plus ``months``, day of month capped at 28 (定期便 delivery days)."""
    m = day.astype("datetime64[M]")
    dom = np.minimum((day - m.astype("datetime64[D]")).astype(np.int64), 27)
    return (m + months).astype("datetime64[D]") + dom


def _simulate(rng: np.random.Generator, gidx: np.ndarray, ctx: _Context, store: str) -> _Sim:
    clock, cat = ctx.clocks[store], ctx.cats[store]
    ppl = _people(rng, gidx, ctx, store)
    n = ppl.n
    H = clock.hours
    end_s = H * 3600
    hours_ext = len(clock.cum_repeat) - 1

    # Acquisition: first order time and first product.
    acq_h = _sample_hours(clock.cum_acq, np.zeros(n, dtype=np.int64), np.full(n, H), rng.random(n))
    acq_s = acq_h * 3600 + rng.integers(0, 3600, n)
    month0 = clock.month[acq_h] - 1
    first_prod = _draw_rows(cat.cum_first.reshape(-1, len(cat.products)), ppl.gender * 12 + month0, rng.random(n))
    main = cat.upgrade[first_prod]

    # Buying process: pace and per-purchase dropout (BG/NBD-like), lower for super-sale recruits.
    pace = rng.lognormal(*_PACE, n)
    drop = rng.beta(*_DROPOUT_BETA, n)
    impulse_gap = rng.lognormal(math.log(_IMPULSE_GAP[0]), _IMPULSE_GAP[1], n) * (_IMPULSE_LOYAL_FLOOR + drop)
    keep = (1.0 - drop) * np.minimum(cat.loyalty[first_prod], 1.2)
    keep = np.where(clock.super_sale[acq_h], keep * 0.72, keep)

    # Subscriptions (定期購入): ~10 % of customers, more among consumable buyers.
    sub_p = np.where(cat.subscribable[main], 0.19, 0.05)
    is_sub = rng.random(n) < sub_p
    subs = np.flatnonzero(is_sub)
    sub_prod_rand = _draw_rows(cat.cum_sub[None, :], np.zeros(len(subs), dtype=np.int64), rng.random(len(subs)))
    sub_prod = np.where(cat.subscribable[main[subs]], main[subs], sub_prod_rand)
    at_first = rng.random(len(subs)) < 0.55
    delay_days = rng.uniform(20, 240, len(subs))
    sub_start_h = np.where(at_first, acq_h[subs], acq_h[subs] + (delay_days * 24).astype(np.int64))
    ok = sub_start_h < H
    lo = np.minimum(sub_start_h, H - 1)
    sub_start_h = np.where(at_first, acq_h[subs], _sample_hours(clock.cum_repeat, lo, np.minimum(lo + 96, H),
                                                                rng.random(len(subs))))
    sub_start_s = np.where(at_first, acq_s[subs], sub_start_h * 3600 + rng.integers(0, 3600, len(subs)))
    subs, sub_prod, sub_start_s, at_first = subs[ok], sub_prod[ok], sub_start_s[ok], at_first[ok]
    cyc_days = cat.cycle[sub_prod]
    sub_cycle = np.where(rng.random(len(subs)) < np.where(cyc_days >= 55, 0.7, 0.15), 2, 1)
    n_del = 1 + (rng.random(len(subs)) < 0.70) * rng.geometric(0.15, len(subs))
    # Subscribers' own need is covered: they drop out of ad-hoc buying more often, and their
    # ad-hoc replenishment is of another product.
    keep[subs] *= _SUBSCRIBER_ADHOC_KEEP
    main_adhoc = main.copy()
    second = _draw_rows(cat.cum_any.reshape(-1, len(cat.products)), ppl.gender * 12 + month0, rng.random(n))
    second = np.where(second == main, (second + 1) % len(cat.products), second)
    covered = subs[sub_prod == main[subs]]
    main_adhoc[covered] = second[covered]

    # Ad-hoc orders, two streams per customer, vectorised over the customers still active.
    # Replenishment: due one cycle (x pace) after the last replenishment order, and the
    # customer may drop out after each one (BG/NBD's p).  Discovery: impulse purchases of
    # other products at a personal rate; they leave the replenishment clock alone.
    def next_cycle(idx: np.ndarray, from_s: np.ndarray) -> np.ndarray:
        cyc = cat.cycle[main_adhoc[idx]]
        replen = (rng.random(len(idx)) < _REPLENISH_SHARE) & (cyc > 0)
        days = np.where(replen, rng.normal(cyc * pace[idx], 0.3 * cyc + 1.0),
                        7.0 + rng.exponential(_ADHOC_MEAN_DAYS * pace[idx]))
        return from_s // 3600 + (np.maximum(days, 6.0) * 24).astype(np.int64)

    cust_parts, ts_parts, rep_parts = [np.arange(n)], [acq_s], [np.ones(n, dtype=bool)]
    t = acq_s.astype(np.int64).copy()
    rep_due = np.zeros(n, dtype=np.int64)
    active = np.flatnonzero(rng.random(n) >= _ONE_AND_DONE)
    active = active[rng.random(active.size) < keep[active]]
    rep_due[active] = next_cycle(active, acq_s[active])
    while active.size:
        last_h = t[active] // 3600
        imp_due = last_h + ((5.0 + rng.exponential(impulse_gap[active])) * 24).astype(np.int64)
        is_rep = rep_due[active] <= imp_due
        due = np.where(is_rep, rep_due[active], imp_due)
        lo = np.maximum(due - 5 * 24, last_h + 48)
        hi = lo + 17 * 24
        inside = hi < hours_ext
        active, is_rep, lo, hi = active[inside], is_rep[inside], lo[inside], hi[inside]
        h = _sample_hours(clock.cum_repeat, lo, hi, rng.random(active.size))
        ts = h * 3600 + rng.integers(0, 3600, active.size)
        seen = ts < end_s
        active, is_rep, ts = active[seen], is_rep[seen], ts[seen]
        t[active] = ts
        cust_parts.append(active)
        ts_parts.append(ts)
        rep_parts.append(is_rep)
        rep_due[active[is_rep]] = next_cycle(active[is_rep], ts[is_rep])
        stay = np.where(is_rep, rng.random(active.size) < keep[active], rng.random(active.size) < _IMPULSE_KEEP)
        active = active[stay]

    o_cust = np.concatenate(cust_parts)
    o_ts = np.concatenate(ts_parts)
    o_rep = np.concatenate(rep_parts)
    o_first = np.zeros(len(o_cust), dtype=bool)
    o_first[:n] = True
    # Customers whose subscription began with their first order: that order is the 1st delivery.
    drop_first = np.zeros(len(o_cust), dtype=bool)
    drop_first[subs[at_first]] = True
    o_cust, o_ts, o_first, o_rep = o_cust[~drop_first], o_ts[~drop_first], o_first[~drop_first], o_rep[~drop_first]

    # Subscription deliveries: same day each month (or every 2 months).
    s_rep = np.repeat(np.arange(len(subs)), n_del)
    k = np.arange(len(s_rep)) - np.repeat(np.cumsum(n_del) - n_del, n_del)
    start_day = np.datetime64(ctx.start, "D") + sub_start_s // 86400
    day = _add_months(start_day[s_rep], k * sub_cycle[s_rep])
    hod = _draw_rows(_cum_table(_DAY_CURVE)[None, :], np.zeros(len(s_rep), dtype=np.int64), rng.random(len(s_rep)))
    d_s = (day - np.datetime64(ctx.start, "D")).astype(np.int64) * 86400 + hod * 3600 + rng.integers(0, 3600, len(s_rep))
    d_s = np.where(k == 0, sub_start_s[s_rep], d_s)
    d_s = np.maximum(d_s, sub_start_s[s_rep])
    seen = d_s < end_s
    s_rep, k, d_s = s_rep[seen], k[seen], d_s[seen]

    n_adhoc = len(o_cust)
    cust_all = np.concatenate([o_cust, subs[s_rep]])
    ts_all = np.concatenate([o_ts, d_s])
    is_sub_order = np.concatenate([np.zeros(n_adhoc, dtype=np.int64), np.ones(len(s_rep), dtype=np.int64)])
    sub_id = np.concatenate([np.full(n_adhoc, -1), s_rep])
    sub_seq = np.concatenate([np.zeros(n_adhoc, dtype=np.int64), k + 1])
    first_all = np.concatenate([o_first, (k == 0) & at_first[s_rep]])
    rep_all = np.concatenate([o_rep, np.ones(len(s_rep), dtype=bool)])
    order = np.lexsort((cust_all, ts_all))
    o_cust, o_ts, o_sub, o_rep = cust_all[order], ts_all[order], is_sub_order[order], rep_all[order]
    o_sub_id, o_sub_seq, o_first = sub_id[order], sub_seq[order], first_all[order]
    n_orders = len(o_cust)

    # Lines: 1-4 per order (more in big sales), no product twice in one order.
    o_h = np.minimum(o_ts // 3600, H - 1)
    big = clock.big_event[o_h]
    n_lines_cum = np.where(big[:, None], np.array([_LINES_CUM_SALE]), np.array([_LINES_CUM]))
    n_lines = 1 + (n_lines_cum < rng.random(n_orders)[:, None]).sum(axis=1)
    n_lines = np.where(o_sub == 1, 1 + (rng.random(n_orders) < 0.08), n_lines)
    rows = ppl.gender[o_cust] * 12 + (clock.month[o_h] - 1)
    n_prod = len(cat.products)
    table_any = cat.cum_any.reshape(-1, n_prod)
    prods = np.empty((n_orders, 4), dtype=np.int64)
    for j in range(4):
        prods[:, j] = _draw_rows(table_any, rows, rng.random(n_orders))
    p0 = np.where(o_rep & (rng.random(n_orders) < 0.92), main_adhoc[o_cust], prods[:, 0])
    p0 = np.where(o_first & ~(o_sub == 1), first_prod[o_cust], p0)
    sub_prod_o = np.where(o_sub == 1, sub_prod[np.maximum(o_sub_id, 0)], 0)
    prods[:, 0] = np.where(o_sub == 1, sub_prod_o, p0)
    for j in range(1, 4):
        for _ in range(3):
            dup = (prods[:, j:j + 1] == prods[:, :j]).any(axis=1)
            if not dup.any():
                break
            prods[dup, j] = (prods[dup, j] + 1 + rng.integers(0, n_prod - 1, int(dup.sum()))) % n_prod
    l_mask = np.arange(4)[None, :] < n_lines[:, None]
    l_order = np.repeat(np.arange(n_orders), n_lines)
    l_prod = prods[l_mask]
    n_l = len(l_order)
    l_qty = 1 + (rng.random(n_l) < 0.14).astype(np.int64) + (rng.random(n_l) < 0.03)
    l_qty = np.where(cat.gift[l_prod], 1, l_qty)
    price = cat.price[l_prod]
    l_sub = o_sub[l_order] == 1
    sale = clock.super_sale[o_h[l_order]] & (rng.random(n_l) < 0.3) & ~l_sub & (price >= 2000)
    price = np.where(sale, price * 8 // 100 * 10, price)  # 20 % off in 楽天スーパーSALE, to 10 yen
    price = np.where(l_sub, price * 9 // 100 * 10, price)  # 定期購入 10 % off
    return _Sim(
        people=ppl,
        o_cust=o_cust,
        o_ts=o_ts,
        o_sub=o_sub,
        o_sub_id=o_sub_id,
        o_sub_seq=o_sub_seq,
        o_first=o_first,
        l_order=l_order,
        l_prod=l_prod,
        l_qty=l_qty,
        l_price=price,
        sub_cycle=sub_cycle,
        n_subs=len(subs),
    )
