"""Customer identity: which orders belong to one person, and the customer table.

Rakuten gives masked relay e-mail addresses whose stability across orders is
unconfirmed, so the identity key is configurable (FACTS.md §1):

* ``email`` (default) — the order e-mail, else the phone number;
* ``phone`` — digits of the phone number, else the e-mail;
* ``name_phone`` — buyer name + phone, else the e-mail;
* ``name_postcode`` — buyer name + postcode, else the e-mail.

A generic file with a mapped customer id always uses that id.  Orders with
no usable key become one-order customers (counted in the import report).
The SQL for the key is the ``crm_customer_id`` macro in :mod:`crm_core.db`.
"""

from __future__ import annotations

import duckdb

from crm_core.db import Store, quote_ident
from crm_core.errors import InputError

IDENTITY_KEYS = {
    "email": "メールアドレス（なければ電話番号）",
    "phone": "電話番号（なければメールアドレス）",
    "name_phone": "氏名＋電話番号",
    "name_postcode": "氏名＋郵便番号",
}
DEFAULT_IDENTITY_KEY = "email"


def identity_key_setting(store: Store) -> str:
    """The identity key stored in settings (default ``email``)."""
    value = store.get_setting("identity_key", DEFAULT_IDENTITY_KEY)
    return value if value in IDENTITY_KEYS else DEFAULT_IDENTITY_KEY


EVERYONE = None
"""A ``refresh_touched`` row with this id: every customer changed (a full rebuild of ``customers``)."""

# ``{orders}``: the table ``orders``, or only the orders of the customers being recomputed.
_CUSTOMERS_SQL = """
        INSERT INTO customers BY NAME
        WITH prof AS (
            SELECT customer_id,
                   CASE WHEN count(DISTINCT source) > 1 THEN 'multi' ELSE any_value(source) END AS source,
                   arg_max(buyer_name, latest) AS name,
                   arg_max(buyer_name_kana, latest) AS name_kana,
                   arg_max(email, latest) AS email,
                   arg_max(phone, latest) AS phone,
                   arg_max(gender, latest) AS gender,
                   arg_max(birthday, latest) AS birthday,
                   arg_max(prefecture, latest) AS prefecture,
                   arg_max(email_opt_in, latest) AS email_opt_in,
                   arg_max(customer_key, latest) AS customer_key,
                   count(*) AS orders_merged,
                   min(ordered_at) AS first_seen_at
            FROM (SELECT *, (ordered_at, source, order_id) AS latest FROM {orders}) GROUP BY customer_id
        ),
        emails AS (SELECT DISTINCT customer_id, lower(email) AS email FROM {orders} WHERE email IS NOT NULL),
        phones AS (SELECT DISTINCT customer_id, phone FROM {orders} WHERE phone IS NOT NULL),
        matched AS (
            SELECT e.customer_id, c.* FROM contacts c JOIN emails e ON c.email = e.email
            UNION ALL BY NAME
            SELECT p.customer_id, c.* FROM contacts c JOIN phones p ON c.phone = p.phone WHERE c.email IS NULL
        ),
        links AS (
            SELECT o.customer_id, l.line_user_id, l.import_id FROM line_links l JOIN {orders} o ON o.order_id = l.order_id
            UNION ALL
            SELECT p.customer_id, l.line_user_id, l.import_id FROM line_links l JOIN phones p ON l.phone = p.phone
            WHERE l.order_id IS NULL
            UNION ALL
            SELECT e.customer_id, l.line_user_id, l.import_id FROM line_links l JOIN emails e ON l.email = e.email
            WHERE l.order_id IS NULL AND l.phone IS NULL
        ),
        lagg AS (SELECT customer_id, arg_max(line_user_id, (import_id, line_user_id)) AS line_user_id FROM links GROUP BY customer_id),
        -- ties (same import, same time) are broken by the row's other values, so the result never
        -- depends on how rows are laid out (and a partial rebuild equals a full one)
        cagg AS (
            SELECT customer_id,
                   arg_max(line_user_id, latest) AS line_user_id,
                   arg_max(email_opt_in, latest) AS email_opt_in,
                   arg_max(birthday, latest) AS birthday,
                   arg_max(gender, latest) AS gender,
                   arg_max(prefecture, latest) AS prefecture,
                   arg_max(tags, latest) AS tags,
                   arg_max(name, latest) AS name,
                   arg_max(customer_key, latest) AS customer_key
            FROM (SELECT *, (import_id, email, phone, line_user_id, name, tags, customer_key, birthday, gender,
                             prefecture, email_opt_in, sms_opt_in, source) AS latest FROM matched)
            GROUP BY customer_id
        )
        SELECT p.customer_id, p.source,
               coalesce(p.name, c.name) AS name,
               p.name_kana, p.email, p.phone,
               coalesce(p.gender, c.gender) AS gender,
               coalesce(p.birthday, c.birthday) AS birthday,
               coalesce(p.prefecture, c.prefecture) AS prefecture,
               coalesce(c.email_opt_in, p.email_opt_in, FALSE) AS email_opt_in,
               coalesce(lk.line_user_id, c.line_user_id) AS line_user_id, c.tags,
               p.orders_merged, p.first_seen_at,
               coalesce(p.customer_key, c.customer_key) AS customer_key
        FROM prof p LEFT JOIN cagg c USING (customer_id) LEFT JOIN lagg lk USING (customer_id)
        """
_SCOPED_ORDERS = "(SELECT * FROM orders WHERE customer_id IN (SELECT customer_id FROM rc_scope))"


def rebuild_customers(cur: duckdb.DuckDBPyConnection, touched: str | None = None) -> dict[str, int]:
    """Recreate ``customers`` from ``orders`` and ``contacts`` (inside the caller's transaction).

    Profile values are the latest non-empty ones over the customer's orders;
    contact lists (Shopify customers export, LINE friend lists) add the LINE
    user id, opt-in, birthday, gender and tags, matched by e-mail, else phone.
    LINE link files (``line_links``) attach a LINE user id through the order
    number (to that order's customer), else the phone, else the e-mail; a
    link wins over a contact list, the latest import over older ones.

    ``touched`` names a TEMP table with a ``customer_id`` column: the
    customers whose orders were added or changed (for a changed order, its
    customer before and after).  Only their rows are recomputed (a customer
    left without orders disappears); every row depends only on the
    customer's own orders and on the contacts and links matching them, so the
    result is the full rebuild's.  Contacts or LINE links files change
    customers through e-mail and phone matches: call without ``touched``
    (everyone is recomputed).  The touched ids are also appended to
    ``refresh_touched``, which the refresh (:mod:`crm_core.pipeline`) reads to
    recompute only those customers' model rows; a full rebuild leaves a
    NULL row there instead (:data:`EVERYONE`: the refresh recomputes everyone).

    Returns
    -------
    dict
        ``customers``, ``orders_merged`` (orders beyond each customer's first)
        and ``customers_without_key`` (orders that had no identity key).
    """
    if touched is not None:
        t = quote_ident(touched)
        cur.execute("CREATE OR REPLACE TEMP TABLE rc_scope AS SELECT DISTINCT customer_id FROM " + t  # noqa: S608 - quote_ident
                    + " WHERE customer_id IS NOT NULL")
        n_touched = cur.execute("SELECT count(*) FROM rc_scope").fetchone()[0]
        if n_touched:
            cur.execute("DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM rc_scope)")
            cur.execute(_CUSTOMERS_SQL.replace("{orders}", _SCOPED_ORDERS))
            cur.execute("INSERT INTO refresh_touched SELECT customer_id FROM rc_scope")
        cur.execute("DROP TABLE temp.main.rc_scope")
        return _customer_counts(cur)
    cur.execute("DELETE FROM refresh_touched")
    cur.execute("INSERT INTO refresh_touched VALUES (NULL)")  # EVERYONE
    cur.execute("DELETE FROM customers")
    cur.execute(_CUSTOMERS_SQL.replace("{orders}", "orders"))
    return _customer_counts(cur)


def _customer_counts(cur: duckdb.DuckDBPyConnection) -> dict[str, int]:
    customers, orders, no_key = cur.execute(
        """
        SELECT (SELECT count(*) FROM customers),
               (SELECT count(*) FROM orders),
               (SELECT count(*) FROM orders WHERE customer_id LIKE 'X%')
        """
    ).fetchone()
    return {
        "customers": int(customers),
        "orders_merged": int(orders) - int(customers),
        "customers_without_key": int(no_key),
    }


def find_customer_id(store: Store, name: str) -> str:
    """The internal ``customer_id`` of a customer named by it or by the shop's own number.

    The shop's number is ``customers.customer_key`` (a generic file's mapped
    customer id, a Shopify customer ID).  Returns ``name`` unchanged when no
    shop number matches (the caller reports an unknown customer).

    Raises
    ------
    InputError
        When the shop's number belongs to customers of several sources.
    """
    name = str(name).strip()
    if store.scalar("SELECT count(*) FROM customers WHERE customer_id = ?", [name]):
        return name
    ids = [r[0] for r in store.fetchall("SELECT customer_id FROM customers WHERE customer_key = ? ORDER BY 1", [name])]
    if len(ids) > 1:
        raise InputError(
            f"顧客番号「{name}」のお客様が{len(ids)}人います（販路ごとに別の番号です）。"
            f"顧客ID（{', '.join(ids[:3])}）で指定してください。",
            "ambiguous customer key",
        )
    return ids[0] if ids else name


def rekey(store: Store, key: str) -> dict[str, int]:
    """Change the identity key and re-assign every order to its customer.

    Campaign recipients, their per-recipient results and issued unique coupon
    codes move to the new customer ids through the orders that link old and
    new ids (see :func:`carry_over`); when that is ambiguous nothing changes.

    Returns
    -------
    dict
        ``customers``, ``orders_merged``, ``customers_without_key`` and
        ``carried`` (rows of each customer-linked table that moved).

    Raises
    ------
    InputError
        For an unknown key, or when campaign recipients or coupon codes cannot
        be carried over unambiguously (the store is then unchanged).
    """
    if key not in IDENTITY_KEYS:
        raise InputError(f"顧客の識別キー「{key}」は使えません。", f"bad identity key {key}")
    with store.transaction() as cur:
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE rekey_map AS "
            "SELECT DISTINCT customer_id AS old_id, "
            "crm_customer_id(?, source, customer_key, email, phone, buyer_name, postcode, order_id) AS new_id "
            "FROM orders WHERE customer_id IS NOT NULL",
            [key],
        )
        try:
            carried = carry_over(cur, IDENTITY_KEYS[key])
            cur.execute(
                "UPDATE orders SET customer_id = crm_customer_id(?, source, customer_key, email, phone, buyer_name, postcode, order_id)",
                [key],
            )
        finally:
            cur.execute("DROP TABLE IF EXISTS temp.main.rekey_map")
        stats: dict = rebuild_customers(cur)
        cur.execute("DELETE FROM settings WHERE key = 'identity_key'")
        cur.execute("INSERT INTO settings VALUES ('identity_key', to_json(?::VARCHAR))", [key])
    stats["carried"] = carried
    return stats


def _existing(cur: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in cur.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = 'main'"
    ).fetchall()}


def carry_over(cur: duckdb.DuckDBPyConnection, key_label: str = "") -> dict[str, int]:
    """Move customer-linked rows from old to new customer ids (inside the rekey transaction).

    Reads the temp table ``rekey_map (old_id, new_id)``: every pair of ids
    that one order links.  ``campaign_recipients`` and ``campaign_events``
    rows of several old ids that become one customer are merged (results:
    delivered / opened / clicked if any of them was); ``coupon_codes`` keep
    every code, now under the new id.  Ids no order links stay as they are.

    Refused (:class:`InputError`) when an old id that a campaign or a code
    refers to splits into several new customers (which of them got the
    message or the code is unknown), or when old ids in different groups of
    one campaign (送らないグループ / A / B) would become one customer.

    Returns
    -------
    dict
        Rows moved per table: ``campaign_recipients``, ``coupon_codes``.
    """
    tables = _existing(cur)
    linked = [t for t in ("campaign_recipients", "coupon_codes") if t in tables]
    carried = {"campaign_recipients": 0, "coupon_codes": 0}
    if not linked:
        return carried
    split = "SELECT old_id FROM rekey_map GROUP BY old_id HAVING count(DISTINCT new_id) > 1"
    problems: list[str] = []
    if "campaign_recipients" in tables:
        n = cur.execute(
            "SELECT count(DISTINCT customer_id) FROM campaign_recipients WHERE customer_id IN (" + split + ")"  # noqa: S608 - constant
        ).fetchone()[0]
        if n:
            problems.append(f"施策の対象者{n:,}人が、それぞれ複数のお客様に分かれます")
        clash = cur.execute(
            """SELECT count(*) FROM (
                   SELECT r.campaign_id, coalesce(m.new_id, r.customer_id) AS cid
                   FROM campaign_recipients r LEFT JOIN rekey_map m ON m.old_id = r.customer_id
                   GROUP BY ALL HAVING count(DISTINCT (coalesce(r.variant, ''), r.holdout)) > 1)"""
        ).fetchone()[0]
        if clash:
            problems.append(
                f"同じ施策の別のグループ（配信するお客様と送らないグループなど）にいたお客様が、{clash:,}件で1人にまとまります"
            )
    if "coupon_codes" in tables:
        n = cur.execute(
            "SELECT count(*) FROM coupon_codes WHERE customer_id IN (" + split + ")"  # noqa: S608 - constant
        ).fetchone()[0]
        if n:
            problems.append(f"発行済みのクーポンコード{n:,}件の持ち主が、複数のお客様に分かれます")
    if problems:
        how = f"識別方法を「{key_label}」に変えると、" if key_label else "識別方法を変えると、"
        raise InputError(
            how + "・".join(problems) + "。どのお客様に引き継ぐか決められないため、変更を中止しました（データは変わっていません）。"
            "引き継ぎが不要な施策は「施策の効果」で削除してから、もう一度お試しください。",
            "rekey would split or merge campaign recipients / coupon holders ambiguously",
        )
    moved = "SELECT count(*) FROM {t} x JOIN rekey_map m ON m.old_id = x.customer_id WHERE m.new_id <> m.old_id"
    if "campaign_recipients" in tables:
        carried["campaign_recipients"] = int(cur.execute(moved.format(t="campaign_recipients")).fetchone()[0])
        cur.execute(
            """CREATE OR REPLACE TEMP TABLE rekey_recipients AS
               SELECT r.campaign_id, coalesce(m.new_id, r.customer_id) AS customer_id,
                      any_value(r.variant) AS variant, any_value(r.holdout) AS holdout
               FROM campaign_recipients r LEFT JOIN rekey_map m ON m.old_id = r.customer_id
               GROUP BY 1, 2"""
        )
        cur.execute("DELETE FROM campaign_recipients")
        cur.execute("INSERT INTO campaign_recipients SELECT campaign_id, customer_id, variant, holdout FROM rekey_recipients")
        cur.execute("DROP TABLE temp.main.rekey_recipients")
    if "campaign_events" in tables:
        cur.execute(
            """CREATE OR REPLACE TEMP TABLE rekey_events AS
               SELECT e.campaign_id, coalesce(m.new_id, e.customer_id) AS customer_id,
                      bool_or(e.delivered) AS delivered, bool_or(e.opened) AS opened, bool_or(e.clicked) AS clicked,
                      max(e.file_name) AS file_name, max(e.imported_at) AS imported_at
               FROM campaign_events e LEFT JOIN rekey_map m ON m.old_id = e.customer_id
               GROUP BY 1, 2"""
        )
        cur.execute("DELETE FROM campaign_events")
        cur.execute(
            "INSERT INTO campaign_events SELECT campaign_id, customer_id, delivered, opened, clicked, file_name, imported_at "
            "FROM rekey_events"
        )
        cur.execute("DROP TABLE temp.main.rekey_events")
    if "coupon_codes" in tables:
        carried["coupon_codes"] = int(cur.execute(moved.format(t="coupon_codes")).fetchone()[0])
        cur.execute(
            "UPDATE coupon_codes SET customer_id = m.new_id FROM rekey_map m "
            "WHERE coupon_codes.customer_id = m.old_id AND m.new_id <> m.old_id"
        )
    return carried


def record_line_reach(cur: duckdb.DuckDBPyConnection, import_id: int | None, file_names: str, at: object) -> None:
    """Append how many customers have a LINE user id now (one row per import batch)."""
    cur.execute(
        "INSERT INTO line_reach SELECT ?, ?, ?, count(*), count(*) FILTER (WHERE line_user_id IS NOT NULL) FROM customers",
        [import_id, at, file_names],
    )
