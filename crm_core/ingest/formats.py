"""Export layouts the importer knows, as data: header aliases per canonical field.

Headers are matched by name, never by position (RMS download templates
differ per shop).  Before matching, a header is normalised with
:func:`normalize_header`: NFKC (full-width digits and colons become
half-width), spaces and colons dropped, RMS's ``(-99999=無効値)`` suffix
dropped, ASCII lower-cased.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_INVALID_SUFFIX = re.compile(r"\(-99999=無効値\)$")


def normalize_header(name: str) -> str:
    """Normalise one CSV header for matching (see module docstring)."""
    text = unicodedata.normalize("NFKC", name.replace("\ufeff", ""))
    text = _INVALID_SUFFIX.sub("", text.strip())
    text = re.sub(r"[\s:]", "", text)
    return text.lower()


# Canonical fields of the staging table, with Japanese labels for messages.
ORDER_FIELDS: dict[str, str] = {
    "order_id": "注文番号",
    "ordered_at": "注文日時",
    "status": "ステータス",
    "cancelled_flag": "キャンセル",
    "cancelled_at": "キャンセル日時",
    "financial_status": "支払ステータス",
    "total_amount": "合計金額",
    "item_amount": "商品合計金額",
    "shipping_fee": "送料",
    "discount_amount": "クーポン・割引額",
    "points_used": "ポイント利用額",
    "refunded_amount": "返金額",
    "coupon_code": "クーポンコード",
    "payment_method": "支払方法",
    "prefecture": "都道府県",
    "subscription_id": "定期購入の申込番号",
    "subscription_seq": "定期お届け回数",
    "customer_key": "顧客ID",
    "last_name": "姓",
    "first_name": "名",
    "buyer_name": "氏名",
    "last_name_kana": "姓カナ",
    "first_name_kana": "名カナ",
    "email": "メールアドレス",
    "phone": "電話番号",
    "phone1": "電話番号1",
    "phone2": "電話番号2",
    "phone3": "電話番号3",
    "postcode": "郵便番号",
    "postcode1": "郵便番号1",
    "postcode2": "郵便番号2",
    "gender": "性別",
    "birthday": "誕生日",
    "email_opt_in": "メルマガ許諾",
    "line_key": "明細ID",
    "product_id": "商品管理番号",
    "product_id_alt": "商品番号",
    "sku": "SKU",
    "product_name": "商品名",
    "category": "カテゴリ",
    "unit_price": "単価",
    "quantity": "個数",
    "line_amount": "明細金額",
}
AMOUNT_FIELDS = (
    "total_amount",
    "item_amount",
    "shipping_fee",
    "discount_amount",
    "points_used",
    "refunded_amount",
    "unit_price",
    "line_amount",
)
INT_FIELDS = ("quantity", "subscription_seq")
# Fields that describe the whole order (taken from the first row that has them).
ORDER_LEVEL = (
    "ordered_at",
    "status",
    "cancelled_flag",
    "cancelled_at",
    "financial_status",
    "total_amount",
    "item_amount",
    "shipping_fee",
    "discount_amount",
    "points_used",
    "refunded_amount",
    "coupon_code",
    "payment_method",
    "prefecture",
    "subscription_id",
    "subscription_seq",
    "customer_key",
    "last_name",
    "first_name",
    "buyer_name",
    "last_name_kana",
    "first_name_kana",
    "email",
    "phone",
    "phone1",
    "phone2",
    "phone3",
    "postcode",
    "postcode1",
    "postcode2",
    "gender",
    "birthday",
    "email_opt_in",
)
LINE_LEVEL = ("line_key", "product_id", "product_id_alt", "sku", "product_name", "category", "unit_price", "quantity", "line_amount")

CONTACT_FIELDS: dict[str, str] = {
    "email": "メールアドレス",
    "phone": "電話番号",
    "customer_key": "顧客ID",
    "first_name": "名",
    "last_name": "姓",
    "buyer_name": "氏名",
    "email_opt_in": "メルマガ許諾",
    "sms_opt_in": "SMS許諾",
    "line_user_id": "LINEユーザーID",
    "birthday": "誕生日",
    "gender": "性別",
    "prefecture": "都道府県",
    "tags": "タグ",
}
PRODUCT_FIELDS: dict[str, str] = {
    "product_id": "商品管理番号",
    "product_name": "商品名",
    "category": "カテゴリ",
}

KIND_FIELDS = {"orders": ORDER_FIELDS, "contacts": CONTACT_FIELDS, "products": PRODUCT_FIELDS}
# Other names a mapping may use for a field (``--map 会員番号=customer_id``): the
# store's own column name for the shop's customer number is ``customer_key``.
FIELD_SYNONYMS = {"customer_id": "customer_key"}
KIND_LABELS = {"orders": "注文データ", "contacts": "顧客・連絡先リスト", "products": "商品マスタ"}
REQUIRED = {
    "orders": (("order_id",), ("ordered_at",)),
    "contacts": (("email", "phone", "customer_key"),),
    "products": (("product_id",),),
}


@dataclass(frozen=True)
class ExportFormat:
    """One known export layout.

    Attributes
    ----------
    key : str
        Machine name (``rakuten``, ``rakuten_legacy``, ``shopify``, ...).
    label : str
        Japanese name shown to the marketer.
    kind : str
        ``orders``, ``contacts`` or ``products``.
    source : str
        Value stored in ``orders.source`` / ``contacts.source``.
    signature : tuple of str
        Normalised headers that must all be present for detection.
    aliases : dict
        Canonical field -> normalised header names, first present wins.
    """

    key: str
    label: str
    kind: str
    source: str
    signature: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    first_cell: str | None = None
    short_label: str = ""

    def header_label(self, name: str) -> str:
        """The export's own spelling of a normalised header (for messages)."""
        return _ORIGINAL.get(name, name)

    def field_header(self, fld: str) -> str:
        """The export's header that holds canonical field ``fld``."""
        names = self.aliases.get(fld)
        return self.header_label(names[0]) if names else KIND_FIELDS[self.kind].get(fld, fld)

    def known_headers(self) -> set[str]:
        """Every normalised header this layout names (signature and aliases)."""
        return set(self.signature) | {n for names in self.aliases.values() for n in names}

    def missing(self, headers: list[str]) -> list[str]:
        """Headers this layout needs that ``headers`` lacks, in the export's spelling.

        Needed are the signature and, for each required field of the kind
        (:data:`REQUIRED`), at least one of its alternatives.
        """
        present = {normalize_header(h) for h in headers}
        out = [self.header_label(sig) for sig in self.signature if sig not in present]
        for alternatives in REQUIRED[self.kind]:
            if not any(n in present for a in alternatives for n in self.aliases.get(a, ())):
                label = "』または『".join(self.field_header(a) for a in alternatives if a in self.aliases)
                if label and label not in out:
                    out.append(label)
        return out


_ORIGINAL: dict[str, str] = {}


def _n(*names: str) -> tuple[str, ...]:
    out = []
    for name in names:
        norm = normalize_header(name)
        _ORIGINAL.setdefault(norm, name)
        out.append(norm)
    return tuple(out)


RAKUTEN = ExportFormat(
    key="rakuten",
    label="楽天市場 受注データ（楽天ペイ受注管理）",
    short_label="楽天ペイ受注CSV",
    kind="orders",
    source="rakuten",
    first_cell=normalize_header("注文番号"),
    signature=_n("注文番号", "ステータス"),
    aliases={
        "order_id": _n("注文番号"),
        "status": _n("ステータス"),
        "ordered_at": _n("注文日時"),
        "total_amount": _n("合計金額"),
        "item_amount": _n("商品合計金額"),
        "shipping_fee": _n("送料合計"),
        "discount_amount": _n("クーポン利用総額"),
        "points_used": _n("ポイント利用額"),
        "payment_method": _n("支払方法名"),
        "prefecture": _n("注文者住所都道府県"),
        "subscription_id": _n("申込番号"),
        "subscription_seq": _n("申込お届け回数"),
        "last_name": _n("注文者姓"),
        "first_name": _n("注文者名"),
        "last_name_kana": _n("注文者姓カナ"),
        "first_name_kana": _n("注文者名カナ"),
        "email": _n("注文者メールアドレス"),
        "phone1": _n("注文者電話番号1"),
        "phone2": _n("注文者電話番号2"),
        "phone3": _n("注文者電話番号3"),
        "postcode1": _n("注文者郵便番号1"),
        "postcode2": _n("注文者郵便番号2"),
        "gender": _n("注文者性別"),
        "birthday": _n("注文者誕生日"),
        "line_key": _n("商品明細ID"),
        "product_id": _n("商品管理番号"),
        "product_id_alt": _n("商品番号", "商品ID"),
        "sku": _n("商品番号"),
        "product_name": _n("商品名"),
        "unit_price": _n("単価"),
        "quantity": _n("個数"),
    },
)

RAKUTEN_LEGACY = ExportFormat(
    key="rakuten_legacy",
    label="楽天市場 受注CSV（旧RMS形式）",
    short_label="楽天RMSの受注CSV（旧形式）",
    kind="orders",
    source="rakuten",
    first_cell=normalize_header("受注番号"),
    signature=_n("受注番号", "受注ステータス"),
    aliases={
        "order_id": _n("受注番号"),
        "status": _n("受注ステータス"),
        "ordered_at": _n("注文日時"),
        "total_amount": _n("合計金額(-99999=無効値)"),
        "item_amount": _n("合計"),
        "shipping_fee": _n("送料(-99999=無効値)"),
        "discount_amount": _n("クーポン利用額"),
        "points_used": _n("ポイント利用額"),
        "payment_method": _n("決済方法"),
        "prefecture": _n("注文者住所：都道府県"),
        "last_name": _n("注文者名字"),
        "first_name": _n("注文者名前"),
        "last_name_kana": _n("注文者名字フリガナ"),
        "first_name_kana": _n("注文者名前フリガナ"),
        "email": _n("メールアドレス"),
        "phone1": _n("注文者電話番号１"),
        "phone2": _n("注文者電話番号２"),
        "phone3": _n("注文者電話番号３"),
        "postcode1": _n("注文者郵便番号１"),
        "postcode2": _n("注文者郵便番号２"),
        "gender": _n("注文者性別"),
        "birthday": _n("注文者誕生日"),
        "email_opt_in": _n("メールフラグ"),
        "product_id": _n("商品番号"),
        "product_id_alt": _n("商品ID"),
        "sku": _n("商品番号"),
        "product_name": _n("商品名"),
        "unit_price": _n("単価"),
        "quantity": _n("個数"),
    },
)

SHOPIFY = ExportFormat(
    key="shopify",
    label="Shopify 注文エクスポート",
    short_label="Shopify注文エクスポート",
    kind="orders",
    source="shopify",
    signature=_n("Name", "Lineitem name"),
    aliases={
        "order_id": _n("Name"),
        "ordered_at": _n("Created at"),
        "financial_status": _n("Financial Status"),
        "status": _n("Financial Status"),
        "cancelled_at": _n("Cancelled at"),
        "total_amount": _n("Total"),
        "item_amount": _n("Subtotal"),
        "shipping_fee": _n("Shipping"),
        "discount_amount": _n("Discount Amount"),
        "refunded_amount": _n("Refunded Amount"),
        "coupon_code": _n("Discount Code"),
        "payment_method": _n("Payment Method"),
        "prefecture": _n("Billing Province", "Shipping Province"),
        "buyer_name": _n("Billing Name", "Shipping Name"),
        "email": _n("Email"),
        "phone": _n("Billing Phone", "Phone", "Shipping Phone"),
        "postcode": _n("Billing Zip", "Shipping Zip"),
        "email_opt_in": _n("Accepts Marketing"),
        "product_id": _n("Lineitem sku"),
        "product_id_alt": _n("Lineitem name"),
        "sku": _n("Lineitem sku"),
        "product_name": _n("Lineitem name"),
        "unit_price": _n("Lineitem price"),
        "quantity": _n("Lineitem quantity"),
    },
)

SHOPIFY_CUSTOMERS = ExportFormat(
    key="shopify_customers",
    label="Shopify 顧客エクスポート",
    short_label="Shopify顧客エクスポート",
    kind="contacts",
    source="shopify",
    signature=_n("First Name", "Last Name", "Email", "Total Spent"),
    aliases={
        "customer_key": _n("Customer ID"),
        "email": _n("Email"),
        "phone": _n("Phone", "Default Address Phone"),
        "first_name": _n("First Name"),
        "last_name": _n("Last Name"),
        "email_opt_in": _n("Accepts Email Marketing", "Accepts Marketing"),
        "sms_opt_in": _n("Accepts SMS Marketing"),
        "prefecture": _n("Default Address Province Code", "Province", "Province Code"),
        "tags": _n("Tags"),
    },
)

# The console's own layouts (the sample shop's products.csv and contacts.csv):
# a product master and a contact / LINE-friend list a shop can also fill itself.
CONSOLE_PRODUCTS = ExportFormat(
    key="console_products",
    label="商品マスタ（このコンソールの形式）",
    short_label="商品マスタ（コンソール形式）",
    kind="products",
    source="generic",
    first_cell=normalize_header("商品管理番号"),
    signature=_n("商品管理番号", "商品名", "カテゴリ"),
    aliases={
        "product_id": _n("商品管理番号"),
        "product_name": _n("商品名"),
        "category": _n("カテゴリ"),
    },
)

CONSOLE_CONTACTS = ExportFormat(
    key="console_contacts",
    label="顧客・連絡先リスト（このコンソールの形式）",
    short_label="連絡先リスト（コンソール形式）",
    kind="contacts",
    source="generic",
    first_cell=normalize_header("メールアドレス"),
    signature=_n("メールアドレス", "電話番号", "LINEユーザーID", "メルマガ希望"),
    aliases={
        "email": _n("メールアドレス"),
        "phone": _n("電話番号"),
        "line_user_id": _n("LINEユーザーID"),
        "birthday": _n("誕生日"),
        "email_opt_in": _n("メルマガ希望"),
        "customer_key": _n("顧客ID"),
        "buyer_name": _n("氏名"),
        "gender": _n("性別"),
        "prefecture": _n("都道府県"),
        "tags": _n("タグ"),
    },
)

KNOWN_FORMATS = (RAKUTEN, RAKUTEN_LEGACY, SHOPIFY, SHOPIFY_CUSTOMERS, CONSOLE_PRODUCTS, CONSOLE_CONTACTS)
FORMATS_BY_KEY = {f.key: f for f in KNOWN_FORMATS}
# A file sharing at least this share of a layout's known headers (and at least
# CLOSE_MIN of them) is taken for that layout with columns missing.
CLOSE_SHARE = 0.6
CLOSE_MIN = 4

# Header aliases used to suggest a mapping for generic files (the user confirms).
GENERIC_ALIASES: dict[str, tuple[str, ...]] = {
    "order_id": _n("注文番号", "受注番号", "order id", "order_id", "orderid", "order number", "注文ID"),
    "ordered_at": _n("注文日時", "注文日", "購入日", "order date", "ordered_at", "created at", "orderdate", "orderTime"),
    "status": _n("ステータス", "status", "注文ステータス"),
    "total_amount": _n("合計金額", "total", "total_amount", "totalprice", "注文金額", "購入金額"),
    "item_amount": _n("商品合計金額", "subtotal", "小計"),
    "shipping_fee": _n("送料", "shipping", "shipcharge"),
    "discount_amount": _n("割引額", "クーポン利用額", "discount", "discount amount"),
    "points_used": _n("ポイント利用額", "usepoint", "利用ポイント"),
    "coupon_code": _n("クーポンコード", "discount code", "coupon", "coupon_code"),
    "customer_key": _n("顧客ID", "会員ID", "customer id", "customer_id", "customerid"),
    "buyer_name": _n("氏名", "名前", "顧客名", "name", "billname"),
    "email": _n("メールアドレス", "email", "e-mail", "mail", "billmailaddress"),
    "phone": _n("電話番号", "phone", "tel", "billphonenumber"),
    "postcode": _n("郵便番号", "zip", "postcode", "billzipcode"),
    "prefecture": _n("都道府県", "prefecture", "province", "shipprefecture", "billprefecture"),
    "gender": _n("性別", "gender"),
    "birthday": _n("誕生日", "生年月日", "birthday", "birth date"),
    "email_opt_in": _n("メルマガ希望", "メルマガ許諾", "メルマガ", "accepts marketing", "accepts email marketing", "opt_in"),
    "line_user_id": _n("LINEユーザーID", "line user id", "line_user_id", "lineid", "userid"),
    "tags": _n("タグ", "tags"),
    "product_id": _n("商品管理番号", "商品コード", "商品ID", "sku", "product id", "product_id", "itemid"),
    "product_name": _n("商品名", "product name", "product_name", "title", "item name"),
    "category": _n("カテゴリ", "カテゴリー", "category", "product type"),
    "unit_price": _n("単価", "price", "unitprice", "unit price"),
    "quantity": _n("個数", "数量", "quantity", "qty"),
    "line_amount": _n("明細金額", "line amount", "line_amount"),
    "subscription_id": _n("定期購入番号", "申込番号", "subscription id", "subscription_id"),
    "subscription_seq": _n("お届け回数", "申込お届け回数", "subscription_seq", "delivery count"),
}


def detect_format(headers: list[str]) -> ExportFormat | None:
    """The known format whose signature all appears in ``headers``, else None."""
    norm = [normalize_header(h) for h in headers]
    present = set(norm)
    for fmt in KNOWN_FORMATS:
        if fmt.first_cell is not None and norm and norm[0] != fmt.first_cell:
            continue
        if all(sig in present for sig in fmt.signature):
            return fmt
    return None


def closest_format(headers: list[str]) -> tuple[ExportFormat, list[str]] | None:
    """The known layout ``headers`` come closest to, with what it lacks.

    Returns ``(format, missing headers)``: an exact match (:func:`detect_format`)
    lacks nothing; otherwise the layout sharing the largest share of its known
    headers (at least :data:`CLOSE_SHARE` and :data:`CLOSE_MIN` of them).
    None when the file looks like none of them (a generic CSV).
    """
    exact = detect_format(headers)
    if exact is not None:
        return exact, []
    present = {normalize_header(h) for h in headers}
    best: tuple[float, ExportFormat] | None = None
    for fmt in KNOWN_FORMATS:
        known = fmt.known_headers()
        hits = len(known & present)
        share = hits / len(known)
        if hits >= CLOSE_MIN and share >= CLOSE_SHARE and (best is None or share > best[0]):
            best = (share, fmt)
    if best is None:
        return None
    return best[1], best[1].missing(headers)


def missing_message(name: str, fmt: ExportFormat, missing: list[str]) -> str:
    """「『file』: 楽天ペイ受注CSVの必須列『注文番号』がありません。…」"""
    cols = "』『".join(missing)
    return (
        f"「{name}」: {fmt.short_label or fmt.label}の必須列『{cols}』がありません。"
        "何も取り込んでいません。エクスポートの設定（ダウンロードする項目）にこの列を加えて、もう一度出力してください。"
    )


def resolve_columns(fmt: ExportFormat, headers: list[str]) -> dict[str, int]:
    """Map canonical fields to column positions for a known format."""
    norm = [normalize_header(h) for h in headers]
    position: dict[str, int] = {}
    for i, h in enumerate(norm):
        position.setdefault(h, i)
    resolved: dict[str, int] = {}
    for fld, names in fmt.aliases.items():
        for name in names:
            if name in position:
                resolved[fld] = position[name]
                break
    return resolved


def suggest_mapping(headers: list[str], kind: str) -> dict[str, str]:
    """Propose ``{csv header: field}`` for a generic file of ``kind``."""
    allowed = KIND_FIELDS[kind]
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for header in headers:
        norm = normalize_header(header)
        for fld, names in GENERIC_ALIASES.items():
            if fld in allowed and fld not in used and norm in names:
                mapping[header] = fld
                used.add(fld)
                break
    return mapping


def guess_kind(headers: list[str]) -> str:
    """Best guess of what a generic file holds, from its headers."""
    scores = {kind: len(suggest_mapping(headers, kind)) for kind in KIND_FIELDS}
    mapped = suggest_mapping(headers, "orders")
    if "order_id" in mapped.values():
        return "orders"
    if scores["contacts"] >= scores["products"]:
        return "contacts"
    return "products"


RAKUTEN_STATUS = {
    "100": "注文確認待ち",
    "200": "楽天処理中",
    "300": "発送待ち",
    "400": "変更確定待ち",
    "500": "発送済",
    "600": "支払手続き中",
    "700": "支払手続き済",
    "800": "キャンセル確定待ち",
    "900": "キャンセル確定",
}

# Shopify financial statuses shown in Japanese (cancellation is decided separately).
SHOPIFY_STATUS = {
    "paid": "支払済",
    "pending": "保留中",
    "authorized": "オーソリ済",
    "partially_paid": "一部支払済",
    "partially_refunded": "一部返金",
    "refunded": "返金済",
    "voided": "無効",
    "expired": "期限切れ",
}
STATUS_LABELS = {**RAKUTEN_STATUS, **SHOPIFY_STATUS}

PREFECTURES_EN = {
    "hokkaido": "北海道", "aomori": "青森県", "iwate": "岩手県", "miyagi": "宮城県", "akita": "秋田県",
    "yamagata": "山形県", "fukushima": "福島県", "ibaraki": "茨城県", "tochigi": "栃木県", "gunma": "群馬県",
    "saitama": "埼玉県", "chiba": "千葉県", "tokyo": "東京都", "kanagawa": "神奈川県", "niigata": "新潟県",
    "toyama": "富山県", "ishikawa": "石川県", "fukui": "福井県", "yamanashi": "山梨県", "nagano": "長野県",
    "gifu": "岐阜県", "shizuoka": "静岡県", "aichi": "愛知県", "mie": "三重県", "shiga": "滋賀県",
    "kyoto": "京都府", "osaka": "大阪府", "hyogo": "兵庫県", "nara": "奈良県", "wakayama": "和歌山県",
    "tottori": "鳥取県", "shimane": "島根県", "okayama": "岡山県", "hiroshima": "広島県", "yamaguchi": "山口県",
    "tokushima": "徳島県", "kagawa": "香川県", "ehime": "愛媛県", "kochi": "高知県", "fukuoka": "福岡県",
    "saga": "佐賀県", "nagasaki": "長崎県", "kumamoto": "熊本県", "oita": "大分県", "miyazaki": "宮崎県",
    "kagoshima": "鹿児島県", "okinawa": "沖縄県",
}
# ISO 3166-2:JP codes (JP-13) and bare numbers map through the same order.
PREFECTURE_CODES = {f"jp-{i:02d}": name for i, name in enumerate(PREFECTURES_EN.values(), start=1)}
