"""Load the bundled fictional sample shop into a store (first start, demos, tests)."""

from __future__ import annotations

from collections.abc import Callable

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.ingest.importer import ImportReport
from crm_core.messaging.templates import SETTING_SHOP, ShopProfile, forget_sample_identity, save_shop_profile
from crm_core.pipeline import import_files
from crm_core.sample.store import LOADED, is_sample_store, real_data_arrived
from crm_core.tempfiles import work_dir

DEFAULT_CUSTOMERS = 1500
SAMPLE_SHOP = ShopProfile(
    shop_name="ことのはコスメ 楽天市場店（サンプル）",
    company_name="株式会社ことのは（架空の会社）",
    sender_name="ことのはコスメ（サンプル）",
    shop_address="〒100-0000 東京都千代田区サンプル町1-2-3",
    shop_contact="support@example.jp（平日10:00〜17:00）",
    shop_url="https://www.rakuten.co.jp/kotonoha-sample/",
    unsubscribe_url="https://www.rakuten.co.jp/kotonoha-sample/mailmagazine/",
    product_url_pattern="https://item.rakuten.co.jp/kotonoha-sample/{product_id}/",
    platform="rakuten",
)


def load_sample(
    store: Store,
    customers: int = DEFAULT_CUSTOMERS,
    seed: int = 7,
    progress: Callable[[float, str], None] | None = None,
) -> ImportReport:
    """Generate the sample shop's exports and import them through the real importer.

    Only into an empty store or one that already holds the sample (see
    :mod:`crm_core.sample.store`: the console keeps the sample in its own file).

    The product master and the LINE-friend list go in first (the console's own
    layouts, detected without a mapping), then the Rakuten cp932 and Shopify order exports; last,
    a few past campaigns with per-recipient results (see
    :mod:`crm_core.sample.campaigns`) so the results page has something to show.
    """
    from crm_core.sample.generate import generate_sample

    if store.table_count("imports") and not is_sample_store(store):
        # Fiction never goes into a shop's own data (its Shopify orders are #1001…,
        # Shopify's default numbers, and would replace real orders).
        raise InputError(
            "このデータベースにはショップのデータが入っているため、架空のサンプルは読み込みません。"
            "サンプルショップは別のファイルに用意して表示します（「データ取込」→「サンプルショップを表示」）。",
            "sample into a store with real data",
        )

    def say(frac: float, text: str) -> None:
        if progress:
            progress(frac, text)

    with work_dir("sample") as tmp:
        say(0.0, "サンプルショップのデータを作成しています…")
        paths = generate_sample(tmp, customers=customers, seed=seed)
        say(0.3, "商品マスタと連絡先リストを取り込んでいます…")
        # the console's own product and contact layouts: detected like any export (no mapping)
        import_files(store, [paths["products"], paths["contacts"]], rebuild_model=False)
        report = import_files(
            store,
            [paths["rakuten_orders"], paths["shopify_orders"]],
            progress=lambda f, t: say(0.4 + 0.6 * f, t),
        )
    say(0.95, "過去の施策の結果を作成しています…")
    from crm_core.sample.campaigns import load_sample_campaigns

    load_sample_campaigns(store, seed=seed)
    if not store.get_setting(SETTING_SHOP):
        # Fictional sender details so the sample's e-mails can be previewed; recorded as the sample's
        # so that the lint refuses them and they are dropped with the sample (templates.shop_profile).
        save_shop_profile(store, SAMPLE_SHOP, sample=True)
    store.set_setting(LOADED, True)
    return report


def remove_sample_identity(store: Store) -> bool:
    """Drop the sample shop's fictitious sender details (call when the sample data is deleted)."""
    store.set_setting(LOADED, False)
    return forget_sample_identity(store)


def prepare_for_real_import(store: Store) -> bool:
    """Before a real import into ``store``: remove the sample shop if ``store`` holds it.

    Stores written by earlier versions kept the sample in the shop's own file;
    the first real import then starts from an empty store (the sample's
    orders, customers, campaigns and its fictional shop profile go), so no
    sample order can be matched with or replaced by a real one.  Returns True
    when the sample was removed.
    """
    if not is_sample_store(store):
        return False
    store.clear_data()
    remove_sample_identity(store)
    real_data_arrived(store)
    return True
