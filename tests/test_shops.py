"""Several shops: one store per shop, chosen by name; nothing of one shop appears in another."""

from __future__ import annotations

import pytest

from crm_core import access as A
from crm_core import shops
from crm_core.db import Store
from crm_core.errors import InputError


@pytest.fixture
def shops_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_SHOPS_DIR", str(tmp_path / "shops"))
    monkeypatch.setenv("CRM_DB", str(tmp_path / "crm.duckdb"))
    return tmp_path


def test_default_store_is_unchanged(shops_dir):
    assert shops.db_path() == shops_dir / "crm.duckdb"
    assert shops.list_shops() == []
    assert shops.exists(shops.DEFAULT)


def test_each_shop_has_its_own_store_and_settings(shops_dir):
    a, b = Store(shops.db_path("rakuten-main")), Store(shops.db_path("shopify"))
    assert shops.db_path("shopify") == shops_dir / "shops" / "shopify" / "crm.duckdb"
    assert shops.list_shops() == ["rakuten-main", "shopify"]
    a.set_setting("shop_profile", {"name": "楽天店"})
    assert b.get_setting("shop_profile") is None
    A.sign_in(a, "a@example.jp", "A")
    assert A.list_users(b) == []
    a.close()
    b.close()


@pytest.mark.parametrize("name", ["", "../etc", "Shop", "a/b", "ショップ", "x" * 41, ".hidden", "-x"])
def test_shop_names_cannot_escape_the_folder(shops_dir, name):
    with pytest.raises(InputError, match="ショップ名"):
        shops.db_path(name or " ")
