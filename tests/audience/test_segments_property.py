"""Property tests: random and hostile rules never break anything.

* any JSON-like input either works or raises :class:`InputError` (never another error);
* a valid rule and its NOT split the customers exactly;
* hostile values (SQL, file paths, formulas, control characters) leave every
  table of the store unchanged and create no file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.audience import segments as S
from crm_core.audience.fields import ELEMENT, FIELDS, OPERATORS, WINDOW_TYPES, operators_for
from crm_core.errors import InputError
from tests.segment_shop import segment_store

HOSTILE = [
    "'; DROP TABLE orders; --",
    "\"; DELETE FROM customer_model; --",
    "x' OR '1'='1",
    "1); DROP TABLE customers; --",
    "COPY customer_model TO '/tmp/segment-pwned.csv'",
    "read_csv('/etc/passwd')",
    "' UNION SELECT * FROM read_text('/etc/passwd') --",
    "ATTACH '/tmp/segment-pwned.duckdb' AS pwn",
    "INSTALL httpfs; LOAD httpfs",
    "$p0",
    "{col}",
    "{purchase}",
    "=HYPERLINK(\"http://evil\")",
    "@SUM(A1:A9)",
    "%_%",
    "\\",
    "東京都' --",
    "🍎" * 3,
]
PWNED = [Path("/tmp/segment-pwned.csv"), Path("/tmp/segment-pwned.duckdb")]  # noqa: S108 - the paths the payloads name

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def store():
    s = segment_store()
    yield s
    s.close()


def snapshot(store) -> dict[str, list]:
    """Every table of the store with its rows, in a stable order."""
    tables = [r[0] for r in store.fetchall("SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1")]
    return {t: store.fetchall('SELECT * FROM "' + t + '" ORDER BY ALL') for t in tables}


# -- strategies ------------------------------------------------------------------

junk = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(HOSTILE),
    st.dates(min_value=dt.date(1, 1, 1)).map(dt.date.isoformat), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def element(kind: str, field_key: str):
    if kind == "int":
        return st.one_of(st.integers(min_value=-5, max_value=400), st.integers())
    if kind == "number":
        return st.one_of(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.integers(min_value=0, max_value=10**6))
    if kind == "date":
        return st.dates(min_value=dt.date(1890, 1, 1), max_value=dt.date(2210, 12, 31)).map(dt.date.isoformat)
    if field_key == "sale_order":
        return st.sampled_from(["super_sale", "marathon", "wonderful_day", "five_zero_day", "black_friday"])
    return st.one_of(st.sampled_from(["東京都", "P1", "化粧水", "高", "rakuten"] + HOSTILE), st.text(max_size=20))


@st.composite
def condition(draw):
    field_key = draw(st.one_of(st.sampled_from(list(FIELDS)), st.sampled_from(list(FIELDS)), st.text(max_size=8)))
    ops = operators_for(field_key) if field_key in FIELDS else list(OPERATORS)
    op_key = draw(st.one_of(st.sampled_from(ops), st.sampled_from(ops), st.sampled_from(ops), st.sampled_from(list(OPERATORS)), st.text(max_size=6)))
    cond: dict = {"field": field_key, "op": op_key}
    if field_key in FIELDS and op_key in OPERATORS:
        shape = OPERATORS[op_key].value
        kind = ELEMENT[FIELDS[field_key].type]
        one = element(kind, field_key)
        value = {
            "none": st.none(),
            "scalar": one,
            "pair": st.lists(one, min_size=2, max_size=2).map(sorted) if kind != "str" else st.lists(one, min_size=2, max_size=2),
            "list": st.lists(one, min_size=1, max_size=4),
            "days": st.integers(min_value=-1, max_value=400),
            "text": element("str", field_key),
            "optional_text": st.one_of(st.none(), element("str", field_key)),
            "percent": st.floats(min_value=-1, max_value=120, allow_nan=False),
            "factor": st.floats(min_value=-1, max_value=5, allow_nan=False),
        }[shape]
        drawn = draw(st.one_of(value, value, value, junk))
    else:
        drawn = draw(junk)
    if drawn is not None or draw(st.booleans()):
        cond["value"] = drawn
    if field_key in FIELDS and FIELDS[field_key].type in WINDOW_TYPES and draw(st.booleans()):
        cond["window"] = draw(st.one_of(
            st.fixed_dictionaries({"days": st.integers(min_value=-1, max_value=1000)}),
            st.fixed_dictionaries({"from": element("date", ""), "to": element("date", "")}),
            st.fixed_dictionaries({"from": element("date", "")}),
            junk,
        ))
    return cond


rules = st.recursive(
    condition(),
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda xs: {"all": xs}),
        st.lists(children, max_size=4).map(lambda xs: {"any": xs}),
        children.map(lambda x: {"not": x}),
    ),
    max_leaves=8,
)
anything = st.one_of(rules, rules, junk, st.dictionaries(st.sampled_from(["all", "any", "not", "field", "op", "x"]), junk, max_size=3))


# -- properties --------------------------------------------------------------------


@SETTINGS
@given(rule=anything)
def test_random_rules_work_or_raise_input_error(store, rule):
    try:
        clean = S.validate(rule)
    except InputError as exc:
        assert any(ord(ch) > 0x3000 for ch in exc.message)  # a Japanese explanation
        return
    assert S.validate(clean) == clean  # normalising twice changes nothing
    summary = S.summary(store, clean)
    assert 0 <= summary["customers"] <= summary["total_customers"] == 8
    assert isinstance(summary["description"], str) and summary["description"]
    # two-valued logic: a rule and its negation split the customers exactly
    # (a rule without conditions is every customer, and so is its NOT: empty groups are ignored)
    if S.compile_rule(store, clean).where != "TRUE":
        assert S.count(store, {"not": clean}) == 8 - summary["customers"]


@settings(SETTINGS, max_examples=60)
@given(rule=rules, hostile=st.sampled_from(HOSTILE))
def test_hostile_values_leave_the_store_unchanged(store, tmp_path_factory, rule, hostile):
    before = snapshot(store)
    poisoned = {"all": [rule, {"field": "name", "op": "eq", "value": hostile},
                        {"any": [{"field": "prefecture", "op": "in", "value": [hostile]},
                                 {"field": "bought_product", "op": "bought", "value": [hostile]},
                                 {"field": "coupon_use", "op": "used", "value": hostile},
                                 {"field": hostile, "op": "eq", "value": 1}]}]}
    calls = [
        lambda r: S.count(store, r),
        lambda r: S.summary(store, r),
        lambda r: S.sample(store, r),
        lambda r: S.compare(store, r, {"all": []}),
        lambda r: S.line_user_ids(store, r),
        lambda r: S.export_frame(store, r),
        lambda r: S.describe(r, store),
    ]
    for target in (poisoned, poisoned["all"][1], poisoned["all"][2]):
        for call in calls:
            with contextlib.suppress(InputError):
                call(target)
    assert snapshot(store) == before
    assert not any(p.exists() for p in PWNED)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_each_hostile_string_is_just_a_value(store, hostile):
    before = snapshot(store)
    for field_key in ("name", "email", "prefecture", "customer_id", "last_product_name"):
        for op in ("eq", "ne", "contains", "not_contains", "in", "not_in"):
            value = [hostile] if op in ("in", "not_in") else hostile
            rule = {"field": field_key, "op": op, "value": value}
            n = S.count(store, rule)
            assert n in (0, 8) or field_key in ("name", "email")  # matches no customer (or, negated, all)
    assert S.count(store, {"field": "bought_category", "op": "bought", "value": [hostile]}) == 0
    assert S.count(store, {"field": "coupon_use", "op": "used", "value": hostile}) == 0
    assert snapshot(store) == before
    assert not any(p.exists() for p in PWNED)


def test_hostile_field_and_operator_names_never_reach_sql(store):
    for hostile in HOSTILE:
        for rule in ({"field": hostile, "op": "eq", "value": 1}, {"field": "orders", "op": hostile, "value": 1},
                     {hostile: []}, {"field": "orders", "op": "eq", "value": 1, hostile: 1}):
            with pytest.raises(InputError):
                S.count(store, rule)


def test_no_file_is_read_or_written(store, tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for hostile in HOSTILE:
            S.count(store, {"field": "email", "op": "contains", "value": hostile})
        assert list(tmp_path.iterdir()) == []
    finally:
        os.chdir(cwd)
