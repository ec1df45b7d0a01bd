"""LINE link files: order number / phone / e-mail -> LINE user id, and the reach history per import."""

from __future__ import annotations

from crm_core.analytics.overview import line_reach
from crm_core.ingest import formats as F
from crm_core.pipeline import import_files
from tests import profit_shop as shop
from tests.fixtures import write_csv

LINK_MAP = {"注文番号": "order_id", "電話番号": "phone", "メールアドレス": "email", "LINEユーザーID": "line_user_id"}


def _orders(store, tmp_path):
    path = write_csv(tmp_path / "orders.csv", shop.ORDER_HEADER, shop.order_rows(), "utf-8")
    import_files(store, [path], fmt="generic", mapping=shop.ORDER_MAP, kind="orders", rebuild_model=False)


def _links(store, tmp_path, name, rows):
    path = write_csv(tmp_path / name, list(LINK_MAP), rows, "utf-8")
    return import_files(store, [path], fmt="generic", mapping=LINK_MAP, rebuild_model=False)


def _line_ids(store) -> dict[str, str | None]:
    return dict(store.fetchall("SELECT email, line_user_id FROM customers ORDER BY email"))


def test_links_by_order_number_phone_and_email_and_reach_history(store, tmp_path):
    _orders(store, tmp_path)
    # O4 belongs to a; phone of b with hyphens; an unknown order number links nobody.
    rep = _links(store, tmp_path, "links1.csv", [
        {"注文番号": "O4", "LINEユーザーID": "U_a"},
        {"電話番号": "090-2222-2222", "LINEユーザーID": "U_b"},
        {"注文番号": "NOPE", "LINEユーザーID": "U_x"},
        {"LINEユーザーID": "U_empty"},
    ])
    assert rep.files[0].kind == "line_links" and rep.files[0].contacts == 3 and rep.files[0].rows_rejected == 1
    assert _line_ids(store) == {"a@example.jp": "U_a", "b@example.jp": "U_b", "c@example.jp": None}
    _links(store, tmp_path, "links2.csv", [{"メールアドレス": "C@example.jp", "LINEユーザーID": "U_c"}])
    assert _line_ids(store)["c@example.jp"] == "U_c"
    reach = line_reach(store)
    assert (reach["customers"], reach["line_customers"], reach["linked_by_files"]) == (3, 3, 3)
    assert [(h["customers"], h["line_customers"], h["added"]) for h in reach["history"]] == [(3, 0, 0), (3, 2, 2), (3, 3, 1)]
    assert reach["history"][1]["file_names"] == "links1.csv"


def test_same_link_file_twice_adds_nothing(store, tmp_path):
    _orders(store, tmp_path)
    rows = [{"注文番号": "O1", "LINEユーザーID": "U_a"}]
    _links(store, tmp_path, "l.csv", rows)
    _links(store, tmp_path, "l.csv", rows)
    assert store.table_count("line_links") == 1
    assert line_reach(store)["line_customers"] == 1


def test_link_file_kind_is_guessed():
    assert F.guess_kind(["注文番号", "LINEユーザーID"]) == "line_links"
    assert F.guess_kind(["注文番号", "注文日時", "合計金額"]) == "orders"
    assert F.guess_kind(["配信日", "配信数", "開封数", "クリック数"]) == "message_stats"
    assert F.guess_kind(["商品コード", "原価"]) == "products"


def test_link_file_rebuilds_the_model_so_segments_see_line(store, tmp_path):
    path = write_csv(tmp_path / "orders.csv", shop.ORDER_HEADER, shop.order_rows(), "utf-8")
    import_files(store, [path], fmt="generic", mapping=shop.ORDER_MAP, kind="orders")
    links = write_csv(tmp_path / "l.csv", list(LINK_MAP), [{"注文番号": "O5", "LINEユーザーID": "U_c"}], "utf-8")
    import_files(store, [links], fmt="generic", mapping=LINK_MAP)  # the pipeline rebuilds the customer model
    assert store.scalar("SELECT count(*) FILTER (WHERE has_line) FROM customer_model") == 1
