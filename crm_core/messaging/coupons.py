"""Coupons: definitions, unique codes, cost estimates and code exports.

Tables (created by a migration in :mod:`crm_core.db`):

``coupons``
    ``coupon_id, name, kind ('percent' | 'yen' | 'free_shipping'), value
    (percent or yen; 0 for free shipping), min_purchase (yen), valid_from,
    valid_to (JST timestamps), code_mode ('shared' | 'unique'), shared_code,
    segment (what the coupon targets, free text or a segment name), channel,
    created_at``.
``coupon_codes``
    ``coupon_id, code, customer_id, created_at, valid_to``: one unique code per customer;
    ``valid_to`` (JST) is the code's own expiry when it is valid for N days from the send
    (scenario coupons, ``valid_days``), else NULL (the coupon's ``valid_to`` applies).

Codes are drawn with :mod:`secrets` from :data:`ALPHABET`, which leaves out
characters that are easy to confuse when read aloud, handwritten or printed
on an insert (0/O/Q/D, 1/I/L, 2/Z, 5/S, 8/B, U/V).  A code is never issued twice:
new codes are checked against each other and against every stored code.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from crm_core import clock
from crm_core.db import Store
from crm_core.errors import InputError

ALPHABET = "ACEFGHJKMNPRTWXY34679"
"""Code characters: upper-case letters and digits without look-alikes."""
CODE_LENGTH = 10
KINDS = {"percent": "％割引", "yen": "円引き", "free_shipping": "送料無料"}
CODE_MODES = {"shared": "全員共通のコード", "unique": "お客様ごとのコード"}
DEFAULT_SHIPPING_FEE = 600



# -- codes ---------------------------------------------------------------------------
def _draw(count: int, length: int) -> list[str]:
    """``count`` random codes (may repeat); bytes are mapped without modulo bias."""
    n = len(ALPHABET)
    limit = 256 - (256 % n)  # bytes >= limit are dropped so every character is equally likely
    table = bytes(ord(ALPHABET[b % n]) if b < limit else 0 for b in range(256))
    drop = bytes(range(limit, 256))
    need = count * length
    chars = b""
    while len(chars) < need:
        chunk = secrets.token_bytes(int((need - len(chars)) * 256 / limit) + 64)
        chars += chunk.translate(table, drop)
    text = chars[:need].decode("ascii")
    return [text[i:i + length] for i in range(0, need, length)]


def generate_codes(count: int, *, length: int = CODE_LENGTH, prefix: str = "", existing: set[str] | None = None) -> list[str]:
    """``count`` distinct new codes, none of them in ``existing``.

    Parameters
    ----------
    count : int
    length : int
        Random characters per code (10 gives 21**10 ≈ 1.7e13 possibilities).
    prefix : str
        Optional fixed start (upper-case letters, digits, ``-``), e.g. ``"BD26-"``.
    existing : set of str
        Codes already issued.
    """
    if count < 0 or count > 10_000_000:
        raise InputError("一度に作れるコードは1,000万件までです。", f"count={count}")
    if length < 6:
        raise InputError("コードは6文字以上にしてください。", f"length={length}")
    prefix = (prefix or "").upper()
    if prefix and not re.fullmatch(r"[A-Z0-9\-]{1,12}", prefix):
        raise InputError("コードの頭につける文字は半角英数字とハイフンで12文字以内にしてください。", "bad prefix")
    taken = set(existing or ())
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        for code in _draw(count - len(out), length):
            full = prefix + code
            if full in seen or full in taken:
                continue
            seen.add(full)
            out.append(full)
    return out


# -- definitions ---------------------------------------------------------------------------
@dataclass
class Coupon:
    """One coupon definition (see the module docstring for the columns)."""

    name: str
    kind: str
    value: float
    min_purchase: float = 0
    valid_from: dt.datetime | None = None
    valid_to: dt.datetime | None = None
    code_mode: str = "shared"
    shared_code: str = ""
    segment: str = ""
    channel: str = "line"
    coupon_id: str = ""

    def discount_label(self) -> str:
        """「10%OFF」「500円OFF」「送料無料」."""
        if self.kind == "percent":
            return f"{self.value:g}%OFF"
        if self.kind == "yen":
            return f"{round(self.value):,}円OFF"
        return "送料無料"

    def condition_label(self) -> str:
        return f"¥{round(self.min_purchase):,}以上のお買い物で" if self.min_purchase else ""

    def expiry_label(self) -> str:
        return expiry_label(self.valid_to)


def expiry_label(valid_to: dt.datetime | None) -> str:
    """「2026年11月3日 23:59まで」 ("" without an expiry)."""
    if not valid_to:
        return ""
    return f"{valid_to.year}年{valid_to.month}月{valid_to.day}日 {valid_to:%H:%M}まで"


def valid_to_after(send_at: dt.datetime, days: int) -> dt.datetime:
    """The end (23:59 JST) of the ``days``-th day after a send: a code valid for N days from the send."""
    return dt.datetime.combine(_jst_naive(send_at).date() + dt.timedelta(days=int(days)), dt.time(23, 59))


def validate(coupon: Coupon) -> None:
    """Check a definition; raises :class:`InputError` in Japanese."""
    if not coupon.name.strip():
        raise InputError("クーポン名を入力してください。", "empty name")
    if coupon.kind not in KINDS:
        raise InputError("割引の種類は「％割引」「円引き」「送料無料」から選んでください。", f"kind={coupon.kind!r}")
    if coupon.kind == "percent" and not 0 < coupon.value <= 100:
        raise InputError("割引率は1〜100%の範囲で入力してください。", "percent out of range")
    if coupon.kind == "yen" and coupon.value <= 0:
        raise InputError("割引額は1円以上で入力してください。", "yen <= 0")
    if coupon.kind == "yen" and coupon.min_purchase and coupon.value >= coupon.min_purchase:
        raise InputError("割引額は利用条件（最低購入金額）より小さくしてください。", "discount >= min purchase")
    if coupon.min_purchase < 0:
        raise InputError("最低購入金額は0円以上で入力してください。", "negative min purchase")
    if coupon.valid_from and coupon.valid_to and coupon.valid_to <= coupon.valid_from:
        raise InputError("有効期限の終了は開始より後にしてください。", "valid_to <= valid_from")
    if coupon.code_mode not in CODE_MODES:
        raise InputError("コードの種類は「全員共通」か「お客様ごと」を選んでください。", "bad code mode")
    if coupon.code_mode == "shared" and not re.fullmatch(r"[A-Za-z0-9\-_]{4,32}", coupon.shared_code or ""):
        raise InputError("共通コードは半角英数字（4〜32文字）で入力してください。", "bad shared code")


def create_coupon(store: Store, coupon: Coupon) -> str:
    """Store a new coupon definition; returns its id."""
    validate(coupon)
    coupon.coupon_id = coupon.coupon_id or "CP" + uuid.uuid4().hex[:10].upper()
    if coupon.code_mode == "shared":
        coupon.shared_code = coupon.shared_code.upper()
    store.execute(
        "INSERT INTO coupons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [coupon.coupon_id, coupon.name.strip(), coupon.kind, float(coupon.value), float(coupon.min_purchase),
         coupon.valid_from, coupon.valid_to, coupon.code_mode, coupon.shared_code or None, coupon.segment, coupon.channel,
         clock.now().replace(microsecond=0)],
    )
    return coupon.coupon_id


def list_coupons(store: Store) -> list[Coupon]:
    """All coupon definitions, newest first."""
    cur = store.execute(
        "SELECT coupon_id, name, kind, value, min_purchase, valid_from, valid_to, code_mode, shared_code, segment, channel "
        "FROM coupons ORDER BY created_at DESC, coupon_id"
    )
    cols = [d[0] for d in cur.description]
    return [Coupon(**{k: ("" if v is None and k in ("shared_code", "segment", "channel") else v) for k, v in zip(cols, r)}) for r in cur.fetchall()]


def get_coupon(store: Store, coupon_id: str) -> Coupon:
    for c in list_coupons(store):
        if c.coupon_id == coupon_id:
            return c
    raise InputError("指定したクーポンが見つかりません。", f"unknown coupon {coupon_id!r}")


def target_problem(store: Store, coupon: Coupon) -> str | None:
    """None when the coupon's target segment still exists, else a Japanese explanation.

    A coupon keeps the segment it was made for (``"all"``, a basic filter,
    ``"preset:<key>"`` or ``"saved:<id>"``); when that segment was deleted its
    codes must not silently go to every customer.
    """
    from crm_core.messaging.templates import segment_choices

    choice = coupon.segment or "all"
    if choice in segment_choices(store):
        return None
    what = "保存済みセグメント" if choice.startswith("saved:") else f"セグメント「{choice[:40]}」"
    return (f"このクーポンの対象だった{what}は削除されたため、お客様ごとのコードは発行できません"
            "（すべてのお客様に発行されることはありません）。対象のセグメントを選んでクーポンを作り直してください。")


def target_customer_ids(store: Store, coupon: Coupon) -> list[str]:
    """Every customer id of the coupon's target segment.

    Raises
    ------
    InputError
        When the segment no longer exists (see :func:`target_problem`).
    """
    from crm_core.messaging.templates import segment_customer_ids

    problem = target_problem(store, coupon)
    if problem:
        raise InputError(problem, f"coupon {coupon.coupon_id} targets a missing segment {coupon.segment!r}")
    return segment_customer_ids(store, coupon.segment or "all")


def target_size(store: Store, coupon: Coupon) -> int:
    """How many customers :func:`target_customer_ids` would return (counted in SQL; for the page's estimate)."""
    from crm_core.messaging.preview import segment_size

    problem = target_problem(store, coupon)
    if problem:
        raise InputError(problem, f"coupon {coupon.coupon_id} targets a missing segment {coupon.segment!r}")
    return segment_size(store, coupon.segment or "all")


def issue_for_target(store: Store, coupon_id: str, *, prefix: str = "") -> int:
    """Issue unique codes to the coupon's own target segment (refused when that segment was deleted)."""
    return issue_unique_codes(store, coupon_id, target_customer_ids(store, get_coupon(store, coupon_id)), prefix=prefix)


def issue_unique_codes(store: Store, coupon_id: str, customer_ids: list[str], *, prefix: str = "",
                       valid_days: int | None = None, sent_at: dt.datetime | None = None) -> int:
    """Give each customer (who has none yet) a unique code for this coupon; returns how many were issued.

    ``valid_days`` with ``sent_at`` (the send time): the new codes are valid until the end of the
    ``valid_days``-th day after the send (:func:`valid_to_after`, stored per code), and a customer
    whose code has expired by ``sent_at`` (last year's birthday coupon) gets a new one; a code
    still valid then is kept (a rerun never issues twice).
    """
    coupon = get_coupon(store, coupon_id)
    if coupon.code_mode != "unique":
        raise InputError("このクーポンは全員共通のコードです。お客様ごとのコードは作れません。", "shared coupon")
    valid_to = None
    if valid_days is not None:
        if sent_at is None:
            raise ValueError("valid_days needs sent_at")
        valid_to = valid_to_after(sent_at, valid_days)
        sent_local = _jst_naive(sent_at)
        have = {r[0] for r in store.fetchall("SELECT customer_id FROM coupon_codes WHERE coupon_id = ?"
                                             " AND (valid_to IS NULL OR valid_to >= ?)", [coupon_id, sent_local])}
    else:
        have = {r[0] for r in store.fetchall("SELECT customer_id FROM coupon_codes WHERE coupon_id = ?", [coupon_id])}
    todo = list(dict.fromkeys(c for c in customer_ids if c and c not in have))
    if not todo:
        return 0
    existing = {r[0] for r in store.fetchall("SELECT code FROM coupon_codes")}
    codes = generate_codes(len(todo), prefix=prefix, existing=existing)
    now = clock.now().replace(microsecond=0)
    table = pa.table({"coupon_id": [coupon_id] * len(todo), "code": codes, "customer_id": todo, "created_at": [now] * len(todo),
                      "valid_to": pa.array([valid_to] * len(todo), type=pa.timestamp("us"))})
    with store.transaction() as cur:
        cur.register("new_coupon_codes", table)
        try:
            cur.execute("INSERT INTO coupon_codes (coupon_id, code, customer_id, created_at, valid_to)"
                        " SELECT coupon_id, code, customer_id, created_at, valid_to FROM new_coupon_codes")
        finally:
            cur.unregister("new_coupon_codes")
    return len(todo)


def _jst_naive(when: dt.datetime) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None) if when.tzinfo else when


def _code_row(store: Store, coupon: Coupon, customer_id: str) -> tuple[str, dt.datetime | None]:
    row = store.fetchone("SELECT code, valid_to FROM coupon_codes WHERE coupon_id = ? AND customer_id = ?"
                         " ORDER BY valid_to DESC NULLS LAST, created_at DESC LIMIT 1", [coupon.coupon_id, customer_id])
    return (row[0], row[1]) if row else ("", None)


def code_for(store: Store, coupon: Coupon, customer_id: str) -> str:
    """The code a customer uses: the shared code, or their (newest) unique code ("" if none issued yet)."""
    if coupon.code_mode == "shared":
        return coupon.shared_code
    return _code_row(store, coupon, customer_id)[0]


def placeholder_values(store: Store, coupon: Coupon, customer_id: str) -> dict[str, str]:
    """``coupon_code, coupon_value, coupon_expiry, coupon_min_purchase`` for one customer (see ``crm_core.messaging.templates``).

    The expiry is the customer's own code's when it has one (N days from their send), else the coupon's.
    """
    code, own_valid_to = ("", None) if coupon.code_mode == "shared" else _code_row(store, coupon, customer_id)
    return {
        "coupon_code": coupon.shared_code if coupon.code_mode == "shared" else code,
        "coupon_value": coupon.discount_label(),
        "coupon_expiry": expiry_label(own_valid_to) if own_valid_to else coupon.expiry_label(),
        "coupon_min_purchase": coupon.condition_label(),
    }


def placeholder_values_many(store: Store, coupon: Coupon, customer_ids: list[str]) -> dict[str, dict[str, str]]:
    """:func:`placeholder_values` of many customers in one query (each customer's newest code and its expiry)."""
    codes: dict[str, tuple[str, Any]] = {}
    if coupon.code_mode != "shared" and customer_ids:
        for cid, code, valid_to in store.fetchall(
                "SELECT customer_id, code, valid_to FROM coupon_codes WHERE coupon_id = ? AND customer_id IN (SELECT unnest(?))"
                " QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY valid_to DESC NULLS LAST, created_at DESC) = 1",
                [coupon.coupon_id, list(customer_ids)]):
            codes[cid] = (code, valid_to)
    common = {"coupon_value": coupon.discount_label(), "coupon_min_purchase": coupon.condition_label()}
    out = {}
    for cid in customer_ids:
        code, valid_to = (coupon.shared_code, None) if coupon.code_mode == "shared" else codes.get(cid, ("", None))
        out[cid] = {"coupon_code": code, "coupon_expiry": expiry_label(valid_to) if valid_to else coupon.expiry_label(), **common}
    return out


def _export_joins(store: Store) -> tuple[str, tuple[str, str], str]:
    """The code export's shop number, name and e-mail expressions and the joins they need (fixed SQL, no input)."""
    null = "CAST(NULL AS VARCHAR)"
    join = ""
    key, person = null, (null, null)
    if store.has_table("customers"):
        key, join = "k.customer_key", join + " LEFT JOIN customers k ON k.customer_id = c.customer_id"
    if store.has_table("customer_model"):
        person, join = ("m.name", "m.email"), join + " LEFT JOIN customer_model m ON m.customer_id = c.customer_id"
    return key, person, join


def export_codes(store: Store, coupon_id: str) -> pd.DataFrame:
    """Unique codes with their customers, for registering in RMS or Shopify.

    Columns: クーポンコード, 顧客ID, ショップの顧客番号 (the number RMS or Shopify knows the customer by),
    氏名, メールアドレス, クーポン名, 割引, 利用条件, 有効期限.
    """
    coupon = get_coupon(store, coupon_id)
    key, person, join = _export_joins(store)
    sql = (f"SELECT c.code, c.customer_id, {key}, {person[0]}, {person[1]}, c.valid_to FROM coupon_codes c{join} "  # noqa: S608
           "WHERE c.coupon_id = ? ORDER BY c.customer_id")  # the fragments are _export_joins' constants
    df = store.df(sql, [coupon_id])
    df.columns = ["クーポンコード", "顧客ID", "ショップの顧客番号", "氏名", "メールアドレス", "valid_to"]
    df["クーポン名"] = coupon.name
    df["割引"] = coupon.discount_label()
    df["利用条件"] = coupon.condition_label()
    df["有効期限"] = [expiry_label(v.to_pydatetime()) if not pd.isna(v) else coupon.expiry_label() for v in df.pop("valid_to")]
    return df


def export_codes_csv(store: Store, coupon_id: str, path: str | Path, encoding: str = "utf-8-sig") -> dict[str, Any]:
    """Write :func:`export_codes` as a CSV for RMS or Shopify, at DuckDB's pace.

    The same bytes as ``to_csv_bytes(export_codes(...))`` (formula cells
    neutralised, UTF-8 with BOM or cp932), neutralised in SQL and written by
    DuckDB's ``COPY`` (:func:`crm_core.export.copy_csv`).  Returns ``rows``
    and ``unencodable`` (characters cp932 could not carry, written as ``?``).
    """
    from crm_core.export import ENCODINGS, copy_csv

    if encoding not in ENCODINGS:
        raise InputError("文字コードは utf-8-sig（UTF-8 BOM付き）か cp932（Shift_JIS）を選んでください。", f"encoding={encoding!r}")
    coupon = get_coupon(store, coupon_id)
    key, person, join = _export_joins(store)
    columns = [
        ("c.code", "クーポンコード"), ("c.customer_id", "顧客ID"), (key, "ショップの顧客番号"),
        (person[0], "氏名"), (person[1], "メールアドレス"),
        ("CAST($coupon_name AS VARCHAR)", "クーポン名"), ("CAST($discount AS VARCHAR)", "割引"),
        ("CAST($condition AS VARCHAR)", "利用条件"),
        ("CASE WHEN c.valid_to IS NULL THEN CAST($expiry AS VARCHAR) ELSE strftime(c.valid_to, '%Y年%-m月%-d日 %H:%Mまで') END", "有効期限"),
    ]
    from_sql = "FROM coupon_codes c" + join + " WHERE c.coupon_id = $coupon_id ORDER BY c.customer_id"
    params = {"coupon_id": coupon_id, "coupon_name": coupon.name, "discount": coupon.discount_label(),
              "condition": coupon.condition_label(), "expiry": coupon.expiry_label()}
    bad: set[str] = set()
    rows = copy_csv(store, columns, from_sql, params, path, encoding, bad)
    return {"rows": rows, "unencodable": sorted(bad)}


def issued_count(store: Store, coupon_id: str) -> int:
    """How many unique codes of this coupon are issued (a count; the codes are read only when exported)."""
    return int(store.scalar("SELECT count(*) FROM coupon_codes WHERE coupon_id = ?", [coupon_id]) or 0)


def export_codes_bytes(store: Store, coupon_id: str, encoding: str = "utf-8-sig") -> bytes:
    """:func:`export_codes_csv` as bytes for a download button (written by DuckDB's ``COPY`` in a private folder)."""
    from crm_core.tempfiles import work_dir

    with work_dir("coupons") as folder:
        path = Path(folder) / "codes.csv"
        export_codes_csv(store, coupon_id, path, encoding)
        return path.read_bytes()


# -- cost estimate -----------------------------------------------------------------------------
@dataclass
class CostEstimate:
    """What a coupon is expected to cost and bring (yen).

    Every redemption costs its discount, but only the *incremental* ones (orders
    that would not have happened without the coupon, measured against a
    holdout) bring extra gross profit.
    """

    recipients: int
    redemption_rate: float
    rate_source: str
    redemptions: float
    order_value: float
    discount_per_order: float
    discount_cost: float
    gross_profit: float
    net: float
    incremental_share: float = 1.0
    incremental_orders: float = 0.0
    margin: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def past_redemption_rate(store: Store, min_issued: int = 30) -> float | None:
    """Share of issued unique codes that appear in orders (``orders.coupon_code``); None without enough history."""
    row = store.fetchone(
        "SELECT count(*), count(*) FILTER (WHERE code IN (SELECT upper(trim(coupon_code)) FROM orders "
        "WHERE coupon_code IS NOT NULL AND NOT coalesce(cancelled, FALSE))) FROM coupon_codes"
    )
    issued, used = row if row else (0, 0)
    if not issued or issued < min_issued:
        return None
    return used / issued


def average_order_value(store: Store) -> float:
    """Mean order value of the customer model (``revenue / orders``), 0 without data."""
    if not store.has_table("customer_model"):
        return 0.0
    return float(store.scalar("SELECT coalesce(sum(revenue) / nullif(sum(orders), 0), 0) FROM customer_model") or 0)


def estimate_cost(
    store: Store | None,
    coupon: Coupon,
    recipients: int,
    *,
    average_order_value: float,
    incremental_share: float,
    margin: float = 0.3,
    redemption_rate: float = 0.05,
    shipping_fee: float = DEFAULT_SHIPPING_FEE,
) -> CostEstimate:
    """Expected discount cost against the gross profit of the *extra* orders only.

    ``redemptions = recipients × rate`` where the rate is the past redemption
    rate of issued codes when the store has enough history
    (:func:`past_redemption_rate`), else ``redemption_rate``.  An order is
    worth ``max(average_order_value, min_purchase)``; the discount is
    ``value %`` of it, ``value`` yen, or the shipping fee, and is paid on every
    redemption.  Only ``incremental_orders = redemptions × incremental_share``
    bring new gross profit: most redeemers would have bought anyway (the share
    is measured against holdouts by
    :func:`crm_core.results.attribution.coupon_incremental_share`, or given).
    ``gross_profit = incremental_orders × order value × margin`` and
    ``net = gross_profit − discount_cost``.
    """
    if not 0 <= margin <= 1 or not 0 <= redemption_rate <= 1 or not 0 <= incremental_share <= 1:
        raise InputError("利益率・利用率・上乗せの割合は0〜100%の範囲で入力してください。", "rate out of range")
    rate, source = redemption_rate, "入力した利用率"
    past = past_redemption_rate(store) if store is not None else None
    if past is not None:
        rate, source = past, "過去のクーポン利用実績"
    order_value = max(float(average_order_value or 0), float(coupon.min_purchase or 0))
    if coupon.kind == "percent":
        per = order_value * coupon.value / 100
    elif coupon.kind == "yen":
        per = min(float(coupon.value), order_value)
    else:
        per = float(shipping_fee)
    redemptions = recipients * rate
    cost = redemptions * per
    extra = redemptions * incremental_share
    profit = extra * order_value * margin
    return CostEstimate(recipients, rate, source, redemptions, order_value, per, cost, profit, profit - cost,
                        incremental_share, extra, margin)
