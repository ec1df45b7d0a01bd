"""The placeholders a message can use (Japanese names and samples), and the link helpers: URLs, UTM tags, carrier hosts, LINE length."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit


# -- placeholders -------------------------------------------------------------
@dataclass(frozen=True)
class Placeholder:
    """One field a template may use: ``{{ key }}``."""

    key: str
    label: str
    group: str
    fallback: str
    example: str


_P = Placeholder
PLACEHOLDERS: dict[str, Placeholder] = {
    p.key: p
    for p in [
        _P("name", "お名前（様付き）", "お客様", "お客様", "山田 花子様"),
        _P("rank", "会員ランク", "お客様", "会員", "ゴールド"),
        _P("next_rank", "次のランク", "お客様", "次のランク", "プラチナ"),
        _P("gap_to_next_rank", "次のランクまでの金額（回数で決まるランクでは回数）", "お客様", "あと少し", "¥3,000"),
        _P("last_product", "前回ご購入の商品", "お客様", "ご購入いただいた商品", "薬用美白美容液 30mL"),
        _P("last_product_url", "前回ご購入の商品のURL", "お客様", "", "https://item.rakuten.co.jp/shop/p001/"),
        _P("recommended_product", "おすすめ商品", "お客様", "当店のおすすめ商品", "保湿クリーム 50g"),
        _P("recommended_product_url", "おすすめ商品のURL", "お客様", "", "https://item.rakuten.co.jp/shop/p002/"),
        _P("recommended_price", "おすすめ商品の価格", "お客様", "", "¥2,980"),
        _P("recommend_reason", "おすすめの理由", "お客様", "", "一緒によく購入されている商品です"),
        _P("next_order_date", "次回購入の予測日", "お客様", "そろそろ", "2026年12月1日"),
        _P("points", "ポイント数", "キャンペーン", "ポイント", "500"),
        _P("points_expire_on", "ポイントの有効期限", "キャンペーン", "まもなく", "2026年12月31日"),
        _P("coupon_code", "クーポンコード", "クーポン", "", "AB3K7MPQRT"),
        _P("coupon_value", "クーポンの割引", "クーポン", "特別", "10%OFF"),
        _P("coupon_expiry", "クーポンの有効期限", "クーポン", "期間限定", "2026年12月31日 23:59"),
        _P("coupon_min_purchase", "クーポンの利用条件", "クーポン", "", "¥3,000以上のお買い物で"),
        _P("coupon_url", "クーポン取得ページのURL", "クーポン", "", "https://coupon.rakuten.co.jp/getCoupon?..."),
        _P("sale_name", "セール名", "キャンペーン", "セール", "楽天スーパーSALE"),
        _P("sale_start", "セール開始日時", "キャンペーン", "まもなく", "12月4日 20:00"),
        _P("sale_end", "セール終了日時", "キャンペーン", "期間中", "12月11日 01:59"),
        _P("tracking_url", "配送状況の確認URL", "キャンペーン", "", "https://toi.kuronekoyamato.co.jp/..."),
        _P("review_url", "レビュー投稿ページのURL", "キャンペーン", "", "https://review.rakuten.co.jp/..."),
        _P("image_url", "カード画像のURL", "キャンペーン", "", "https://image.rakuten.co.jp/shop/cabinet/main.jpg"),
        _P("shop_name", "ショップ名", "ショップ", "当店", "ナチュラルコスメ本舗"),
        _P("shop_url", "ショップのURL", "ショップ", "", "https://www.rakuten.co.jp/shop/"),
        _P("sender_name", "送信者名（メールの差出人名）", "ショップ", "", "ナチュラルコスメ本舗"),
        _P("company_name", "運営会社（送信者の名称）", "ショップ", "", "株式会社ナチュラルコスメ"),
        _P("shop_address", "送信者の住所", "ショップ", "", "〒150-0001 東京都渋谷区神宮前1-2-3"),
        _P("shop_contact", "お問い合わせ先", "ショップ", "", "support@example.jp / 03-1234-5678"),
        _P("unsubscribe_url", "配信停止のURL（なければ受付メールアドレス）", "ショップ", "", "https://example.jp/unsubscribe"),
    ]
}
"""The fixed list of fields a template may use, with Japanese labels and fallbacks."""

URL_FIELDS = frozenset(k for k in PLACEHOLDERS if k.endswith("_url"))
UTM = {"line": ("line", "message"), "email": ("email", "email"), "rmail": ("rmail", "email")}
"""utm_source and utm_medium per channel (the insert is paper: no UTM)."""

# Links that must stay as they are: carriers' tracking pages (no UTM, allowed in Rakuten mails).
CARRIER_HOSTS = (
    "toi.kuronekoyamato.co.jp",
    "k2k.sagawa-exp.co.jp",
    "trackings.post.japanpost.jp",
    "tracking.post.japanpost.jp",
    "track.seino.co.jp",
    "www2.fukutsu.co.jp",
)
URL_RE = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


def _trim_url(url: str) -> str:
    """Drop trailing punctuation that belongs to the sentence, not the link."""
    while url and url[-1] in ".,;:!?)'":
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def find_urls(text: str) -> list[str]:
    """The http(s) links in a text, in order."""
    return [_trim_url(m.group(0)) for m in URL_RE.finditer(text or "")]


def is_carrier_url(url: str) -> bool:
    """True for a delivery company's tracking page."""
    host = (urlsplit(url).hostname or "").lower()
    return host in CARRIER_HOSTS


def add_utm(url: str, source: str, medium: str, campaign: str) -> str:
    """The URL with ``utm_source``, ``utm_medium`` and ``utm_campaign`` added.

    Existing query parameters (and UTM values already present) are kept;
    tracking pages of delivery companies are returned unchanged.
    """
    if not url or is_carrier_url(url):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    for key, value in (("utm_source", source), ("utm_medium", medium), ("utm_campaign", campaign)):
        if key not in present and value:
            query.append((key, value))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


def tag_links(text: str, channel: str, campaign: str, skip: Iterable[str] = ()) -> str:
    """Every link in ``text`` with the channel's UTM parameters (FACTS.md §7).

    Links in ``skip`` (the opt-out link) and carriers' tracking pages stay as they are.
    """
    skip = {s for s in skip if s}
    if channel not in UTM:
        return text
    source, medium = UTM[channel]

    def sub(m: re.Match[str]) -> str:
        raw = m.group(0)
        url = _trim_url(raw)
        if url in skip:
            return raw
        return add_utm(url, source, medium, campaign) + raw[len(url):]

    return URL_RE.sub(sub, text)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as LINE counts it (🍎 counts 2)."""
    return len(text.encode("utf-16-le")) // 2


MAX_VALUE_CHARS = 2_000
"""A placeholder value is cut to this many characters (a 100 KB "name" is data gone wrong, not a name)."""
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(value: str) -> str:
    """A placeholder value on one line: line breaks (CR, LF, U+2028 ...) and control characters become a space.

    Customer data is never allowed to add lines to a message (or a header
    such as the subject) and is cut to :data:`MAX_VALUE_CHARS`.
    """
    text = _LINE_BREAKS.sub(" ", value).strip()
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
