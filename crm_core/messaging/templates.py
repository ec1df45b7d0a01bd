"""Message templates: presets as data, placeholders, sandboxed rendering, UTM links.

A template is one message for one scenario (FACTS.md §7) in every channel:
LINE (text bubbles plus an optional Flex card), e-mail (subject, preheader,
body, footer), R-Mail (text/HTML to paste into RMS) and package-insert copy
(同梱物).  Presets live in ``data/templates/presets.toml``; a marketer's edits
are stored in the table ``message_templates`` and override the preset with
the same key.

Placeholders are ``{{ name }}``-style fields from the fixed list
:data:`PLACEHOLDERS`; every field has a Japanese fallback for missing values
(``name`` → 「お客様」).  Rendering is sandboxed:

* the template is parsed and only a small set of constructs is accepted
  (text, ``{{ field }}``, ``{% if %}/{% else %}``, comparisons, ``~`` and the
  ``default`` filter); loops, macros, includes, attribute access, calls and
  arithmetic are refused with a Japanese message;
* it runs in a :class:`jinja2.sandbox.SandboxedEnvironment` that allows no
  attribute access, no calls and no operators, with only the placeholder
  values (plain strings) in its context;
* customer values are data, never template source: a name such as
  ``{{7*7}}`` renders literally, and the e-mail HTML is produced by a trusted
  layout with autoescape on, so ``<script>`` arrives as ``&lt;script&gt;``.

Unknown placeholders render empty and are reported by :func:`analyse` (the
compliance lint turns them into findings).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from crm_core import clock
from crm_core.db import Store
from crm_core.errors import InputError

PRESETS_PATH = Path(__file__).resolve().parents[2] / "data" / "templates" / "presets.toml"
TABLE = "message_templates"
SETTING_SHOP = "message_shop_profile"
SETTING_SAMPLE_IDENTITY = "sample_shop_identity"
"""The fictional sample shop's identity as it was saved (to recognise it later; never real data)."""
CHANNELS = ("line", "email", "rmail", "insert")
CHANNEL_LABELS = {"line": "LINE", "email": "メール", "rmail": "R-Mail（楽天メルマガ）", "insert": "同梱物"}
LINE_BUBBLE_SEPARATOR = "---"
MAX_SOURCE_CHARS = 20_000
MAX_VALUE_CHARS = 2_000
"""A placeholder value is cut to this many characters (a 100 KB "name" is data gone wrong, not a name)."""
MAX_OUTPUT_CHARS = 200_000
"""A rendered text longer than this is refused (LINE takes 5 × 5,000; no mail needs more)."""
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


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


# -- the sandbox ----------------------------------------------------------------
_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.If,
    nodes.Not, nodes.And, nodes.Or, nodes.Compare, nodes.Operand, nodes.CondExpr, nodes.Concat,
)
_ALLOWED_FILTERS = frozenset({"default"})


class _MessageSandbox(SandboxedEnvironment):
    """A sandbox with no attribute access, no calls and no operators."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:  # noqa: ARG002
        return False

    def is_safe_callable(self, obj: Any) -> bool:  # noqa: ARG002
        return False

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:  # noqa: ARG002
        raise SecurityError("operators are not allowed in message templates")

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:  # noqa: ARG002
        raise SecurityError("operators are not allowed in message templates")


def _sandbox() -> _MessageSandbox:
    env = _MessageSandbox(autoescape=False, undefined=jinja2.Undefined, keep_trailing_newline=True)
    env.globals.clear()
    env.filters = {k: v for k, v in env.filters.items() if k in _ALLOWED_FILTERS}
    env.tests = {k: env.tests[k] for k in ("defined", "undefined", "none") if k in env.tests}
    return env


_ENV = _sandbox()


@dataclass
class TemplateCheck:
    """What :func:`analyse` found in one template text."""

    names: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def one_line(value: str) -> str:
    """A placeholder value on one line: line breaks (CR, LF, U+2028 ...) and control characters become a space.

    Customer data is never allowed to add lines to a message (or a header
    such as the subject) and is cut to :data:`MAX_VALUE_CHARS`.
    """
    text = _LINE_BREAKS.sub(" ", value).strip()
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _too_deep() -> InputError:
    return InputError("テンプレートの入れ子（{% if %} や括弧）が深すぎます。入れ子を減らしてください。", "template nesting too deep")


def _parse(source: str) -> nodes.Template:
    if len(source) > MAX_SOURCE_CHARS:
        raise InputError(f"テンプレートが長すぎます（{len(source):,}文字）。{MAX_SOURCE_CHARS:,}文字以内にしてください。", "template too long")
    try:
        return _ENV.parse(source)
    except (RecursionError, MemoryError):
        raise _too_deep() from None
    except TemplateSyntaxError as exc:
        raise InputError(
            f"テンプレートの{exc.lineno}行目の書き方に誤りがあります。差し込み項目は {{{{ name }}}} のように、"
            "条件は {% if coupon_code %}…{% endif %} のように書いてください。",
            f"template syntax: {exc.message}",
        ) from None


def analyse(source: str) -> TemplateCheck:
    """Placeholders used in a template text, unknown ones, and refused constructs.

    Raises
    ------
    InputError
        When the text is not a valid template (with the line number).
    """
    check = TemplateCheck()
    tree = _parse(source or "")
    try:
        for node in tree.find_all(nodes.Node):
            if not isinstance(node, _ALLOWED_NODES) and not (isinstance(node, nodes.Filter) and node.name in _ALLOWED_FILTERS):
                what = node.name if isinstance(node, nodes.Filter) else type(node).__name__
                check.problems.append(what)
            if isinstance(node, nodes.Name):
                check.names.add(node.name)
    except RecursionError:
        raise _too_deep() from None
    check.unknown = {n for n in check.names if n not in PLACEHOLDERS}
    return check


def render_string(source: str, context: Mapping[str, str]) -> str:
    """Render one template text with the placeholder values (sandboxed).

    Only keys of :data:`PLACEHOLDERS` reach the template, each on one line
    (:func:`one_line`); unknown names render empty.

    Raises
    ------
    InputError
        For syntax errors and refused constructs (loops, calls, arithmetic,
        attribute access ...), nesting too deep, or an output longer than
        :data:`MAX_OUTPUT_CHARS`.
    """
    if not source:
        return ""
    check = analyse(source)
    if check.problems:
        raise InputError(
            "テンプレートで使えない書き方が含まれています（" + "、".join(sorted(set(check.problems))) + "）。"
            "使えるのは差し込み項目 {{ 項目 }}、{% if 項目 %}…{% else %}…{% endif %}、default だけです。",
            "refused template constructs: " + ",".join(sorted(set(check.problems))),
        )
    values = {k: one_line(str(context.get(k, "") or "")) for k in PLACEHOLDERS}
    out: list[str] = []
    size = 0
    try:
        for chunk in _ENV.from_string(source).generate(values):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise InputError(
                    f"差し込んだ結果が長すぎます（{MAX_OUTPUT_CHARS:,}文字を超えました）。テンプレートか差し込む内容を短くしてください。",
                    "rendered template too long",
                )
            out.append(chunk)
    except SecurityError as exc:
        raise InputError("テンプレートで計算や関数の呼び出しはできません。差し込み項目だけを使ってください。", f"sandbox: {exc}") from None
    except (RecursionError, MemoryError, SyntaxError):
        raise _too_deep() from None
    return "".join(out)


# -- templates as data ------------------------------------------------------------
@dataclass
class Card:
    """A LINE Flex bubble (and the matching block in the e-mail HTML)."""

    title: str = ""
    price: str = ""
    text: str = ""
    image_url: str = ""
    button_label: str = ""
    button_url: str = ""
    alt_text: str = ""


@dataclass
class Template:
    """One message in all channels; every text may use placeholders."""

    key: str
    label: str
    scenario: str
    description: str = ""
    line_text: str = ""
    card: Card | None = None
    email_subject: str = ""
    email_preheader: str = ""
    email_body: str = ""
    email_footer: str = ""
    rmail_footer: str = ""
    insert_text: str = ""
    fit: list[dict[str, Any]] = field(default_factory=list)
    fit_label: str = ""
    builtin: bool = True
    edited: bool = False

    def texts(self) -> dict[str, str]:
        """Every template text by a Japanese part name (for checks)."""
        out = {
            "LINE本文": self.line_text, "件名": self.email_subject, "プリヘッダー": self.email_preheader,
            "メール本文": self.email_body, "メールフッター": self.email_footer, "R-Mailフッター": self.rmail_footer,
            "同梱物": self.insert_text,
        }
        if self.card:
            for f in fields(Card):
                out[f"カード:{f.name}"] = getattr(self.card, f.name)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("builtin", None)
        d.pop("edited", None)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], shared: Mapping[str, str] | None = None, builtin: bool = True) -> Template:
        shared = shared or {}
        card = data.get("card")
        known = {f.name for f in fields(cls)} - {"card", "builtin", "edited"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs.setdefault("email_footer", shared.get("email_footer", ""))
        kwargs.setdefault("rmail_footer", shared.get("rmail_footer", ""))
        card_obj = Card(**{k: str(v) for k, v in card.items() if k in {f.name for f in fields(Card)}}) if card else None
        return cls(card=card_obj, builtin=builtin, **kwargs)


def channel_texts(template: Template, channel: str) -> list[str]:
    """The template texts a channel uses (for the placeholders a rendered message depends on)."""
    card = [getattr(template.card, f.name) for f in fields(Card)] if template.card else []
    if channel == "line":
        return [template.line_text, *card]
    if channel == "insert":
        return [template.insert_text]
    footer = template.email_footer if channel == "email" else template.rmail_footer
    return [template.email_subject, template.email_preheader, template.email_body, footer, *card]


def load_presets(path: Path | None = None) -> dict[str, Template]:
    """The preset templates from ``data/templates/presets.toml``, by key."""
    with open(path or PRESETS_PATH, "rb") as fh:
        data = tomllib.load(fh)
    shared = data.get("shared", {})
    return {t["key"]: Template.from_dict(t, shared) for t in data.get("template", [])}


def ensure_tables(store: Store) -> None:
    """Create the table of edited templates when missing."""
    store.execute(
        "CREATE TABLE IF NOT EXISTS message_templates (key VARCHAR PRIMARY KEY, data JSON, updated_at TIMESTAMP)"
    )


def list_templates(store: Store | None = None) -> list[Template]:
    """All templates: presets, with the marketer's saved edits applied, then custom ones."""
    presets = load_presets()
    if store is None:
        return list(presets.values())
    ensure_tables(store)
    saved = {k: json.loads(v) for k, v in store.fetchall("SELECT key, data FROM message_templates ORDER BY key")}
    out = []
    for key, tpl in presets.items():
        if key in saved:
            data = saved.pop(key)
            data.setdefault("fit", tpl.fit)  # edits saved before templates declared their audience
            data.setdefault("fit_label", tpl.fit_label)
            tpl = Template.from_dict(data, builtin=True)
            tpl.edited = True
        out.append(tpl)
    out.extend(Template.from_dict(d, builtin=False) for d in saved.values())
    return out


def get_template(store: Store | None, key: str) -> Template:
    """One template by key.

    Raises
    ------
    InputError
        If there is no such template.
    """
    for tpl in list_templates(store):
        if tpl.key == key:
            return tpl
    names = "、".join(t.key for t in list_templates(store))
    raise InputError(f"テンプレート「{key}」はありません。使えるテンプレート: {names}", f"unknown template {key!r}")


def save_template(store: Store, template: Template) -> None:
    """Store an edited (or new) template; every text must parse."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", template.key or ""):
        raise InputError("テンプレートのキーは半角英数字・ハイフン・アンダースコアで64文字以内にしてください。", "bad template key")
    for part, text in template.texts().items():
        try:
            analyse(text)
        except InputError as exc:
            raise InputError(f"{part}: {exc.message}", exc.detail) from None
    ensure_tables(store)
    with store.transaction() as cur:
        cur.execute("DELETE FROM message_templates WHERE key = ?", [template.key])
        cur.execute(
            "INSERT INTO message_templates VALUES (?, ?, ?)",
            [template.key, json.dumps(template.to_dict(), ensure_ascii=False), clock.now().replace(microsecond=0)],
        )


def reset_template(store: Store, key: str) -> None:
    """Forget the edits of a template (presets come back)."""
    ensure_tables(store)
    store.execute("DELETE FROM message_templates WHERE key = ?", [key])


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
    store.set_setting(SETTING_SHOP, profile.to_dict())
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
    if value is None or value != value:  # NaN
        return ""
    return f"¥{round(float(value)):,}"


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


# -- rendering per channel ------------------------------------------------------------
@dataclass
class Rendered:
    """A template rendered for one customer and channel.

    ``line_messages`` is the ``messages`` array LINE receives; e-mail and
    R-Mail fill ``subject``, ``preheader``, ``text`` and ``html``; the insert
    fills ``text``.
    """

    template_key: str
    channel: str
    line_messages: list[dict[str, Any]] = field(default_factory=list)
    subject: str = ""
    preheader: str = ""
    text: str = ""
    html: str = ""
    unsubscribe_url: str = ""
    unknown_placeholders: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)
    """Placeholders the channel's texts use."""
    missing: set[str] = field(default_factory=set)
    """Used placeholders that had no value (rendered as their fallback)."""
    fit: list[dict[str, Any]] = field(default_factory=list)
    fit_label: str = ""

    def to_json(self) -> dict[str, Any] | list[dict[str, Any]]:
        """What the command line prints: LINE's messages array, or the mail parts."""
        if self.channel == "line":
            return self.line_messages
        return {"subject": self.subject, "preheader": self.preheader, "text": self.text, "html": self.html}

    def all_text(self) -> str:
        """Everything a reader sees, for checks."""
        parts = [self.subject, self.preheader, self.text]
        for msg in self.line_messages:
            parts.append(_message_text(msg))
        return "\n".join(p for p in parts if p)


def _message_text(obj: Any) -> str:
    """All strings of a LINE message object (text, Flex texts, labels, URIs)."""
    if isinstance(obj, dict):
        return "\n".join(_message_text(v) for k, v in obj.items() if k not in ("type", "layout", "size", "weight", "color", "style", "aspectRatio", "aspectMode", "margin"))
    if isinstance(obj, list):
        return "\n".join(_message_text(v) for v in obj)
    return obj if isinstance(obj, str) else ""


def _render(source: str, ctx: Mapping[str, str], channel: str, campaign: str) -> str:
    return tag_links(render_string(source, ctx), channel, campaign, skip=[ctx.get("unsubscribe_url", "")]).strip("\n")


def flex_bubble(card: Card) -> dict[str, Any] | None:
    """A Flex message (``type: flex``) with a bubble: image, title, price, note, button."""
    body = []
    if card.title:
        body.append({"type": "text", "text": card.title, "weight": "bold", "size": "lg", "wrap": True})
    if card.price:
        body.append({"type": "text", "text": card.price, "size": "md", "color": "#BF0000", "weight": "bold", "margin": "md"})
    if card.text:
        body.append({"type": "text", "text": card.text, "size": "sm", "color": "#555555", "wrap": True, "margin": "md"})
    if not body:
        return None
    bubble: dict[str, Any] = {"type": "bubble"}
    if card.image_url.startswith("https://"):
        bubble["hero"] = {"type": "image", "url": card.image_url, "size": "full", "aspectRatio": "20:13", "aspectMode": "cover"}
    bubble["body"] = {"type": "box", "layout": "vertical", "contents": body}
    if card.button_url and card.button_label:
        bubble["footer"] = {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {"type": "button", "style": "primary", "color": "#06C755",
                 "action": {"type": "uri", "label": card.button_label, "uri": card.button_url}}
            ],
        }
    alt = card.alt_text or card.title or "お知らせ"
    return {"type": "flex", "altText": alt, "contents": bubble}


def _render_card(card: Card | None, ctx: Mapping[str, str], channel: str, campaign: str) -> Card | None:
    if card is None:
        return None
    out = Card(**{f.name: _render(getattr(card, f.name), ctx, channel, campaign) for f in fields(Card) if f.name != "image_url"})
    out.image_url = render_string(card.image_url, ctx).strip()  # images carry no UTM
    return out


_LAYOUT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ subject }}</title></head>
<body style="margin:0;padding:0;background:#f4f4f4;">
<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;">{{ preheader }}</div>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f4f4;"><tr><td align="center" style="padding:16px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="max-width:600px;width:100%;background:#ffffff;border-radius:8px;">
<tr><td style="padding:24px;font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN',Meiryo,sans-serif;font-size:15px;line-height:1.8;color:#333333;">
{% for para in paragraphs %}<p style="margin:0 0 1em;">{% for line in para %}{% if not loop.first %}<br>{% endif %}{% for kind, value in line %}{% if kind == "link" %}<a href="{{ value }}" style="color:#bf0000;">{{ value }}</a>{% else %}{{ value }}{% endif %}{% endfor %}{% endfor %}</p>
{% endfor %}{% if card %}<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border:1px solid #e5e5e5;border-radius:8px;margin:8px 0 16px;">
{% if card.image_url %}<tr><td><img src="{{ card.image_url }}" alt="{{ card.title }}" width="550" style="width:100%;height:auto;display:block;border-radius:8px 8px 0 0;"></td></tr>{% endif %}
<tr><td style="padding:16px;">{% if card.title %}<div style="font-size:18px;font-weight:bold;">{{ card.title }}</div>{% endif %}{% if card.price %}<div style="color:#bf0000;font-weight:bold;margin-top:8px;">{{ card.price }}</div>{% endif %}{% if card.text %}<div style="font-size:13px;color:#555555;margin-top:8px;">{{ card.text }}</div>{% endif %}
{% if card.button_url and card.button_label %}<div style="margin-top:16px;"><a href="{{ card.button_url }}" style="display:inline-block;background:#bf0000;color:#ffffff;text-decoration:none;padding:10px 24px;border-radius:4px;">{{ card.button_label }}</a></div>{% endif %}
</td></tr></table>{% endif %}
{% if footer %}<hr style="border:none;border-top:1px solid #e5e5e5;margin:24px 0 12px;">
<div style="font-size:12px;color:#777777;">{% for line in footer %}{% if not loop.first %}<br>{% endif %}{% for kind, value in line %}{% if kind == "link" %}<a href="{{ value }}" style="color:#777777;">{{ value }}</a>{% else %}{{ value }}{% endif %}{% endfor %}{% endfor %}</div>{% endif %}
</td></tr></table></td></tr></table></body></html>
"""
)


def _segments(line: str) -> list[tuple[str, str]]:
    """A line split into ("text", ...) and ("link", url) pieces."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in URL_RE.finditer(line):
        url = _trim_url(m.group(0))
        if m.start() > pos:
            out.append(("text", line[pos:m.start()]))
        out.append(("link", url))
        pos = m.start() + len(url)
    if pos < len(line):
        out.append(("text", line[pos:]))
    return out


def text_to_html(subject: str, preheader: str, body: str, footer: str = "", card: Card | None = None) -> str:
    """Simple HTML mail from plain text: paragraphs, links, optional card and footer.

    The layout is trusted code with autoescape on: every piece of text
    (customer values included) is HTML-escaped.
    """
    paragraphs = [[_segments(line) for line in block.split("\n")] for block in re.split(r"\n\s*\n", body.strip()) if block.strip()]
    foot = [_segments(line) for line in footer.strip().split("\n")] if footer.strip() else []
    safe_card = None
    if card is not None:
        safe_card = replace(card)
        for name in ("image_url", "button_url"):
            if not getattr(safe_card, name).startswith(("https://", "http://")):
                setattr(safe_card, name, "")
    return _LAYOUT.render(subject=subject, preheader=preheader, paragraphs=paragraphs, footer=foot, card=safe_card)


def render(template: Template, context: Mapping[str, str], channel: str, campaign: str = "") -> Rendered:
    """Render a template for one customer's context in one channel.

    Parameters
    ----------
    template : Template
    context : mapping
        From :func:`build_context` (built for the same channel).
    channel : {"line", "email", "rmail", "insert"}
    campaign : str
        ``utm_campaign`` for links written in the template (default: the key).
    """
    if channel not in CHANNELS:
        raise InputError("チャネルは line / email / rmail / insert から選んでください。", f"bad channel {channel!r}")
    campaign = campaign or template.key
    unknown: set[str] = set()
    for text in template.texts().values():
        unknown |= analyse(text).unknown
    used: set[str] = set()
    for text in channel_texts(template, channel):
        used |= analyse(text).names & set(PLACEHOLDERS)
    out = Rendered(template_key=template.key, channel=channel, unknown_placeholders=unknown, used=used,
                   missing=used & set(getattr(context, "missing", ())), fit=list(template.fit), fit_label=template.fit_label)
    if channel == "line":
        text = _render(template.line_text, context, channel, campaign)
        bubbles = [b.strip("\n") for b in re.split(rf"(?m)^{re.escape(LINE_BUBBLE_SEPARATOR)}\s*$", text)]
        out.line_messages = [{"type": "text", "text": b} for b in bubbles if b.strip()]
        card = _render_card(template.card, context, channel, campaign)
        flex = flex_bubble(card) if card else None
        if flex:
            out.line_messages.append(flex)
        return out
    if channel == "insert":
        out.text = render_string(template.insert_text, context).strip("\n")
        return out
    out.subject = _LINE_BREAKS.sub(" ", _render(template.email_subject, context, channel, campaign)).strip()
    out.preheader = _LINE_BREAKS.sub(" ", _render(template.email_preheader, context, channel, campaign)).strip()
    body = _render(template.email_body, context, channel, campaign)
    footer = _render(template.email_footer if channel == "email" else template.rmail_footer, context, channel, campaign)
    out.text = body + ("\n\n" + footer if footer else "")
    card = _render_card(template.card, context, channel, campaign)
    out.html = text_to_html(out.subject, out.preheader, body, footer, card)
    link = context.get("unsubscribe_url", "")
    out.unsubscribe_url = link if channel == "email" and link.startswith(("https://", "http://")) else ""
    return out


def render_for_customer(
    store: Store,
    template: str | Template,
    customer_id: str,
    channel: str,
    campaign: Campaign | None = None,
) -> Rendered:
    """Load the template (by key, or use the one given), the customer and the shop profile, then :func:`render`."""
    tpl = get_template(store, template) if isinstance(template, str) else template
    customer = customer_fields(store, customer_id)
    campaign = campaign or Campaign()
    ctx = build_context(customer, campaign, shop_profile(store), channel, tpl.key)
    return render(tpl, ctx, channel, campaign.utm_campaign or tpl.key)


# -- picking customers for the preview ---------------------------------------------------
# The one place the message page couples to segments (issue 4, crm_core.audience.segments):
# a choice is "all", a few channel filters, "preset:<key>" or "saved:<segment_id>".
_BASIC_RULES: dict[str, tuple[str, dict[str, Any]]] = {
    "all": ("すべてのお客様", {"all": []}),
    "line": ("LINE連携ありのお客様", {"all": [{"field": "has_line", "op": "is_true"}]}),
    "email": ("メール配信に同意したお客様", {"all": [{"field": "email_opt_in", "op": "is_true"}]}),
}
PREVIEW_FILTERS: dict[str, str] = {k: v[0] for k, v in _BASIC_RULES.items()}
"""Choices that exist without any saved segment (see :func:`segment_choices` for all)."""


def segment_choices(store: Store | None) -> dict[str, str]:
    """Segments to preview or target: basic filters, the segment presets and saved segments, with Japanese names."""
    from crm_core.audience import library as segment_library
    from crm_core.audience import segments

    out = dict(PREVIEW_FILTERS)
    out.update({f"preset:{p.key}": p.name for p in segments.PRESETS})
    if store is not None:
        out.update({f"saved:{s['segment_id']}": f"保存済み: {s['name']}" for s in segment_library.list_segments(store)})
    return out


def segment_rule(store: Store, choice: str) -> dict[str, Any]:
    """The segment rule (JSON) of a choice from :func:`segment_choices`."""
    from crm_core.audience import library as segment_library
    from crm_core.audience import segments

    if choice in _BASIC_RULES:
        return _BASIC_RULES[choice][1]
    kind, _, ref = (choice or "").partition(":")
    if kind == "preset":
        return segments.preset_rule(ref)
    if kind == "saved" and ref.isdigit():
        return segment_library.get_segment(store, int(ref))["rule"]
    raise InputError("プレビューするお客様（セグメント）を選び直してください。", f"unknown segment choice {choice!r}")


def preview_customers(store: Store, segment: str = "all", limit: int = 50) -> list[dict[str, Any]]:
    """Customers of a segment to step through in the preview: ``customer_id, customer_key, name, rank, orders``.

    Uses :func:`crm_core.audience.segments.sample` (highest lifetime revenue first);
    ``customer_key`` is the shop's own customer number (None when the export had
    none); an empty list when there is no customer model yet.
    """
    from crm_core.audience import segments

    rule = segment_rule(store, segment)
    if not store.has_table("customer_model"):
        return []
    df = segments.sample(store, rule, limit=limit, columns=("customer_id", "name", "rank", "orders"))
    keys = dict(store.fetchall(
        "SELECT customer_id, customer_key FROM customers WHERE customer_key IS NOT NULL AND customer_id IN (SELECT unnest(?))",
        [list(df["customer_id"])],
    )) if len(df) else {}
    return [
        {**{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}, "customer_key": keys.get(row["customer_id"])}
        for row in df.astype(object).to_dict("records")
    ]


def segment_customer_ids(store: Store, segment: str = "all") -> list[str]:
    """Every customer id of a segment (for issuing unique coupon codes)."""
    from crm_core.audience import segments

    rule = segment_rule(store, segment)
    if not store.has_table("customer_model"):
        return []
    df = segments.sample(store, rule, limit=10**9, columns=("customer_id",))
    return sorted(str(c) for c in df["customer_id"])


def template_names(templates: Iterable[Template]) -> list[dict[str, str]]:
    """``key, label, scenario`` of templates (for ``templates --json``)."""
    return [{"key": t.key, "label": t.label, "scenario": t.scenario} for t in templates]
