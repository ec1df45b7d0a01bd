"""What a message is rendered with: the shop's profile, the campaign, one customer's fields from the customer model."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import quote

from crm_core import jp
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging.placeholders import PLACEHOLDERS, URL_FIELDS, one_line, tag_links

SETTING_SHOP = "message_shop_profile"
SETTING_SAMPLE_IDENTITY = "sample_shop_identity"
"""The fictional sample shop's identity as it was saved (to recognise it later; never real data)."""


# -- context: shop, campaign, customer -------------------------------------------------
@dataclass
class ShopProfile:
    """Who sends (ショップ情報): shown in every e-mail (特定電子メール法) and used to build links.

    ``company_name`` is the sender's legal name (運営会社), ``sender_name`` the
    name in the inbox's From (default: the shop name).  ``unsubscribe_url``
    (https) and/or ``unsubscribe_mailto`` (an address) receive opt-outs;
    ``unsubscribe_one_click`` ("1") says the URL itself stops mail on an RFC 8058
    POST (only then do mails announce one-click opt-out).
    ``shop_url`` is the shop's page on Rakuten (or its own site).
    ``platform`` is ``"rakuten"`` (links must stay on Rakuten), ``"shopify"``
    or ``"own"``.  ``product_url_pattern`` turns a product id into a link,
    e.g. ``https://item.rakuten.co.jp/myshop/{product_id}/``.

    ``origin`` is not saved: :func:`shop_profile` sets it to ``"sample"`` when
    the profile still holds the fictional sample shop's identity.
    """

    shop_name: str = ""
    company_name: str = ""
    sender_name: str = ""
    shop_address: str = ""
    shop_contact: str = ""
    shop_url: str = ""
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""
    unsubscribe_one_click: str = ""
    product_url_pattern: str = ""
    image_url: str = ""
    platform: str = "rakuten"
    origin: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ShopProfile:
        names = {f.name for f in fields(cls)} - {"origin"}
        return cls(**{k: str(v or "") for k, v in (data or {}).items() if k in names})

    def to_dict(self) -> dict[str, str]:
        """What is saved (``origin`` is derived, never saved)."""
        d = asdict(self)
        d.pop("origin", None)
        return d

    @property
    def one_click(self) -> bool:
        """The opt-out URL accepts RFC 8058 one-click POSTs."""
        return bool(self.unsubscribe_one_click) and self.unsubscribe_url.startswith("https://")

    def from_name(self) -> str:
        """The display name of the e-mail's From."""
        return self.sender_name or self.shop_name

    def legal_name(self) -> str:
        """The sender's name the law asks every advertising e-mail to show."""
        return self.company_name or self.sender_name or self.shop_name

    def missing(self) -> list[str]:
        """Japanese names of the display items still empty (特定電子メール法)."""
        out = []
        if not self.shop_name:
            out.append("ショップ名")
        if not (self.company_name or self.sender_name):
            out.append("運営会社")
        if not self.shop_address:
            out.append("住所")
        if not self.shop_contact:
            out.append("お問い合わせ先")
        if not (self.unsubscribe_url or self.unsubscribe_mailto):
            out.append("配信停止のURLまたはメールアドレス")
        return out


IDENTITY_FIELDS = ("shop_name", "company_name", "sender_name", "shop_address", "shop_contact", "shop_url",
                   "unsubscribe_url", "unsubscribe_mailto", "product_url_pattern", "image_url")
"""Fields that say who the shop is (checked against the sample shop's fictitious identity)."""
SAMPLE = "sample"


def _sample_fields(store: Store, profile: ShopProfile) -> list[str]:
    """Fields of ``profile`` that still hold the fictional sample shop's values."""
    sample = store.get_setting(SETTING_SAMPLE_IDENTITY) or {}
    return [f for f in IDENTITY_FIELDS if getattr(profile, f) and getattr(profile, f) == str(sample.get(f) or "")]


def shop_profile(store: Store) -> ShopProfile:
    """The shop profile saved in the store's settings (never secrets).

    While the store shows the fictional sample shop, its fictitious identity
    is returned with ``origin == "sample"`` (the lint refuses it).  Once the
    sample is gone, fields still holding the sample's values are returned
    empty, so 「ことのはコスメ（サンプル）」 and its made-up address never reach
    a real shop's mail, whatever removed the sample.
    """
    profile = ShopProfile.from_dict(store.get_setting(SETTING_SHOP, {}))
    leftover = _sample_fields(store, profile)
    if leftover:
        profile.origin = SAMPLE
        if not store.get_setting("sample_loaded", False):
            for name in leftover:
                setattr(profile, name, "")
    return profile


def save_shop_profile(store: Store, profile: ShopProfile, *, sample: bool = False) -> None:
    """Save the shop profile; links must be https (or http), the opt-out address an e-mail address.

    ``sample=True`` records the profile as the fictional sample shop's identity.
    """
    labels = {"shop_url": "ショップのURL", "unsubscribe_url": "配信停止のURL", "product_url_pattern": "商品ページのURL",
              "image_url": "カードの標準画像URL"}
    for name, label in labels.items():
        value = getattr(profile, name)
        if value and not re.match(r"^https?://", value):
            raise InputError(f"「{label}」は https:// から始まるURLにしてください。", f"bad url in {name}")
    if profile.unsubscribe_mailto and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", profile.unsubscribe_mailto):
        raise InputError("配信停止を受け付けるメールアドレスの形式が正しくありません。", "bad unsubscribe_mailto")
    if profile.platform not in ("rakuten", "shopify", "own"):
        raise InputError("販売チャネルは「楽天」「Shopify」「自社サイト」から選んでください。", "bad platform")
    cleaned = ShopProfile.from_dict({k: one_line(v) for k, v in profile.to_dict().items()})
    store.set_setting(SETTING_SHOP, cleaned.to_dict())
    if sample:
        store.set_setting(SETTING_SAMPLE_IDENTITY, cleaned.to_dict())


def forget_sample_identity(store: Store) -> bool:
    """Remove the sample shop's fictitious values from the saved profile (when the sample is deleted).

    Values the marketer entered are kept.  Returns True when something was removed.
    """
    profile = ShopProfile.from_dict(store.get_setting(SETTING_SHOP, {}))
    leftover = _sample_fields(store, profile)
    if not leftover:
        return False
    for name in leftover:
        setattr(profile, name, "")
    if any(getattr(profile, f) for f in IDENTITY_FIELDS):
        store.set_setting(SETTING_SHOP, profile.to_dict())
    else:  # nothing of the marketer's own identity left: no profile at all
        store.delete_setting(SETTING_SHOP)
    return True


@dataclass
class Campaign:
    """Per-send values the marketer enters (sale, coupon, points, links)."""

    utm_campaign: str = ""
    sale_name: str = ""
    sale_start: str = ""
    sale_end: str = ""
    coupon_code: str = ""
    coupon_value: str = ""
    coupon_expiry: str = ""
    coupon_min_purchase: str = ""
    coupon_url: str = ""
    points: str = ""
    points_expire_on: str = ""
    tracking_url: str = ""
    review_url: str = ""
    image_url: str = ""


def _yen(value: Any) -> str:
    """¥1,234 as crm_core.jp writes it, or "" (an empty placeholder) when missing."""
    return "" if jp.missing(value) else jp.yen(value)


def _jdate(value: Any) -> str:
    if value is None or value != value:
        return ""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return f"{value.year}年{value.month}月{value.day}日"


def _rank_gap(c: dict[str, Any]) -> str:
    """「¥3,200」 for ranks by spend, 「2回のご購入」 for ranks by number of orders, else ""."""
    yen = _yen(c.get("gap_to_next_rank"))
    if yen:
        return yen
    orders = c.get("orders_to_next_rank")
    if orders is None or orders != orders:  # NaN
        return ""
    return f"{int(orders):,}回のご購入"


def customer_fields(store: Store, customer_id: str) -> dict[str, Any]:
    """The raw values of one customer used by placeholders.

    Reads ``customer_model`` (name, rank, next_rank, gap_to_next_rank, orders_to_next_rank,
    last_product_id, last_product_name, expected_next_order_date,
    line_user_id, email, email_opt_in) and the best row of
    ``customer_recommendations`` (product_id, product_name, reason); the
    recommended product's price is the median ``order_lines.unit_price``.

    Raises
    ------
    InputError
        If the customer model is missing or the customer is unknown.
    """
    if not store.has_table("customer_model"):
        raise InputError("顧客モデルがまだありません。「データ取込」で注文を取り込むと作成されます。", "no customer_model")
    from crm_core.ingest.identity import find_customer_id

    customer_id = find_customer_id(store, customer_id)  # the shop's own number works too
    cur = store.execute("SELECT * FROM customer_model WHERE customer_id = ?", [customer_id])
    row = cur.fetchone()
    if row is None:
        raise InputError(f"顧客ID「{customer_id}」のお客様が見つかりません。", "unknown customer")
    out = dict(zip([d[0] for d in cur.description], row))
    if store.has_table("customer_recommendations"):
        rec = store.fetchone(
            "SELECT product_id, product_name, reason FROM customer_recommendations WHERE customer_id = ? "
            "ORDER BY score DESC, product_id LIMIT 1",
            [customer_id],
        )
        if rec:
            out["rec_product_id"], out["rec_product_name"], out["rec_reason"] = rec
            if store.has_table("order_lines"):
                out["rec_price"] = store.scalar("SELECT median(unit_price) FROM order_lines WHERE product_id = ?", [rec[0]])
    return out


def _product_url(shop: ShopProfile, product_id: Any) -> str:
    if not product_id or not shop.product_url_pattern:
        return shop.shop_url
    return shop.product_url_pattern.replace("{product_id}", quote(str(product_id), safe=""))


_URL_FALLBACKS = {"coupon_url": "shop_url", "review_url": "last_product_url", "last_product_url": "shop_url", "recommended_product_url": "shop_url"}
"""Links that fall back to another link (and finally to the shop's URL)."""


class Context(dict):
    """Placeholder values by key (a plain ``dict`` to the renderer) and, in ``missing``, the keys that had no value."""

    missing: frozenset[str] = frozenset()


def build_context(
    customer: Mapping[str, Any] | None,
    campaign: Campaign | None = None,
    shop: ShopProfile | None = None,
    channel: str = "line",
    template_key: str = "",
) -> Context:
    """Placeholder values for one customer: every key of :data:`PLACEHOLDERS`.

    Missing values get the field's fallback (``name`` → 「お客様」) and are
    listed in ``Context.missing`` (a link that fell back to another link
    counts as missing); links carry the channel's UTM parameters,
    ``utm_campaign`` being the campaign's or the template key.
    """
    c = dict(customer or {})
    campaign = campaign or Campaign()
    shop = shop or ShopProfile()
    name = str(c.get("name") or "").strip()
    raw: dict[str, Any] = {
        "name": f"{name}様" if name else "",
        "rank": c.get("rank"),
        "next_rank": c.get("next_rank"),
        "gap_to_next_rank": _rank_gap(c),
        "last_product": c.get("last_product_name"),
        "last_product_url": _product_url(shop, c.get("last_product_id")),
        "recommended_product": c.get("rec_product_name"),
        "recommended_product_url": _product_url(shop, c.get("rec_product_id")),
        "recommended_price": _yen(c.get("rec_price")),
        "recommend_reason": c.get("rec_reason"),
        "next_order_date": _jdate(c.get("expected_next_order_date")),
        "shop_name": shop.shop_name,
        "shop_url": shop.shop_url,
        "sender_name": shop.from_name(),
        "company_name": shop.company_name or shop.sender_name,
        "shop_address": shop.shop_address,
        "shop_contact": shop.shop_contact,
        "unsubscribe_url": shop.unsubscribe_url or shop.unsubscribe_mailto,
        "image_url": campaign.image_url or shop.image_url,
    }
    for f in fields(Campaign):
        if f.name not in ("utm_campaign", "image_url"):
            raw[f.name] = getattr(campaign, f.name)
    missing = frozenset(k for k in PLACEHOLDERS if not one_line(_text(raw.get(k))))
    for key, other in _URL_FALLBACKS.items():
        if not raw.get(key):
            raw[key] = raw.get(other) or shop.shop_url
    utm_campaign = campaign.utm_campaign or template_key
    out = Context()
    for key, ph in PLACEHOLDERS.items():
        text = one_line(_text(raw.get(key)))
        if key in URL_FIELDS and text and key not in ("unsubscribe_url", "image_url"):
            text = tag_links(text, channel, utm_campaign)
        out[key] = text or ph.fallback
    out.missing = missing
    return out


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)
