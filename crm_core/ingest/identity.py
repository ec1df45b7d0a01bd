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

from crm_core.db import Store
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


def rebuild_customers(cur: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Recreate ``customers`` from ``orders`` and ``contacts`` (inside the caller's transaction).

    Profile values are the latest non-empty ones over the customer's orders;
    contact lists (Shopify customers export, LINE friend lists) add the LINE
    user id, opt-in, birthday, gender and tags, matched by e-mail, else phone.

    Returns
    -------
    dict
        ``customers``, ``orders_merged`` (orders beyond each customer's first)
        and ``customers_without_key`` (orders that had no identity key).
    """
    cur.execute("DELETE FROM customers")
    cur.execute(
        """
        INSERT INTO customers BY NAME
        WITH prof AS (
            SELECT customer_id,
                   CASE WHEN count(DISTINCT source) > 1 THEN 'multi' ELSE any_value(source) END AS source,
                   arg_max(buyer_name, ordered_at) AS name,
                   arg_max(buyer_name_kana, ordered_at) AS name_kana,
                   arg_max(email, ordered_at) AS email,
                   arg_max(phone, ordered_at) AS phone,
                   arg_max(gender, ordered_at) AS gender,
                   arg_max(birthday, ordered_at) AS birthday,
                   arg_max(prefecture, ordered_at) AS prefecture,
                   arg_max(email_opt_in, ordered_at) AS email_opt_in,
                   arg_max(customer_key, ordered_at) AS customer_key,
                   count(*) AS orders_merged,
                   min(ordered_at) AS first_seen_at
            FROM orders GROUP BY customer_id
        ),
        emails AS (SELECT DISTINCT customer_id, lower(email) AS email FROM orders WHERE email IS NOT NULL),
        phones AS (SELECT DISTINCT customer_id, phone FROM orders WHERE phone IS NOT NULL),
        matched AS (
            SELECT e.customer_id, c.* FROM contacts c JOIN emails e ON c.email = e.email
            UNION ALL BY NAME
            SELECT p.customer_id, c.* FROM contacts c JOIN phones p ON c.phone = p.phone WHERE c.email IS NULL
        ),
        cagg AS (
            SELECT customer_id,
                   arg_max(line_user_id, import_id) AS line_user_id,
                   arg_max(email_opt_in, import_id) AS email_opt_in,
                   arg_max(birthday, import_id) AS birthday,
                   arg_max(gender, import_id) AS gender,
                   arg_max(prefecture, import_id) AS prefecture,
                   arg_max(tags, import_id) AS tags,
                   arg_max(name, import_id) AS name,
                   arg_max(customer_key, import_id) AS customer_key
            FROM matched GROUP BY customer_id
        )
        SELECT p.customer_id, p.source,
               coalesce(p.name, c.name) AS name,
               p.name_kana, p.email, p.phone,
               coalesce(p.gender, c.gender) AS gender,
               coalesce(p.birthday, c.birthday) AS birthday,
               coalesce(p.prefecture, c.prefecture) AS prefecture,
               coalesce(c.email_opt_in, p.email_opt_in, FALSE) AS email_opt_in,
               c.line_user_id, c.tags,
               p.orders_merged, p.first_seen_at,
               coalesce(p.customer_key, c.customer_key) AS customer_key
        FROM prof p LEFT JOIN cagg c USING (customer_id)
        """
    )
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

    Raises
    ------
    InputError
        For an unknown key.
    """
    if key not in IDENTITY_KEYS:
        raise InputError(f"顧客の識別キー「{key}」は使えません。", f"bad identity key {key}")
    with store.transaction() as cur:
        cur.execute(
            "UPDATE orders SET customer_id = crm_customer_id(?, source, customer_key, email, phone, buyer_name, postcode, order_id)",
            [key],
        )
        stats = rebuild_customers(cur)
        cur.execute("DELETE FROM settings WHERE key = 'identity_key'")
        cur.execute("INSERT INTO settings VALUES ('identity_key', to_json(?::VARCHAR))", [key])
    return stats
