"""Seeded generator of a realistic fictional shop: the export files a marketer would upload.

The shop, かすみボタニカ (KASUMI BOTANICA, fictional), sells skin care, make-up,
supplements and gift sets on Rakuten Ichiba and on a sister Shopify D2C store.
:func:`generate_sample` writes four files in the exact shape of the real
exports (FACTS.md §1):

``rakuten_orders.csv``
    Rakuten 楽天ペイ受注管理 download: cp932, every field double-quoted, CRLF,
    the 107 columns of ``export_headers.json`` (``rakuten_rpay_order_csv``),
    one row per line item with the order-level values repeated on every row.
``shopify_orders.csv``
    Shopify admin orders export (UTF-8 with BOM, 79 columns): one row per line
    item sharing ``Name``; only the first row of an order carries the
    order-level fields.
``products.csv``
    Product master of both stores (UTF-8 with BOM):
    ``商品管理番号,商品名,カテゴリ,標準リピート日数``.
``contacts.csv``
    LINE friends / mail-magazine list (UTF-8 with BOM):
    ``メールアドレス,電話番号,LINEユーザーID,誕生日,メルマガ希望``.

How the shop behaves
--------------------
Every customer has an acquisition time drawn from an hourly intensity (a
growing shop, a daily curve with lunch and late-evening peaks, the Rakuten
sale calendar), a personal pace and a per-purchase dropout probability drawn
from a Beta distribution (a BG/NBD-like process).  A repeat order falls due
after the repurchase cycle of the customer's main product (e.g. 45 ± 15 days
for a 化粧水) and is then placed at a time drawn from the sale-weighted
intensity around that due date, so Rakuten customers wait for 楽天スーパーSALE,
お買い物マラソン, 5と0のつく日 and ワンダフルデー.  About one customer in ten
subscribes (定期購入): monthly or two-monthly deliveries with ~70 % continuing
to the 2nd delivery and ~85 % per delivery after that.

Scale and determinism
---------------------
Customers are simulated (numpy, vectorised over customers) and written in
chunks of :data:`CHUNK_CUSTOMERS`, so memory stays bounded for any size; the
wide Rakuten rows go through Arrow's CSV writer in batches, then to cp932.
All randomness derives from ``numpy.random.default_rng(seed)`` (one spawned
generator per chunk); the same arguments give byte-identical files.  Rows are
in order-time order within a chunk (chunks follow each other, so a large file
is not globally sorted); identifiers (注文番号, Shopify ``Name``, 商品明細ID,
送付先ID, 申込番号) are unique over the whole file, and per-customer values
(relay address, phone, e-mail) come from keyed bijections of the customer
number, so they never collide.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = [
    "CHUNK_CUSTOMERS",
    "CONTACT_COLUMNS",
    "PRODUCT_COLUMNS",
    "RAKUTEN_COLUMNS",
    "SHOPIFY_COLUMNS",
    "SaleEvent",
    "Product",
    "generate_sample",
    "product_catalog",
    "sale_calendar",
]

# ---------------------------------------------------------------------------
# File layouts
# ---------------------------------------------------------------------------

RAKUTEN_COLUMNS: tuple[str, ...] = (
    "注文番号", "ステータス", "サブステータスID", "サブステータス", "注文日時", "注文日", "注文時間",
    "キャンセル期限日", "注文確認日時", "注文確定日時", "発送指示日時", "発送完了報告日時", "支払方法名",
    "クレジットカード支払い方法", "クレジットカード支払い回数", "配送方法", "配送区分", "注文種別",
    "複数送付先フラグ", "送付先一致フラグ", "離島フラグ", "楽天確認中フラグ", "警告表示タイプ", "楽天会員フラグ",
    "購入履歴修正有無フラグ", "商品合計金額", "消費税合計", "送料合計", "代引料合計", "請求金額", "合計金額",
    "ポイント利用額", "クーポン利用総額", "店舗発行クーポン利用額", "楽天発行クーポン利用額", "注文者郵便番号1",
    "注文者郵便番号2", "注文者住所都道府県", "注文者住所郡市区", "注文者住所それ以降の住所", "注文者姓", "注文者名",
    "注文者姓カナ", "注文者名カナ", "注文者電話番号1", "注文者電話番号2", "注文者電話番号3", "注文者メールアドレス",
    "注文者性別", "申込番号", "申込お届け回数", "送付先ID", "送付先送料", "送付先代引料", "送付先消費税合計",
    "送付先商品合計金額", "送付先合計金額", "のし", "送付先郵便番号1", "送付先郵便番号2", "送付先住所都道府県",
    "送付先住所郡市区", "送付先住所それ以降の住所", "送付先姓", "送付先名", "送付先姓カナ", "送付先名カナ",
    "送付先電話番号1", "送付先電話番号2", "送付先電話番号3", "商品明細ID", "商品ID", "商品名", "商品番号",
    "商品管理番号", "単価", "個数", "送料込別", "税込別", "代引手数料込別", "項目・選択肢", "ポイント倍率", "納期情報",
    "在庫タイプ", "ラッピングタイトル1", "ラッピング名1", "ラッピング料金1", "ラッピング税込別1", "ラッピング種類1",
    "ラッピングタイトル2", "ラッピング名2", "ラッピング料金2", "ラッピング税込別2", "ラッピング種類2",
    "お届け時間帯", "お届け日指定", "担当者", "ひとことメモ", "メール差込文 (お客様へのメッセージ)", "ギフト配送希望",
    "コメント", "利用端末", "メールキャリアコード", "あす楽希望フラグ", "医薬品受注フラグ",
    "楽天スーパーDEAL商品受注フラグ", "メンバーシッププログラム受注タイプ",
)

SHOPIFY_COLUMNS: tuple[str, ...] = (
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at", "Accepts Marketing",
    "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code", "Discount Amount", "Shipping Method",
    "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem compare at price",
    "Lineitem sku", "Lineitem requires shipping", "Lineitem taxable", "Lineitem fulfillment status",
    "Billing Name", "Billing Street", "Billing Address1", "Billing Address2", "Billing Company", "Billing City",
    "Billing Zip", "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country", "Shipping Phone", "Notes", "Note Attributes", "Cancelled at",
    "Payment Method", "Payment Reference", "Refunded Amount", "Vendor", "Outstanding Balance", "Employee",
    "Location", "Device ID", "Id", "Tags", "Risk Level", "Source", "Lineitem discount", "Tax 1 Name",
    "Tax 1 Value", "Tax 2 Name", "Tax 2 Value", "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value",
    "Tax 5 Name", "Tax 5 Value", "Phone", "Receipt Number", "Duties", "Billing Province Name",
    "Shipping Province Name", "Payment ID", "Payment Terms Name", "Next Payment Due At", "Payment References",
)

PRODUCT_COLUMNS: tuple[str, ...] = ("商品管理番号", "商品名", "カテゴリ", "標準リピート日数")
CONTACT_COLUMNS: tuple[str, ...] = ("メールアドレス", "電話番号", "LINEユーザーID", "誕生日", "メルマガ希望")

#: Customers simulated and written per chunk (bounds memory; part of the output definition).
CHUNK_CUSTOMERS = 10_000
_WRITE_BATCH = 8_192  # rows per CSV write (bounds the text held in memory)

SHOP_ID = "392817"  # fictional Rakuten shop number (prefix of 注文番号)
BRAND = "KASUMI BOTANICA"
BRAND_JA = "かすみボタニカ"
RAKUTEN_RELAY_DOMAIN = "pc.fw.rakuten.ne.jp"
FREE_SHIPPING_FROM = 3980
SHIPPING_FEE = 550

# ---------------------------------------------------------------------------
# Product catalogue
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """One product of one store.

    Attributes
    ----------
    key : str
        Product key: 商品管理番号 on Rakuten, SKU on Shopify.
    number : str
        Rakuten 商品番号 (the shop's own item code); empty on Shopify.
    name : str
        Short product name (product master, Shopify line item name).
    category : str
        化粧水, 美容液, クレンジング, 日焼け止め, サプリメント, ファンデーション, 口紅 or ギフトセット.
    price : int
        Price in yen, tax included.
    cycle : int or None
        Standard repurchase interval in days; None for one-off products.
    weight_f, weight_m : float
        Popularity among women and men.
    first_boost : float
        Popularity multiplier for a customer's first order (trial sizes high,
        refills low).
    subscribable : bool
        Offered as 定期購入.
    options : str
        Option family (``fd``, ``lip``, ``tint``) or empty.
    upgrade : str or None
        Key a trial buyer moves on to for replenishment.
    loyalty : float
        Multiplier on the chance to come back after buying it first.
    mailable : bool
        Fits メール便 (letter-box delivery).
    seo : str
        Keywords of the Rakuten item title.
    """

    key: str
    number: str
    name: str
    category: str
    price: int
    cycle: int | None
    weight_f: float
    weight_m: float
    first_boost: float = 1.0
    subscribable: bool = False
    options: str = ""
    upgrade: str | None = None
    loyalty: float = 1.0
    mailable: bool = False
    seo: str = ""

    @property
    def title(self) -> str:
        """The long Rakuten item title (商品名 in the order export)."""
        return f"【公式】{self.name} {self.seo} {BRAND_JA}".replace("  ", " ")


_P = Product
RAKUTEN_PRODUCTS: tuple[Product, ...] = (
    _P("ks-lotion-moist", "KS-LT150", "モイストローション 150mL", "化粧水", 3300, 45, 14, 4, 1.0, True,
       loyalty=1.05, seo="化粧水 セラミド 高保湿 乾燥肌 敏感肌 無添加 日本製"),
    _P("ks-lotion-moist-refill", "KS-LT300R", "モイストローション 詰め替え用 300mL", "化粧水", 5280, 75, 5, 1, 0.15,
       True, loyalty=1.1, seo="化粧水 詰替 大容量 エコ セラミド 保湿"),
    _P("ks-lotion-clear", "KS-LTC150", "クリアローション 150mL", "化粧水", 2970, 45, 6, 5, 1.0,
       seo="化粧水 ニキビ 毛穴 さっぱり メンズ 日本製"),
    _P("ks-lotion-mini", "KS-LT030", "モイストローション ミニ 30mL お試し", "化粧水", 980, 30, 5, 1, 4.0,
       upgrade="ks-lotion-moist", loyalty=0.85, mailable=True, seo="化粧水 トライアル お試し 1000円ポッキリ 送料無料"),
    _P("ks-serum-vc", "KS-SRVC30", "ビタミンC美容液 30mL", "美容液", 4950, 60, 9, 2, 1.0, True,
       seo="美容液 ビタミンC誘導体 毛穴 くすみ ハリ ツヤ"),
    _P("ks-serum-ceramide", "KS-SRCE30", "セラミド美容液 30mL", "美容液", 5940, 60, 6, 1, 0.9, True,
       seo="美容液 ヒト型セラミド 保湿 乾燥小じわ エイジングケア"),
    _P("ks-serum-retinol", "KS-SRRT20", "レチノール美容液 20mL", "美容液", 6600, 60, 4, 1, 0.8,
       seo="美容液 レチノール ナイアシンアミド 夜用 ハリ"),
    _P("ks-serum-vc-2set", "KS-SRVC30-2", "ビタミンC美容液 30mL 2本セット", "美容液", 9240, 110, 2, 0.3, 0.2,
       loyalty=1.1, seo="美容液 まとめ買い お得 ビタミンC"),
    _P("ks-cleansing-oil", "KS-CLO200", "クレンジングオイル 200mL", "クレンジング", 2640, 40, 8, 2, 1.0,
       seo="クレンジング オイル W洗顔不要 マツエクOK 毛穴"),
    _P("ks-cleansing-balm", "KS-CLB90", "クレンジングバーム 90g", "クレンジング", 3190, 45, 6, 1, 1.0,
       seo="クレンジングバーム 毛穴 黒ずみ とろける W洗顔不要"),
    _P("ks-cleansing-gel", "KS-CLG200", "ホットクレンジングゲル 200g", "クレンジング", 2200, 40, 4, 2, 1.0,
       seo="クレンジングジェル 温感 毛穴 メイク落とし"),
    _P("ks-uv-milk", "KS-UVM50", "UVミルク SPF50+ PA++++ 50mL", "日焼け止め", 2750, 50, 6, 2, 1.0,
       seo="日焼け止め 顔 体 ウォータープルーフ 石けんオフ"),
    _P("ks-uv-gel", "KS-UVG80", "UVジェル SPF50+ PA++++ 80g", "日焼け止め", 2420, 45, 4, 3, 1.0,
       seo="日焼け止め ジェル 白浮きしない 化粧下地 メンズ"),
    _P("ks-uv-tone", "KS-UVT40", "トーンアップUV ～ラベンダー～ 40mL", "日焼け止め", 2860, 50, 4, 0.5, 1.0,
       seo="日焼け止め 下地 トーンアップ くすみ補正"),
    _P("ks-supp-collagen", "KS-SPCL30", "コラーゲンゼリー 30包", "サプリメント", 4320, 30, 6, 1, 0.9, True,
       loyalty=1.1, seo="コラーゲン ゼリー 美容 ヒアルロン酸 個包装 国産"),
    _P("ks-supp-vitc", "KS-SPVC60", "ビタミンC＆E 60粒", "サプリメント", 1980, 30, 5, 3, 1.0, True,
       mailable=True, seo="サプリ ビタミンC ビタミンE 30日分 メール便"),
    _P("ks-supp-lactic", "KS-SPLB30", "乳酸菌サプリ ～すっきり習慣～ 30日分", "サプリメント", 2980, 30, 5, 3, 1.0, True,
       loyalty=1.1, mailable=True, seo="乳酸菌 ビフィズス菌 腸活 サプリ"),
    _P("ks-supp-placenta", "KS-SPPL90", "プラセンタ 90粒", "サプリメント", 5980, 30, 3, 0.5, 0.8, True,
       loyalty=1.15, seo="プラセンタ サプリ 美容 エイジングケア 30日分"),
    _P("ks-fd-cushion", "KS-FDCU15", "クッションファンデーション 15g", "ファンデーション", 3850, 180, 5, 0.2, 1.0,
       options="fd", seo="クッションファンデ カバー力 崩れにくい SPF50+ 全3色"),
    _P("ks-fd-cushion-refill", "KS-FDCU15R", "クッションファンデーション レフィル 15g", "ファンデーション", 2750,
       150, 2, 0.1, 0.1, options="fd", loyalty=1.1, mailable=True, seo="詰め替え レフィル クッションファンデ"),
    _P("ks-fd-mineral", "KS-FDMP8", "ミネラルパウダーファンデーション 8g", "ファンデーション", 4400, 180, 3, 0.1, 1.0,
       options="fd", seo="ミネラルファンデ 石けんオフ 敏感肌 パウダー"),
    _P("ks-lip-rouge", "KS-LPRG", "モイストルージュ 全8色", "口紅", 2530, 180, 5, 1.5, 1.0, options="lip",
       mailable=True, seo="口紅 リップ 落ちにくい 保湿 プチプラ プレゼント"),
    _P("ks-lip-tint", "KS-LPTN", "ティントリップ ～ぷるつや～ 全6色", "口紅", 1650, 150, 5, 0.6, 1.0, options="tint",
       mailable=True, seo="ティント リップ 落ちない 韓国風 うるツヤ"),
    _P("ks-gift-skincare", "KS-GFSK", "スキンケアギフトセット", "ギフトセット", 6600, None, 2, 8, 1.5, loyalty=0.55,
       seo="ギフト プレゼント 誕生日 母の日 ラッピング無料"),
    _P("ks-gift-premium", "KS-GFPR", "プレミアムギフトBOX ～感謝をこめて～", "ギフトセット", 12000, None, 1, 5, 1.5,
       loyalty=0.55, seo="ギフト 高級 プレゼント 女性 結婚祝い お返し"),
    _P("ks-gift-coffret", "KS-GFCF", "ミニコフレ ハンドクリーム＆リップ", "ギフトセット", 3300, None, 2, 4, 1.5,
       loyalty=0.6, seo="プチギフト コフレ ハンドクリーム クリスマス"),
)

SHOPIFY_PRODUCTS: tuple[Product, ...] = (
    _P("KB-LT150", "", "モイストローション 150mL", "化粧水", 3300, 45, 14, 4, 1.0, True, loyalty=1.05),
    _P("KB-LT300R", "", "モイストローション 詰め替え用 300mL", "化粧水", 5280, 75, 5, 1, 0.15, True, loyalty=1.1),
    _P("KB-TRIAL7", "", "モイストライン トライアルセット 7日分", "化粧水", 1280, 30, 6, 1, 4.0,
       upgrade="KB-LT150", loyalty=0.85),
    _P("KB-SRVC30", "", "ビタミンC美容液 30mL", "美容液", 4950, 60, 9, 2, 1.0, True),
    _P("KB-SRCE30", "", "セラミド美容液 30mL", "美容液", 5940, 60, 6, 1, 0.9, True),
    _P("KB-CLO200", "", "クレンジングオイル 200mL", "クレンジング", 2640, 40, 8, 2, 1.0),
    _P("KB-UVM50", "", "UVミルク SPF50+ PA++++ 50mL", "日焼け止め", 2750, 50, 6, 2, 1.0),
    _P("KB-SPCL30", "", "コラーゲンゼリー 30包", "サプリメント", 4320, 30, 6, 1, 0.9, True, loyalty=1.1),
    _P("KB-SPLB30", "", "乳酸菌サプリ すっきり習慣 30日分", "サプリメント", 2980, 30, 5, 3, 1.0, True, loyalty=1.1),
    _P("KB-FDCU15", "", "クッションファンデーション 15g", "ファンデーション", 3850, 180, 5, 0.2, 1.0, options="fd"),
    _P("KB-LPRG", "", "モイストルージュ", "口紅", 2530, 180, 5, 1.5, 1.0, options="lip"),
    _P("KB-GFBOX", "", "ギフトBOX 3点セット", "ギフトセット", 7700, None, 2, 8, 1.5, loyalty=0.55),
)
del _P

_OPTIONS: dict[str, tuple[str, ...]] = {
    "fd": ("01 ライトオークル", "02 ナチュラルオークル", "03 オークル"),
    "lip": ("01 ピンクベージュ", "02 コーラル", "03 ローズ", "04 レッド", "05 テラコッタ", "06 モーヴ",
            "07 ヌードベージュ", "08 ボルドー"),
    "tint": ("01 チェリー", "02 ピーチ", "03 プラム", "04 アプリコット", "05 ローズ", "06 ベリー"),
}
# Seasonality of sunscreen demand by month (Jan..Dec).
_UV_SEASON = np.array([0.3, 0.4, 0.8, 1.4, 1.8, 2.0, 2.0, 1.6, 1.0, 0.6, 0.35, 0.3])


def product_catalog() -> dict[str, tuple[Product, ...]]:
    """The fictional shop's products per store (``rakuten``, ``shopify``)."""
    return {"rakuten": RAKUTEN_PRODUCTS, "shopify": SHOPIFY_PRODUCTS}


# ---------------------------------------------------------------------------
# People: names, addresses
# ---------------------------------------------------------------------------

# (kanji, kana, romaji, relative frequency).  髙橋, 山﨑 ... are encodable in cp932 only.
_SURNAMES: tuple[tuple[str, str, str, float], ...] = (
    ("佐藤", "サトウ", "sato", 1.87), ("鈴木", "スズキ", "suzuki", 1.79), ("高橋", "タカハシ", "takahashi", 1.2),
    ("田中", "タナカ", "tanaka", 1.34), ("伊藤", "イトウ", "ito", 1.08), ("渡辺", "ワタナベ", "watanabe", 1.07),
    ("山本", "ヤマモト", "yamamoto", 1.07), ("中村", "ナカムラ", "nakamura", 1.05), ("小林", "コバヤシ", "kobayashi", 1.04),
    ("加藤", "カトウ", "kato", 0.89), ("吉田", "ヨシダ", "yoshida", 0.84), ("山田", "ヤマダ", "yamada", 0.82),
    ("佐々木", "ササキ", "sasaki", 0.68), ("山口", "ヤマグチ", "yamaguchi", 0.64), ("松本", "マツモト", "matsumoto", 0.63),
    ("井上", "イノウエ", "inoue", 0.61), ("木村", "キムラ", "kimura", 0.58), ("林", "ハヤシ", "hayashi", 0.55),
    ("斎藤", "サイトウ", "saito", 0.55), ("清水", "シミズ", "shimizu", 0.54), ("山崎", "ヤマザキ", "yamazaki", 0.42),
    ("森", "モリ", "mori", 0.47), ("池田", "イケダ", "ikeda", 0.44), ("橋本", "ハシモト", "hashimoto", 0.44),
    ("阿部", "アベ", "abe", 0.43), ("石川", "イシカワ", "ishikawa", 0.42), ("山下", "ヤマシタ", "yamashita", 0.41),
    ("中島", "ナカジマ", "nakajima", 0.39), ("石井", "イシイ", "ishii", 0.38), ("小川", "オガワ", "ogawa", 0.38),
    ("前田", "マエダ", "maeda", 0.37), ("岡田", "オカダ", "okada", 0.37), ("長谷川", "ハセガワ", "hasegawa", 0.36),
    ("藤田", "フジタ", "fujita", 0.36), ("後藤", "ゴトウ", "goto", 0.35), ("近藤", "コンドウ", "kondo", 0.35),
    ("村上", "ムラカミ", "murakami", 0.33), ("遠藤", "エンドウ", "endo", 0.32), ("青木", "アオキ", "aoki", 0.31),
    ("坂本", "サカモト", "sakamoto", 0.31), ("斉藤", "サイトウ", "saito", 0.30), ("福田", "フクダ", "fukuda", 0.30),
    ("太田", "オオタ", "ota", 0.30), ("西村", "ニシムラ", "nishimura", 0.29), ("藤井", "フジイ", "fujii", 0.29),
    ("金子", "カネコ", "kaneko", 0.28), ("岡本", "オカモト", "okamoto", 0.28), ("藤原", "フジワラ", "fujiwara", 0.28),
    ("中野", "ナカノ", "nakano", 0.27), ("三浦", "ミウラ", "miura", 0.27), ("原田", "ハラダ", "harada", 0.26),
    ("中川", "ナカガワ", "nakagawa", 0.26), ("松田", "マツダ", "matsuda", 0.26), ("竹内", "タケウチ", "takeuchi", 0.26),
    ("小野", "オノ", "ono", 0.26), ("田村", "タムラ", "tamura", 0.25), ("中山", "ナカヤマ", "nakayama", 0.25),
    ("和田", "ワダ", "wada", 0.24), ("石田", "イシダ", "ishida", 0.24), ("森田", "モリタ", "morita", 0.23),
    ("上田", "ウエダ", "ueda", 0.23), ("原", "ハラ", "hara", 0.23), ("内田", "ウチダ", "uchida", 0.22),
    ("柴田", "シバタ", "shibata", 0.22), ("酒井", "サカイ", "sakai", 0.22), ("宮崎", "ミヤザキ", "miyazaki", 0.18),
    ("横山", "ヨコヤマ", "yokoyama", 0.21), ("高木", "タカギ", "takagi", 0.17), ("安藤", "アンドウ", "ando", 0.21),
    ("宮本", "ミヤモト", "miyamoto", 0.21), ("大野", "オオノ", "ono", 0.20), ("小島", "コジマ", "kojima", 0.20),
    ("谷口", "タニグチ", "taniguchi", 0.20), ("今井", "イマイ", "imai", 0.19), ("工藤", "クドウ", "kudo", 0.19),
    ("高田", "タカダ", "takada", 0.16), ("増田", "マスダ", "masuda", 0.19), ("丸山", "マルヤマ", "maruyama", 0.19),
    ("杉山", "スギヤマ", "sugiyama", 0.19), ("村田", "ムラタ", "murata", 0.18), ("大塚", "オオツカ", "otsuka", 0.18),
    ("新井", "アライ", "arai", 0.18), ("小山", "コヤマ", "koyama", 0.18), ("平野", "ヒラノ", "hirano", 0.18),
    ("藤本", "フジモト", "fujimoto", 0.18), ("河野", "コウノ", "kono", 0.17), ("上野", "ウエノ", "ueno", 0.17),
    ("野口", "ノグチ", "noguchi", 0.17), ("武田", "タケダ", "takeda", 0.17), ("松井", "マツイ", "matsui", 0.17),
    ("千葉", "チバ", "chiba", 0.17), ("岩崎", "イワサキ", "iwasaki", 0.17), ("菅原", "スガワラ", "sugawara", 0.17),
    ("木下", "キノシタ", "kinoshita", 0.17), ("久保", "クボ", "kubo", 0.16), ("佐野", "サノ", "sano", 0.16),
    ("野村", "ノムラ", "nomura", 0.16), ("松尾", "マツオ", "matsuo", 0.16), ("市川", "イチカワ", "ichikawa", 0.16),
    ("菊地", "キクチ", "kikuchi", 0.16), ("杉本", "スギモト", "sugimoto", 0.16), ("古川", "フルカワ", "furukawa", 0.16),
    ("大西", "オオニシ", "onishi", 0.16), ("島田", "シマダ", "shimada", 0.16), ("水野", "ミズノ", "mizuno", 0.15),
    ("桜井", "サクライ", "sakurai", 0.15), ("渡部", "ワタナベ", "watanabe", 0.15), ("高野", "タカノ", "takano", 0.15),
    ("吉川", "ヨシカワ", "yoshikawa", 0.15), ("山内", "ヤマウチ", "yamauchi", 0.15), ("西田", "ニシダ", "nishida", 0.15),
    ("飯田", "イイダ", "iida", 0.15), ("菊池", "キクチ", "kikuchi", 0.15), ("西川", "ニシカワ", "nishikawa", 0.15),
    ("小松", "コマツ", "komatsu", 0.15), ("北村", "キタムラ", "kitamura", 0.15), ("安田", "ヤスダ", "yasuda", 0.14),
    ("五十嵐", "イガラシ", "igarashi", 0.14), ("川口", "カワグチ", "kawaguchi", 0.14), ("平田", "ヒラタ", "hirata", 0.14),
    ("関", "セキ", "seki", 0.14), ("中田", "ナカタ", "nakata", 0.14), ("久保田", "クボタ", "kubota", 0.14),
    ("東", "アズマ", "azuma", 0.14), ("服部", "ハットリ", "hattori", 0.14), ("川村", "カワムラ", "kawamura", 0.14),
    ("岩田", "イワタ", "iwata", 0.14), ("辻", "ツジ", "tsuji", 0.13), ("渡邊", "ワタナベ", "watanabe", 0.06),
    ("齋藤", "サイトウ", "saito", 0.08), ("髙橋", "タカハシ", "takahashi", 0.22), ("山﨑", "ヤマサキ", "yamasaki", 0.07),
    ("宮﨑", "ミヤザキ", "miyazaki", 0.04), ("髙木", "タカギ", "takagi", 0.04), ("髙田", "タカダ", "takada", 0.03),
    ("德永", "トクナガ", "tokunaga", 0.03), ("濵田", "ハマダ", "hamada", 0.03),
)
# (kanji, kana, romaji, frequency)
_GIVEN_F: tuple[tuple[str, str, str, float], ...] = (
    ("陽子", "ヨウコ", "yoko", 1.2), ("恵子", "ケイコ", "keiko", 1.0), ("京子", "キョウコ", "kyoko", 0.8),
    ("幸子", "サチコ", "sachiko", 0.6), ("美穂", "ミホ", "miho", 1.0), ("由美", "ユミ", "yumi", 1.0),
    ("真由美", "マユミ", "mayumi", 0.9), ("久美子", "クミコ", "kumiko", 0.8), ("直美", "ナオミ", "naomi", 0.9),
    ("明美", "アケミ", "akemi", 0.8), ("智子", "トモコ", "tomoko", 1.1), ("裕子", "ユウコ", "yuko", 1.1),
    ("美香", "ミカ", "mika", 1.0), ("恵", "メグミ", "megumi", 1.0), ("愛", "アイ", "ai", 1.0), ("麻衣", "マイ", "mai", 1.0),
    ("彩", "アヤ", "aya", 0.9), ("舞", "マイ", "mai", 0.8), ("沙織", "サオリ", "saori", 1.0), ("香織", "カオリ", "kaori", 1.0),
    ("美咲", "ミサキ", "misaki", 1.0), ("優子", "ユウコ", "yuko", 0.9), ("陽菜", "ヒナ", "hina", 0.6),
    ("結衣", "ユイ", "yui", 0.7), ("葵", "アオイ", "aoi", 0.6), ("さくら", "サクラ", "sakura", 0.7),
    ("七海", "ナナミ", "nanami", 0.6), ("千尋", "チヒロ", "chihiro", 0.7), ("奈々", "ナナ", "nana", 0.6),
    ("彩花", "アヤカ", "ayaka", 0.8), ("真理子", "マリコ", "mariko", 0.7), ("由紀", "ユキ", "yuki", 0.8),
    ("理恵", "リエ", "rie", 0.8), ("純子", "ジュンコ", "junko", 0.8), ("典子", "ノリコ", "noriko", 0.7),
    ("洋子", "ヨウコ", "yoko", 0.7), ("美由紀", "ミユキ", "miyuki", 0.7), ("亜希子", "アキコ", "akiko", 0.7),
    ("綾香", "アヤカ", "ayaka", 0.7), ("瞳", "ヒトミ", "hitomi", 0.8), ("遥", "ハルカ", "haruka", 0.8),
    ("真央", "マオ", "mao", 0.6), ("莉子", "リコ", "riko", 0.5), ("花子", "ハナコ", "hanako", 0.3),
    ("友美", "トモミ", "tomomi", 0.7), ("早紀", "サキ", "saki", 0.7), ("加奈子", "カナコ", "kanako", 0.7),
    ("絵美", "エミ", "emi", 0.7), ("紀子", "ノリコ", "noriko", 0.6), ("祐子", "ユウコ", "yuko", 0.6),
    ("めぐみ", "メグミ", "megumi", 0.5), ("ひとみ", "ヒトミ", "hitomi", 0.4),
)
_GIVEN_M: tuple[tuple[str, str, str, float], ...] = (
    ("太郎", "タロウ", "taro", 0.5), ("大輔", "ダイスケ", "daisuke", 1.0), ("拓也", "タクヤ", "takuya", 1.0),
    ("健太", "ケンタ", "kenta", 0.9), ("翔太", "ショウタ", "shota", 0.9), ("誠", "マコト", "makoto", 1.0),
    ("浩", "ヒロシ", "hiroshi", 1.0), ("健一", "ケンイチ", "kenichi", 0.8), ("直樹", "ナオキ", "naoki", 0.9),
    ("和也", "カズヤ", "kazuya", 0.9), ("隆", "タカシ", "takashi", 1.0), ("達也", "タツヤ", "tatsuya", 0.9),
    ("秀樹", "ヒデキ", "hideki", 0.7), ("哲也", "テツヤ", "tetsuya", 0.8), ("健", "ケン", "ken", 0.7),
    ("亮", "リョウ", "ryo", 0.8), ("翔", "ショウ", "sho", 0.7), ("蓮", "レン", "ren", 0.5), ("悠真", "ユウマ", "yuma", 0.5),
    ("大樹", "ダイキ", "daiki", 0.8), ("剛", "ツヨシ", "tsuyoshi", 0.7), ("修", "オサム", "osamu", 0.6),
    ("淳", "ジュン", "jun", 0.7), ("雄一", "ユウイチ", "yuichi", 0.7), ("一郎", "イチロウ", "ichiro", 0.5),
    ("正人", "マサト", "masato", 0.7), ("康弘", "ヤスヒロ", "yasuhiro", 0.7), ("浩二", "コウジ", "koji", 0.7),
    ("慎也", "シンヤ", "shinya", 0.7), ("裕介", "ユウスケ", "yusuke", 0.8),
)

# (prefecture, population in 10,000s, [(city, first 3 postcode digits, share)])
_PREFECTURES: tuple[tuple[str, int, tuple[tuple[str, str, float], ...]], ...] = (
    ("北海道", 514, (("札幌市中央区", "060", 3), ("札幌市北区", "001", 3), ("旭川市", "070", 2), ("函館市", "040", 1))),
    ("青森県", 120, (("青森市", "030", 2), ("八戸市", "031", 1))),
    ("岩手県", 117, (("盛岡市", "020", 1),)),
    ("宮城県", 226, (("仙台市青葉区", "980", 3), ("仙台市泉区", "981", 2), ("石巻市", "986", 1))),
    ("秋田県", 93, (("秋田市", "010", 1),)),
    ("山形県", 104, (("山形市", "990", 1),)),
    ("福島県", 179, (("郡山市", "963", 2), ("福島市", "960", 2), ("いわき市", "970", 1))),
    ("茨城県", 284, (("水戸市", "310", 2), ("つくば市", "305", 2), ("日立市", "317", 1))),
    ("栃木県", 191, (("宇都宮市", "320", 3), ("小山市", "323", 1))),
    ("群馬県", 191, (("高崎市", "370", 2), ("前橋市", "371", 2))),
    ("埼玉県", 733, (("さいたま市浦和区", "330", 3), ("川口市", "332", 3), ("川越市", "350", 2), ("所沢市", "359", 2),
                  ("越谷市", "343", 2))),
    ("千葉県", 627, (("千葉市中央区", "260", 3), ("船橋市", "273", 3), ("松戸市", "271", 2), ("柏市", "277", 2),
                  ("市川市", "272", 2))),
    ("東京都", 1404, (("世田谷区", "154", 4), ("練馬区", "176", 3), ("大田区", "144", 3), ("江戸川区", "132", 3),
                   ("杉並区", "166", 3), ("足立区", "120", 3), ("新宿区", "160", 2), ("港区", "105", 2),
                   ("八王子市", "192", 2), ("町田市", "194", 2))),
    ("神奈川県", 923, (("横浜市港北区", "222", 3), ("横浜市青葉区", "225", 3), ("川崎市中原区", "211", 3),
                    ("相模原市中央区", "252", 2), ("藤沢市", "251", 2), ("横須賀市", "238", 2))),
    ("新潟県", 213, (("新潟市中央区", "950", 2), ("長岡市", "940", 1))),
    ("富山県", 102, (("富山市", "930", 1),)),
    ("石川県", 111, (("金沢市", "920", 1),)),
    ("福井県", 75, (("福井市", "910", 1),)),
    ("山梨県", 80, (("甲府市", "400", 1),)),
    ("長野県", 201, (("長野市", "380", 1), ("松本市", "390", 1))),
    ("岐阜県", 194, (("岐阜市", "500", 1),)),
    ("静岡県", 355, (("静岡市葵区", "420", 2), ("浜松市中央区", "430", 2), ("沼津市", "410", 1))),
    ("愛知県", 748, (("名古屋市中区", "460", 3), ("名古屋市千種区", "464", 3), ("豊田市", "471", 2), ("岡崎市", "444", 2),
                  ("一宮市", "491", 1))),
    ("三重県", 174, (("津市", "514", 1), ("四日市市", "510", 1))),
    ("滋賀県", 141, (("大津市", "520", 1), ("草津市", "525", 1))),
    ("京都府", 254, (("京都市左京区", "606", 2), ("京都市伏見区", "612", 2), ("宇治市", "611", 1))),
    ("大阪府", 877, (("大阪市北区", "530", 3), ("大阪市天王寺区", "543", 2), ("堺市堺区", "590", 2), ("豊中市", "560", 2),
                  ("吹田市", "564", 2), ("東大阪市", "577", 2), ("枚方市", "573", 2))),
    ("兵庫県", 537, (("神戸市中央区", "650", 3), ("姫路市", "670", 2), ("西宮市", "662", 2), ("尼崎市", "660", 2))),
    ("奈良県", 130, (("奈良市", "630", 1),)),
    ("和歌山県", 90, (("和歌山市", "640", 1),)),
    ("鳥取県", 54, (("鳥取市", "680", 1),)),
    ("島根県", 65, (("松江市", "690", 1),)),
    ("岡山県", 186, (("岡山市北区", "700", 2), ("倉敷市", "710", 1))),
    ("広島県", 276, (("広島市中区", "730", 2), ("福山市", "720", 1))),
    ("山口県", 131, (("山口市", "753", 1), ("下関市", "750", 1))),
    ("徳島県", 70, (("徳島市", "770", 1),)),
    ("香川県", 94, (("高松市", "760", 1),)),
    ("愛媛県", 131, (("松山市", "790", 1),)),
    ("高知県", 68, (("高知市", "780", 1),)),
    ("福岡県", 510, (("福岡市中央区", "810", 3), ("福岡市博多区", "812", 2), ("北九州市小倉北区", "802", 2),
                  ("久留米市", "830", 1))),
    ("佐賀県", 80, (("佐賀市", "840", 1),)),
    ("長崎県", 128, (("長崎市", "850", 2), ("佐世保市", "857", 1))),
    ("熊本県", 172, (("熊本市中央区", "860", 1),)),
    ("大分県", 111, (("大分市", "870", 1),)),
    ("宮崎県", 106, (("宮崎市", "880", 1),)),
    ("鹿児島県", 156, (("鹿児島市", "890", 1),)),
    ("沖縄県", 147, (("那覇市", "900", 2), ("沖縄市", "904", 1))),
)
_TOWNS: tuple[str, ...] = (
    "本町", "中央", "栄町", "緑町", "旭町", "桜ケ丘", "南町", "東町", "若葉", "日吉", "青葉台", "光が丘", "松原",
    "富士見", "宮前", "新町", "大町", "泉町", "緑が丘", "八幡町", "寿町", "元町", "港町", "北町", "西町", "住吉町",
    "春日", "平和台", "百合ケ丘", "美しが丘", "弥生町", "錦町", "朝日町", "昭和町", "常盤台", "千代田", "高砂",
    "柳町", "花園", "桜木町", "小松原", "白山", "梅田", "鶴見", "大和町", "幸町", "曙町", "天神", "紅葉丘", "清水",
)
# Building names; a few carry cp932-only characters as real addresses do.
_BUILDINGS: tuple[str, ...] = (
    "サンハイツ", "メゾン・ド・ソレイユ", "グランパレス", "コーポ桜", "パークサイド", "レジデンス翠", "ハイツ緑",
    "ベルメゾン", "シャトー白樺", "エクセル", "グリーンコート", "アーバンヒルズ", "リバーサイド", "ハイム",
    "コーポ髙橋", "サンライズ②", "メゾン﨑山", "パレス①", "第③コーポ", "フォレスト", "カーサ",
)
_COMPANIES: tuple[str, ...] = ("㈱ミナト商事", "㈱アオバ企画", "㈲さくら工房", "㈱ヒカリ設計", "㈱ツバサ物流")
_FULLWIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")

_RAKUTEN_PAY: tuple[tuple[str, float], ...] = (
    ("クレジットカード", 0.66), ("後払い決済", 0.08), ("代金引換", 0.06), ("Apple Pay", 0.07),
    ("銀行振込", 0.04), ("コンビニ前払決済", 0.04), ("楽天バンク決済", 0.05),
)
_SHOPIFY_PAY: tuple[tuple[str, float], ...] = (
    ("Shopify Payments", 0.64), ("PayPay", 0.12), ("Amazon Pay", 0.12), ("後払い決済（NP後払い）", 0.07),
    ("銀行振込", 0.05),
)
_DEVICES: tuple[tuple[str, float], ...] = (("スマートフォン", 0.74), ("PC", 0.21), ("タブレット", 0.05))
_DELIVERY_SLOTS: tuple[str, ...] = ("午前中", "14時～16時", "16時～18時", "18時～20時", "19時～21時")
_COMMENTS: tuple[str, ...] = (
    "ギフト用です。金額のわかるものは同封しないでください。",
    "いつもありがとうございます。\n次回もよろしくお願いします。",
    "置き配を希望します（玄関前）。",
    "[配送日時指定:]\n平日の夜に受け取れます。",
    "肌に合うか心配なので、サンプルがあれば同封をお願いします。",
    "前回と同じ住所でお願いします。",
)
_NOSHI: tuple[str, ...] = ("無地のし", "御礼", "御祝", "内祝")
_RAKUTEN_STATUS: tuple[str, ...] = ("発送済", "発送待ち", "キャンセル確定")

# ---------------------------------------------------------------------------
# Time: hourly intensity with the sale calendar
# ---------------------------------------------------------------------------

# Relative order intensity by hour of day (JST): lunch and late-evening peaks.
_DAY_CURVE = np.array([0.90, 0.55, 0.30, 0.18, 0.14, 0.18, 0.32, 0.55, 0.72, 0.82, 0.92, 1.05,
                       1.40, 1.20, 0.95, 0.90, 0.90, 0.95, 1.00, 1.12, 1.42, 1.62, 1.68, 1.38])
_WEEKDAY = np.array([1.04, 1.00, 0.99, 0.97, 0.93, 0.95, 1.12])  # Monday .. Sunday
_SEASON = np.array([0.92, 0.86, 1.00, 0.96, 1.00, 1.00, 1.04, 0.95, 1.00, 1.00, 1.12, 1.22])
_GROWTH_PER_YEAR = 1.2  # new-customer intake grows ~20 % a year
# Per-purchase dropout probability ~ Beta(a, b): U-shaped, a polarised base of
# one-off buyers and a loyal core (BG/NBD's p).
_DROPOUT_BETA = (0.25, 0.15)
# Personal pace (multiplier on the repurchase cycle) ~ lognormal(mu, sigma).
_PACE = (0.0, 0.3)
# Share of repeat orders that follow the main product's cycle; the rest come
# after 7 days + an exponential wait of this mean (days, times the pace).
_REPLENISH_SHARE = 0.85
_ADHOC_MEAN_DAYS = 50.0
# Impulse purchases: an independent Poisson-like stream whose mean gap (days)
# is lognormal per customer; a repeat order comes at whichever is earlier.
_IMPULSE_GAP = (100.0, 0.8)
# Loyal customers (low dropout) also buy more often: gap multiplier = floor + dropout.
_IMPULSE_LOYAL_FLOOR = 0.4
# Share of first-time buyers who never come back whatever their profile (deal hunters, gift buyers).
_ONE_AND_DONE = 0.2
# Chance to stay active after an impulse purchase; factor on subscribers' ad-hoc loyalty.
_IMPULSE_KEEP = 0.95
_SUBSCRIBER_ADHOC_KEEP = 0.7
# Cumulative probabilities of 1, 2, 3, 4 lines per order (outside / inside big sales).
_LINES_CUM = (0.45, 0.80, 0.94, 1.0)
_LINES_CUM_SALE = (0.36, 0.71, 0.90, 1.0)

# Event strength (intensity multipliers) for repeat buyers; acquisitions react more strongly.
_MULT = {
    "super_sale": 3.0,
    "marathon": 2.0,
    "black_friday": 2.0,
    "point_day": 1.45,
    "wonderful_day": 1.3,
    "start_rush": 1.8,
    "last_spurt": 1.4,
    "pre_event_lull": 0.8,
    "anniversary": 2.0,
    "new_year": 1.6,
    "line_coupon_day": 1.5,
    "year_end": 1.25,
}
_ACQ_EVENT_GAIN = 1.25

# Confirmed dates (FACTS.md §6) that override the seeded pattern for お買い物マラソン.
_CONFIRMED_MARATHONS: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {
    (2025, 2): ((19, 23),),
    (2026, 2): ((4, 10), (19, 23)),
}


@dataclass(frozen=True)
class SaleEvent:
    """One sale or campaign of the sample calendar.

    Attributes
    ----------
    store : str
        ``rakuten`` or ``shopify``.
    kind : str
        ``super_sale``, ``marathon``, ``black_friday``, ``point_day``,
        ``wonderful_day`` (Rakuten); ``black_friday``, ``anniversary``,
        ``new_year``, ``line_coupon_day``, ``year_end`` (Shopify).
    name : str
        Japanese name.
    start : datetime.datetime
        First moment (JST, naive).
    end : datetime.datetime
        End, exclusive (a sale running "to 01:59" ends at 02:00).
    status : str
        ``confirmed`` (FACTS.md) or ``pattern``.
    """

    store: str
    kind: str
    name: str
    start: dt.datetime
    end: dt.datetime
    status: str = "pattern"


def _month_iter(start: dt.date, end: dt.date) -> list[tuple[int, int]]:
    months = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def _at(y: int, m: int, d: int, h: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h)


def sale_calendar(start: dt.date, end: dt.date, seed: int = 7) -> list[SaleEvent]:
    """The sample shop's sale calendar between two dates (inclusive).

    楽天スーパーSALE runs in March, June, September and December from the 4th
    20:00 to the 11th 01:59.  お買い物マラソン (20:00 start, 01:59 end) runs once
    or twice a month with seeded start days (confirmed dates from FACTS.md
    where known); November's late event is 楽天ブラックフライデー.  Point days
    (5と0のつく日, ワンダフルデー on the 1st) are listed too.  The Shopify store
    has its own campaigns.  The pattern for a month depends only on ``seed``
    and the month, not on the requested range.

    Parameters
    ----------
    start, end : datetime.date
        First and last day to cover.
    seed : int
        Seed of the pattern jitter.

    Returns
    -------
    list of SaleEvent
        Sorted by start.
    """
    events: list[SaleEvent] = []
    first = dt.date(start.year, start.month, 1) - dt.timedelta(days=1)
    for y, m in _month_iter(first, end + dt.timedelta(days=31)):
        rng = np.random.default_rng([seed, y, m])
        jitter = rng.integers(0, 4, size=4)
        lengths = rng.integers(4, 7, size=2)
        early = rng.random() < 0.6
        if m in (3, 6, 9, 12):
            status = "confirmed" if (y, m) == (2025, 9) else "pattern"
            events.append(SaleEvent("rakuten", "super_sale", "楽天スーパーSALE", _at(y, m, 4, 20), _at(y, m, 11, 2),
                                    status))
            late = [(19 + int(jitter[0]), 19 + int(jitter[0]) + int(lengths[0]))]
            early_runs: list[tuple[int, int]] = []
        else:
            late = [(17 + int(jitter[1]), 17 + int(jitter[1]) + int(lengths[1]))]
            early_runs = [(3 + int(jitter[2] % 2), 3 + int(jitter[2] % 2) + 5 + int(jitter[3] % 2))] if early else []
        runs = early_runs + late
        status = "pattern"
        if (y, m) in _CONFIRMED_MARATHONS:
            runs, status = list(_CONFIRMED_MARATHONS[(y, m)]), "confirmed"
        for d0, d1 in runs:
            kind, name = ("black_friday", "楽天ブラックフライデー") if (m == 11 and d0 >= 15) else ("marathon", "お買い物マラソン")
            events.append(SaleEvent("rakuten", kind, name, _at(y, m, d0, 20), _at(y, m, d1, 2), status))
        last_day = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)).day
        events.append(SaleEvent("rakuten", "wonderful_day", "ワンダフルデー", _at(y, m, 1), _at(y, m, 2)))
        for d in (5, 10, 15, 20, 25, 30):
            if d <= last_day:
                nxt = _at(y, m, d) + dt.timedelta(days=1)
                events.append(SaleEvent("rakuten", "point_day", "5と0のつく日", _at(y, m, d), nxt))
        # Shopify D2C campaigns
        if m == 1:
            events.append(SaleEvent("shopify", "new_year", "初売りセール", _at(y, 1, 1), _at(y, 1, 4)))
        if m == 5:
            events.append(SaleEvent("shopify", "anniversary", "ブランド周年祭", _at(y, 5, 10), _at(y, 5, 17)))
        if m == 11:
            thursday = [d for d in range(22, 29) if dt.date(y, 11, d).weekday() == 3][0]
            bf = _at(y, 11, thursday) + dt.timedelta(days=1)
            events.append(SaleEvent("shopify", "black_friday", "BLACK FRIDAY", bf, bf + dt.timedelta(days=4)))
        if m == 12:
            events.append(SaleEvent("shopify", "year_end", "年末感謝セール", _at(y, 12, 20), _at(y, 12, 29)))
        events.append(SaleEvent("shopify", "line_coupon_day", "LINE限定クーポンデー", _at(y, m, 15, 20), _at(y, m, 18)))
    lo = dt.datetime.combine(start, dt.time())
    hi = dt.datetime.combine(end, dt.time()) + dt.timedelta(days=1)
    events = [e for e in events if e.end > lo and e.start < hi]
    events.sort(key=lambda e: (e.start, e.store, e.kind))
    return events


@dataclass
class _Clock:
    """Hourly intensity of one store over the period (plus a tail after ``end``)."""

    start: dt.date
    n_days: int
    hours: int  # hours inside the period
    cum_repeat: np.ndarray  # cumulative repeat intensity, length hours_ext + 1
    cum_acq: np.ndarray  # cumulative acquisition intensity, length hours + 1
    super_sale: np.ndarray  # bool per hour (ext)
    big_event: np.ndarray  # bool per hour (ext): super sale, marathon, black friday, Shopify campaigns
    month: np.ndarray  # month (1..12) per hour (ext)


def _build_clocks(start: dt.date, n_days: int, seed: int) -> dict[str, _Clock]:
    tail_days = 60
    days_ext = n_days + tail_days
    hours_ext = days_ext * 24
    end_ext = start + dt.timedelta(days=days_ext - 1)
    day64 = np.datetime64(start, "D") + np.arange(days_ext)
    month64 = day64.astype("datetime64[M]")
    month = (month64.astype(np.int64) % 12 + 1).astype(np.int64)
    dow = (day64.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    hod = np.tile(np.arange(24), days_ext)
    month_h = np.repeat(month, 24)
    base = (np.log(_DAY_CURVE)[hod] + np.repeat(np.log(_WEEKDAY)[dow] + np.log(_SEASON)[month - 1], 24))
    t0 = dt.datetime.combine(start, dt.time())

    def hidx(moment: dt.datetime) -> int:
        return int((moment - t0).total_seconds() // 3600)

    clocks: dict[str, _Clock] = {}
    events = sale_calendar(start, end_ext, seed)
    for store in ("rakuten", "shopify"):
        ev = np.zeros(hours_ext)
        ss = np.zeros(hours_ext, dtype=bool)
        big = np.zeros(hours_ext, dtype=bool)
        for e in events:
            if e.store != store:
                continue
            s, t = max(hidx(e.start), 0), min(hidx(e.end), hours_ext)
            if t <= 0 or s >= hours_ext:
                continue
            ev[s:t] += math.log(_MULT[e.kind])
            if e.kind in ("super_sale", "marathon", "black_friday") or store == "shopify":
                big[s:t] = True
            if e.kind == "super_sale":
                ss[s:t] = True
            if e.kind in ("super_sale", "marathon", "black_friday"):
                ev[s:min(s + 2, t)] += math.log(_MULT["start_rush"])
                ev[max(t - 4, s):t] += math.log(_MULT["last_spurt"])
                ev[max(s - 44, 0):s] += math.log(_MULT["pre_event_lull"])
        hours = n_days * 24
        growth = math.log(_GROWTH_PER_YEAR) * np.arange(hours) / (365.25 * 24)
        repeat = np.exp(base + ev)
        acq = np.exp(base[:hours] + _ACQ_EVENT_GAIN * ev[:hours] + growth)
        clocks[store] = _Clock(
            start=start,
            n_days=n_days,
            hours=hours,
            cum_repeat=np.concatenate([[0.0], np.cumsum(repeat)]),
            cum_acq=np.concatenate([[0.0], np.cumsum(acq)]),
            super_sale=ss,
            big_event=big,
            month=month_h,
        )
    return clocks


def _sample_hours(cum: np.ndarray, lo: np.ndarray, hi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw an hour in ``[lo, hi)`` per row, proportional to the intensity behind ``cum``."""
    c_lo = cum[lo]
    target = c_lo + u * (cum[hi] - c_lo)
    h = np.searchsorted(cum, target, side="right") - 1
    return np.clip(h, lo, hi - 1)


# ---------------------------------------------------------------------------
# Identifiers: bijective scrambles keep per-customer values unique at any size
# ---------------------------------------------------------------------------

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _scramble(x: np.ndarray, hi: int, lo: int, keys: Sequence[int]) -> np.ndarray:
    """A keyed permutation of ``range(hi * lo)``: unique inputs give unique, well-mixed outputs.

    A Feistel network on the mixed-radix pair (x // lo, x % lo); each round is
    a bijection, so customer numbers map to distinct phone numbers, relay
    addresses and e-mail numbers however many customers there are.
    """
    x = x.astype(np.int64)
    a, b = hi, lo
    for k in keys:
        left, right = x // b, x % b
        f = ((right * (k | 1)) ^ (right >> 3) ^ (k >> 5)) % a
        x = right * a + (left + f) % a
        a, b = b, a
    return x


def _choice(rng: np.random.Generator, pairs: Sequence[tuple[str, float]], n: int) -> np.ndarray:
    w = np.array([p for _, p in pairs], dtype=float)
    return rng.choice(len(pairs), size=n, p=w / w.sum())


def _cum_table(weights: np.ndarray) -> np.ndarray:
    """Row-normalised cumulative weights (last column exactly 1)."""
    c = np.cumsum(weights, axis=-1)
    c = c / c[..., -1:]
    c[..., -1] = 1.0
    return c


def _draw_rows(cum: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Categorical draw per element from the cumulative table row ``rows[i]``."""
    return (cum[rows] < u[:, None]).sum(axis=1)


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


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------


def generate_sample(out_dir: str | Path, customers: int = 2000, seed: int = 7,
                    end: dt.date = dt.date(2026, 10, 31), years: float = 2.0,
                    shopify_share: float = 0.25,
                    progress: Callable[[float], None] | None = None) -> dict[str, Path]:
    """Write the fictional shop's export files into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Directory to write into (created if missing; existing files are replaced).
    customers : int
        Number of customers over both stores (each places at least one order).
        About 5.2 order lines per customer: 2,000 give ~11,000 lines (about
        8,200 Rakuten rows and 2,900 Shopify rows), 1,000,000 give ~5.1
        million.  Customers are simulated and written in chunks of
        :data:`CHUNK_CUSTOMERS`, so memory stays bounded (~300 MB) at any size.
    seed : int
        Seed of everything random; the same arguments give byte-identical files.
    end : datetime.date
        Last day with orders (JST).
    years : float
        Length of the order history.
    shopify_share : float
        Share of customers who belong to the Shopify store (0..1); the rest buy on Rakuten.
    progress : callable, optional
        Called with the completed fraction (0 < f <= 1) after each chunk.

    Returns
    -------
    dict of str to Path
        ``rakuten_orders``, ``shopify_orders``, ``products`` and ``contacts``.

    Raises
    ------
    ValueError
        For a non-positive ``customers`` or ``years`` or a share outside 0..1.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if years <= 0:
        raise ValueError("years must be positive")
    if not 0.0 <= shopify_share <= 1.0:
        raise ValueError("shopify_share must be between 0 and 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_days = max(30, int(round(years * 365.25)))
    start = end - dt.timedelta(days=n_days - 1)
    root = np.random.default_rng(seed)
    ctx_rng = root.spawn(1)[0]
    ctx = _make_context(start, end, n_days, seed, customers, ctx_rng)
    n_chunks = -(-customers // CHUNK_CUSTOMERS)
    chunk_rngs = root.spawn(n_chunks)
    paths = {
        "rakuten_orders": out / "rakuten_orders.csv",
        "shopify_orders": out / "shopify_orders.csv",
        "products": out / "products.csv",
        "contacts": out / "contacts.csv",
    }
    paths["products"].write_bytes(
        (",".join(PRODUCT_COLUMNS) + "\r\n" + _product_rows()).encode("utf-8-sig"))
    with contextlib.ExitStack() as stack:
        rakuten = stack.enter_context(open(paths["rakuten_orders"], "wb"))
        shopify = stack.enter_context(open(paths["shopify_orders"], "wb"))
        contacts = stack.enter_context(open(paths["contacts"], "wb"))
        rakuten.write(('"' + '","'.join(RAKUTEN_COLUMNS) + '"\r\n').encode("cp932"))
        shopify.write((",".join(SHOPIFY_COLUMNS) + "\r\n").encode("utf-8-sig"))
        contacts.write((",".join(CONTACT_COLUMNS) + "\r\n").encode("utf-8-sig"))
        for k in range(n_chunks):
            rng = chunk_rngs[k]
            gidx = np.arange(k * CHUNK_CUSTOMERS, min(customers, (k + 1) * CHUNK_CUSTOMERS), dtype=np.int64)
            on_shopify = rng.random(len(gidx)) < shopify_share
            sim_r = _simulate(rng, gidx[~on_shopify], ctx, "rakuten")
            sim_s = _simulate(rng, gidx[on_shopify], ctx, "shopify")
            _write_rakuten(rakuten, rng, ctx, sim_r)
            shopify.write(_shopify_rows(rng, ctx, sim_s).encode("utf-8"))
            contacts.write(_contact_rows(rng, (sim_r, sim_s)).encode("utf-8"))
            if progress is not None:
                progress((k + 1) / n_chunks)
    return paths
