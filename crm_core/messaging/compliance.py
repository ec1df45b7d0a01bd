"""Compliance lint: laws, Rakuten rules and channel limits, each finding with a fix.

:func:`lint` checks a rendered message (:class:`crm_core.messaging.templates.Rendered`)
and returns :class:`Finding` rows in Japanese.  Rules (FACTS.md §3-5):

``email_display``
    特定電子メール法: an advertising e-mail shows the sender's name, postal
    address, an opt-out link with a statement that refusal is possible, and a
    contact for questions.
``email_consent``
    the customer being previewed has not agreed to receive e-mail.
``rakuten_links``
    in a message for a Rakuten shop (R-Mail; e-mail when the shop sells on
    Rakuten) every link must be on ``rakuten.co.jp`` (``*.rakuten.co.jp``,
    approved outside links only as ``link.rakuten.co.jp``); carriers'
    tracking pages are allowed.
``insert_copy``
    package-insert copy (同梱物) must not steer buyers off Rakuten (own site,
    phone/FAX orders, "cheaper elsewhere"), mention QR codes, or invite to
    LINE without R-SNS.
``line_limits``
    1-5 message objects, text ≤ 5,000 UTF-16 units, Flex alt text ≤ 1,500
    characters, button label ≤ 40, links https and ≤ 1,000 characters.
``placeholders``
    fields that are not in the documented placeholder list.
``encoding``
    characters the chosen e-mail encoding (ISO-2022-JP) cannot carry,
    with a replacement for each.
``shop_identity``
    a marketing message (LINE, e-mail, R-Mail, insert) whose sender is the
    fictional sample shop, or (LINE, e-mail, R-Mail) a shop with no name at all.
``coupon``
    a message that announces a coupon without a code or a link to get it
    (「次回使える特別クーポン」「有効期限：期間限定」); a coupon without an expiry.
``audience_fit``
    the customer being previewed does not fit the template's audience
    (``fit`` in presets.toml: the first-purchase thanks for a 35-order buyer).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from crm_core.messaging.templates import (
    PLACEHOLDERS,
    SAMPLE,
    Rendered,
    ShopProfile,
    find_urls,
    is_carrier_url,
    utf16_len,
)

ERROR = "error"
WARNING = "warning"
SEVERITY_LABELS = {ERROR: "要修正", WARNING: "注意"}

LINE_MAX_MESSAGES = 5
LINE_MAX_TEXT_UTF16 = 5000
LINE_MAX_ALT_TEXT = 1500
LINE_MAX_BUTTON_LABEL = 40
LINE_MAX_URI = 1000
LINE_MAX_IMAGE_URL = 2000
EMAIL_ENCODINGS = ("utf-8", "iso-2022-jp")


@dataclass(frozen=True)
class Finding:
    """One problem: which rule, how bad, what is wrong and how to fix it (Japanese)."""

    rule: str
    severity: str
    message: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# -- helpers ---------------------------------------------------------------------
def is_rakuten_url(url: str) -> bool:
    """True for links on Rakuten's own domain (``rakuten.co.jp`` and its sub-domains).

    The host is parsed, so ``https://rakuten.co.jp.example.com`` or
    ``https://item.rakuten.co.jp@example.com`` do not pass.
    """
    try:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    return host == "rakuten.co.jp" or host.endswith(".rakuten.co.jp")


_REPLACEMENTS = {
    "～": "〜", "－": "−", "—": "―", "髙": "高", "﨑": "崎", "德": "徳", "㈱": "(株)", "㈲": "(有)",
    "№": "No.", "℡": "TEL", "♡": "", "♥": "", "‼": "!!", "ⅰ": "i",
}


def iso2022jp_replacement(ch: str) -> str | None:
    """A replacement ISO-2022-JP can carry, or None when the character should be removed."""
    if ch in _REPLACEMENTS:
        return _REPLACEMENTS[ch] or None
    folded = unicodedata.normalize("NFKC", ch)
    if folded != ch:
        if unicodedata.category(ch) == "No" and folded.isascii():  # ① -> (1)
            folded = f"({folded})"
        try:
            folded.encode("iso2022_jp")
            return folded
        except UnicodeEncodeError:
            pass
    return None


def unencodable(text: str, encoding: str = "iso-2022-jp") -> list[str]:
    """Distinct characters of ``text`` the encoding cannot carry, in order of appearance."""
    codec = "iso2022_jp" if encoding.lower() in ("iso-2022-jp", "iso2022_jp", "jis") else encoding
    seen: list[str] = []
    for ch in text or "":
        if ch in seen or ch in "\r\n":
            continue
        try:
            ch.encode(codec)
        except UnicodeEncodeError:
            seen.append(ch)
    return seen


def fix_for_iso2022jp(text: str) -> str:
    """``text`` with every character ISO-2022-JP cannot carry replaced (or removed)."""
    bad = set(unencodable(text))
    return "".join((iso2022jp_replacement(ch) or "") if ch in bad else ch for ch in text)


# -- rules -----------------------------------------------------------------------
def _placeholders(rendered: Rendered) -> list[Finding]:
    out = []
    for name in sorted(rendered.unknown_placeholders):
        close = [k for k in PLACEHOLDERS if name.lower() in k or k in name.lower()]
        hint = f"（近い項目: {'、'.join('{{ ' + k + ' }}' for k in close[:3])}）" if close else ""
        out.append(Finding(
            "placeholders", ERROR,
            f"差し込み項目「{{{{ {name} }}}}」は使えません。送信すると空欄になります。",
            f"一覧にある差し込み項目に書き換えるか、削除してください{hint}。",
        ))
    return out


_OPT_OUT_STATEMENT = re.compile(r"配信(を)?(停止|解除|中止)|受信(を)?(拒否|停止)|購読(を)?(解除|停止)|メール(マガジン)?の?(解除|停止)")
_CONTACT = re.compile(r"問い?合わ?せ|問合せ|連絡先|TEL|電話|[\w.+-]+@[\w-]+\.[\w.]+")
_POSTCODE_OR_ADDRESS = re.compile(r"〒?\d{3}-?\d{4}|(都|道|府|県).+(市|区|町|村)")


def _email_display(rendered: Rendered, shop: ShopProfile) -> list[Finding]:
    text = unicodedata.normalize("NFKC", rendered.text)
    out = []
    sender = shop.legal_name()
    if not sender or unicodedata.normalize("NFKC", sender) not in text:
        out.append(Finding("email_display", ERROR, "送信者の氏名・名称がメールに表示されていません（特定電子メール法）。",
                           "「ショップ情報」で運営会社を登録し、本文かフッターに {{ company_name }} を入れてください。"))
    address = unicodedata.normalize("NFKC", shop.shop_address)
    shown = (address in text) if address else bool(_POSTCODE_OR_ADDRESS.search(text))
    if not shown:
        out.append(Finding("email_display", ERROR, "送信者の住所がメールに表示されていません（特定電子メール法）。",
                           "「ショップ情報」で住所を登録し、フッターに {{ shop_address }} を入れてください。"))
    has_optout_link = any(link and link in rendered.text for link in (shop.unsubscribe_url, shop.unsubscribe_mailto, rendered.unsubscribe_url))
    if not has_optout_link:
        out.append(Finding("email_display", ERROR, "配信停止（受信拒否）の手続きができるURLやアドレスがメールにありません（特定電子メール法）。",
                           "「ショップ情報」で配信停止のURL（またはメールアドレス）を登録し、フッターに {{ unsubscribe_url }} を入れてください。"))
    if not _OPT_OUT_STATEMENT.search(text):
        out.append(Finding("email_display", ERROR, "配信停止ができる旨の記載がありません（特定電子メール法）。",
                           "配信停止のURLの直前に「配信停止をご希望の方は、下記URLから手続きできます。」のような一文を入れてください。"))
    contact = unicodedata.normalize("NFKC", shop.shop_contact)
    if not ((contact and contact in text) or (not contact and _CONTACT.search(text))):
        out.append(Finding("email_display", ERROR, "苦情・問い合わせの連絡先がメールに表示されていません（特定電子メール法）。",
                           "「ショップ情報」でお問い合わせ先を登録し、フッターに {{ shop_contact }} を入れてください。"))
    return out


def _shop_identity(rendered: Rendered, shop: ShopProfile) -> list[Finding]:
    if shop.origin == SAMPLE:
        return [Finding("shop_identity", ERROR,
                        "送信者の情報がサンプルショップ（架空のショップ・会社・住所）のままです。実際のお客様には送れません。",
                        "「ショップ情報」で、ご自身のショップ名・運営会社・住所・お問い合わせ先・配信停止の方法を登録してください。")]
    if rendered.channel != "insert" and not (shop.shop_name or shop.legal_name()):
        return [Finding("shop_identity", ERROR, "ショップ情報（ショップ名・運営会社）が登録されていません。送信者が分からないメッセージになります。",
                        "「ショップ情報」でショップ名と運営会社を登録してください。")]
    return []


_COUPON_FIELDS = {"coupon_code", "coupon_value", "coupon_expiry"}


def _coupon(rendered: Rendered) -> list[Finding]:
    if not rendered.used & _COUPON_FIELDS:
        return []
    out = []
    if not rendered.used & {"coupon_code", "coupon_url"}:
        out.append(Finding("coupon", ERROR,
                           "クーポンのご案内ですが、文面にクーポンコードも受け取りページのURLもありません。お客様がクーポンを使えません。",
                           "テンプレートに {{ coupon_code }}（楽天のクーポンなら {{ coupon_url }}）を入れてください。"))
    elif "coupon_code" in rendered.missing | (_COUPON_FIELDS - rendered.used) and (
        "coupon_url" in rendered.missing or "coupon_url" not in rendered.used
    ):
        out.append(Finding("coupon", ERROR,
                           "クーポンのご案内ですが、クーポンコードも受け取りページのURLも入っていません。"
                           "このままでは「特別クーポン」「有効期限：期間限定」のような、使えないクーポンの案内になります。",
                           "「キャンペーンの設定」でクーポンを選ぶか、クーポンコード（楽天のクーポンなら取得URL）と有効期限を入力してください。"))
    elif "coupon_expiry" in rendered.missing and "coupon_expiry" in rendered.used:
        out.append(Finding("coupon", WARNING, "クーポンの有効期限が入っていないため「期間限定」と表示されます。",
                           "「キャンペーンの設定」で有効期限を入力するか、有効期限のあるクーポンを選んでください。"))
    return out


FIT_FIELDS: dict[str, tuple[str, str]] = {
    "orders": ("購入回数", "回"),
    "recency_days": ("最終購入からの日数", "日"),
    "birthday": ("誕生日", ""),
    "next_rank": ("次の会員ランク", ""),
    "rank": ("会員ランク", ""),
}
"""Customer fields a template's ``fit`` may test, with a Japanese label and unit."""
_FIT_OPS = {
    "eq": lambda v, x: v == x, "ne": lambda v, x: v != x, "gte": lambda v, x: v >= x, "lte": lambda v, x: v <= x,
    "gt": lambda v, x: v > x, "lt": lambda v, x: v < x,
}


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


def fit_problems(fit: list[Mapping[str, Any]], customer: Mapping[str, Any]) -> list[str]:
    """Japanese descriptions of the customer values that break a template's audience conditions.

    Each condition is ``{field, op, value}`` with ``op`` one of ``eq, ne, gte,
    lte, gt, lt, is_set``; an unknown field or a customer value that is not
    known makes no finding (it cannot be judged).
    """
    out = []
    for cond in fit:
        name, op = str(cond.get("field", "")), str(cond.get("op", ""))
        if name not in FIT_FIELDS:
            continue
        label, unit = FIT_FIELDS[name]
        value = customer.get(name)
        if op == "is_set":
            if _blank(value):
                out.append(f"{label}が分かりません")
            continue
        if _blank(value) or op not in _FIT_OPS:
            continue
        try:
            ok = _FIT_OPS[op](float(value), float(cond["value"])) if unit else _FIT_OPS[op](str(value), str(cond["value"]))
        except (TypeError, ValueError, KeyError):
            continue
        if not ok:
            shown = f"{float(value):,.0f}{unit}" if unit else str(value)
            out.append(f"{label}が{shown}です")
    return out


def _audience_fit(rendered: Rendered, customer: Mapping[str, Any]) -> list[Finding]:
    problems = fit_problems(rendered.fit, customer)
    if not problems:
        return []
    who = f"「{rendered.fit_label}」向け" if rendered.fit_label else "別のお客様向け"
    return [Finding("audience_fit", WARNING,
                    f"このテンプレートは{who}ですが、表示中のお客様は{'、'.join(problems)}。内容が合わない可能性があります。",
                    "このテンプレートに合うセグメントを選ぶか、このお客様に合うテンプレートを選んでください。")]


def _rakuten_links(rendered: Rendered) -> list[Finding]:
    out = []
    for url in dict.fromkeys(find_urls(rendered.all_text())):
        if is_rakuten_url(url) or is_carrier_url(url):
            continue
        host = urlsplit(url).hostname or url
        out.append(Finding(
            "rakuten_links", ERROR,
            f"楽天のショップのメッセージに楽天以外へのリンクがあります（{host}）。楽天の規約で禁止されています。",
            "リンクを楽天市場内のURL（item.rakuten.co.jp など）に差し替えてください。"
            "許可を得た外部リンクは https://link.rakuten.co.jp/... の形式にしてください。",
        ))
    return out


_STEERING: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"自社(の)?(サイト|通販|ショップ|オンラインショップ|EC|HP|ホームページ)"), "自社サイトへの誘導"),
    (re.compile(r"公式(の)?(サイト|オンラインショップ|オンラインストア|通販|ストア|HP|ホームページ)"), "公式サイトへの誘導"),
    (re.compile(r"(電話|TEL|FAX|ファックス|ファクス|ファクシミリ)(番号)?(で|にて|から|での|によるご?)?(の)?(ご)?(注文|購入|申込|申し込み|お申込|お申し込み)"), "電話・FAXでの注文の案内"),
    (re.compile(r"(直接|直販|店頭)(での|で|の)?(ご|お)?(注文|購入|取引)"), "楽天を通さない取引の案内"),
    (re.compile(r"(こちら|当店サイト|本店|自社|公式|HP|ホームページ)(の方|のほう)?が(お)?(安|得|お得)"), "他の販路の方が安いという案内"),
    (re.compile(r"(Amazon|アマゾン|Yahoo|ヤフー|Shopify|ショッピファイ|BASE|メルカリ)"), "他のモールへの誘導"),
]
_QR = re.compile(r"QR|二次元(バー)?コード|2次元(バー)?コード|バーコードを読", re.IGNORECASE)
_LINE_INVITE = re.compile(r"line\.me|lin\.ee|LINE(公式)?(アカウント)?(の)?(友だち|友達)|友だち追加|友達追加|@[a-z0-9]{3,}", re.IGNORECASE)


def _insert_copy(text: str) -> list[Finding]:
    norm = unicodedata.normalize("NFKC", text or "")
    out = []
    for pattern, what in _STEERING:
        m = pattern.search(norm)
        if m:
            out.append(Finding("insert_copy", ERROR, f"同梱物に{what}があります（「{m.group(0)}」）。楽天の規約で禁止されています。",
                               "楽天市場のショップ内でのお買い物・お問い合わせを案内する表現に書き換えてください。"))
    m = _QR.search(norm)
    if m:
        out.append(Finding("insert_copy", ERROR, f"同梱物にQRコードに関する記載があります（「{m.group(0)}」）。楽天の同梱物ではQRコードは使えません。",
                           "QRコードと、それを読み取るよう促す文言を削除してください。"))
    m = _LINE_INVITE.search(norm)
    if m:
        out.append(Finding("insert_copy", WARNING, f"同梱物でLINEへ誘導しています（「{m.group(0)}」）。楽天ではR-SNS（月額3,000円）の契約がある場合だけ認められます。",
                           "R-SNSを契約していない場合は、LINEへの誘導を削除してください。"))
    urls = find_urls(norm)
    outside = [u for u in urls if not is_rakuten_url(u)]
    if outside and not any(is_rakuten_url(u) for u in urls):
        out.append(Finding("insert_copy", ERROR, "同梱物に自社サイトなど楽天以外のURLだけが載っています。",
                           "自社サイトのURLを載せる場合は、楽天市場のショップURLと並べて記載してください（できれば削除してください）。"))
    return out


def _line_limits(rendered: Rendered) -> list[Finding]:
    out = []
    msgs = rendered.line_messages
    if not msgs:
        out.append(Finding("line_limits", ERROR, "LINEで送るメッセージが空です。", "LINE本文を入力してください。"))
    if len(msgs) > LINE_MAX_MESSAGES:
        out.append(Finding("line_limits", ERROR, f"LINEの吹き出しが{len(msgs)}個あります。1回の送信は{LINE_MAX_MESSAGES}個までです。",
                           "「---」の区切りを減らすか、カードを外して5個以内にしてください。"))
    for i, msg in enumerate(msgs, start=1):
        if msg.get("type") == "text":
            n = utf16_len(msg.get("text", ""))
            if n > LINE_MAX_TEXT_UTF16:
                out.append(Finding("line_limits", ERROR, f"{i}個目の吹き出しが{n:,}文字（UTF-16換算）あります。上限は{LINE_MAX_TEXT_UTF16:,}です。",
                                   "文章を短くするか、「---」で吹き出しを分けてください（絵文字は2文字と数えます）。"))
        if msg.get("type") == "flex":
            alt = msg.get("altText", "")
            if len(alt) > LINE_MAX_ALT_TEXT:
                out.append(Finding("line_limits", ERROR, f"カードの代替テキストが{len(alt):,}文字あります。上限は{LINE_MAX_ALT_TEXT:,}文字です。",
                                   "カードの代替テキストを短くしてください。"))
            bubble = msg.get("contents", {})
            hero = bubble.get("hero")
            if hero and len(hero.get("url", "")) > LINE_MAX_IMAGE_URL:
                out.append(Finding("line_limits", ERROR, "カード画像のURLが長すぎます（2,000文字まで）。", "短いURLの画像を指定してください。"))
            for comp in (bubble.get("footer") or {}).get("contents", []):
                action = comp.get("action", {})
                label, uri = action.get("label", ""), action.get("uri", "")
                if len(label) > LINE_MAX_BUTTON_LABEL:
                    out.append(Finding("line_limits", ERROR, f"ボタンの文言が{len(label)}文字あります。上限は{LINE_MAX_BUTTON_LABEL}文字です。",
                                       "ボタンの文言を短くしてください。"))
                if len(uri) > LINE_MAX_URI:
                    out.append(Finding("line_limits", ERROR, f"ボタンのリンクが{len(uri):,}文字あります。上限は{LINE_MAX_URI:,}文字です。",
                                       "短いURLにするか、UTMのキャンペーン名を短くしてください。"))
                if uri and not uri.startswith(("https://", "http://", "line://", "tel:")):
                    out.append(Finding("line_limits", ERROR, "ボタンのリンクがURLになっていません。", "https:// から始まるURLを指定してください。"))
    return out


def _encoding(rendered: Rendered, encoding: str) -> list[Finding]:
    if encoding.lower() == "utf-8":
        return []
    bad = unencodable(rendered.subject + "\n" + rendered.preheader + "\n" + rendered.text, encoding)
    if not bad:
        return []
    pairs = []
    for ch in bad:
        rep = iso2022jp_replacement(ch)
        pairs.append(f"「{ch}」→「{rep}」" if rep else f"「{ch}」→ 削除")
    return [Finding(
        "encoding", ERROR,
        f"文字コード{encoding.upper()}で送れない文字があります: {'、'.join(bad)}（受信者の画面で文字化けします）。",
        "次のように置き換えてください: " + "、".join(pairs) + "。またはUTF-8で送信してください。",
    )]


def lint(
    rendered: Rendered,
    shop: ShopProfile | None = None,
    *,
    encoding: str = "utf-8",
    rakuten: bool | None = None,
    customer: Mapping[str, Any] | None = None,
    insert_text: str | None = None,
) -> list[Finding]:
    """Every finding for one rendered message, errors first.

    Parameters
    ----------
    rendered : Rendered
        The message for one customer and channel.
    shop : ShopProfile
        The sender's display items; ``platform == "rakuten"`` makes e-mail
        subject to the Rakuten link rule unless ``rakuten`` says otherwise.
    encoding : {"utf-8", "iso-2022-jp"}
        The e-mail's encoding.
    customer : mapping, optional
        The customer being previewed (``email_opt_in`` and the fields of the
        template's audience, see :data:`FIT_FIELDS`).
    insert_text : str, optional
        Package-insert copy to check (for the ``insert`` channel the rendered
        text is used).
    """
    findings = _shop_identity(rendered, shop) if shop is not None else []
    shop = shop or ShopProfile()
    findings += _placeholders(rendered)
    findings += _coupon(rendered)
    if customer is not None:
        findings += _audience_fit(rendered, customer)
    channel = rendered.channel
    if rakuten is None:
        rakuten = shop.platform == "rakuten"
    if channel == "line":
        findings += _line_limits(rendered)
    if channel == "email":
        findings += _email_display(rendered, shop)
        findings += _encoding(rendered, encoding)
        if customer is not None and customer.get("email_opt_in") is False:
            findings.append(Finding("email_consent", WARNING, "このお客様はメール配信に同意していません。広告メールは同意のある方にだけ送れます（特定電子メール法）。",
                                    "本番の配信ではこのお客様を対象から外してください（テスト送信は自分宛てなので送れます）。"))
    if channel == "rmail" or (channel == "email" and rakuten):
        findings += _rakuten_links(rendered)
    if channel == "insert":
        findings += _insert_copy(rendered.text)
    elif insert_text:
        findings += _insert_copy(insert_text)
    return sorted(findings, key=lambda f: 0 if f.severity == ERROR else 1)
