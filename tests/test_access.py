"""Roles, users and the audit log of a shop (crm_core.access), and the sign-in throttle."""

from __future__ import annotations

import pytest

from crm_core import access as A
from crm_core.audience import library as L
from crm_core.db import Store
from crm_core.errors import InputError

VIEWER = A.User("view@example.jp", "閲覧さん", A.Role.VIEWER)
OPERATOR = A.User("op@example.jp", "担当さん", A.Role.OPERATOR)
ADMIN = A.User("admin@example.jp", "管理さん", A.Role.ADMIN)

# (action, lowest role allowed)
MATRIX = [
    ("analytics.view", A.Role.VIEWER),
    ("results.view", A.Role.VIEWER),
    ("segments.edit", A.Role.OPERATOR),
    ("messages.edit", A.Role.OPERATOR),
    ("coupons.edit", A.Role.OPERATOR),
    ("plans.edit", A.Role.OPERATOR),
    ("test_send", A.Role.OPERATOR),
    ("live_send.approve", A.Role.ADMIN),
    ("send_settings.edit", A.Role.ADMIN),
    ("users.manage", A.Role.ADMIN),
    ("data.delete", A.Role.ADMIN),
    ("data.backup", A.Role.ADMIN),
]


@pytest.mark.parametrize(("action", "lowest"), MATRIX, ids=[m[0] for m in MATRIX])
@pytest.mark.parametrize("user", [VIEWER, OPERATOR, ADMIN], ids=["viewer", "operator", "admin"])
def test_each_role_is_refused_what_it_may_not_do(user, action, lowest):
    if user.role.rank >= lowest.rank:
        A.require(user, action)
        assert A.can(user, action)
    else:
        with pytest.raises(A.AccessDenied) as exc:
            A.require(user, action)
        assert isinstance(exc.value, InputError) and isinstance(exc.value, PermissionError)
        assert lowest.label in exc.value.message and "権限" in exc.value.message
        assert not A.can(user, action)


def test_nobody_signed_in_is_refused_everything():
    with pytest.raises(A.AccessDenied):
        A.require(None, "analytics.view")


def test_unknown_action_is_a_programming_error():
    with pytest.raises(KeyError):
        A.require(ADMIN, "no.such.action")


def test_library_functions_map_to_actions():
    assert A.action_for(L.save_segment) == "segments.edit"
    assert A.action_for(L.list_segments) is None
    assert A.action_for(Store.clear_data) == "data.delete"
    from crm_core.backup import backup_store

    assert A.action_for(backup_store) == "data.backup"


def test_first_sign_in_of_an_empty_shop_becomes_admin_then_others_are_refused(store):
    first = A.sign_in(store, "Owner@Example.jp", "店長")
    assert first == A.User("owner@example.jp", "店長", A.Role.ADMIN)
    assert A.sign_in(store, "stranger@example.jp", "誰か") is None
    A.add_user(store, first, "staff@example.jp", A.Role.OPERATOR, name="スタッフ")
    assert A.sign_in(store, "STAFF@example.jp", "スタッフ").role is A.Role.OPERATOR
    actions = [r["action"] for r in A.audit_log(store)]
    assert actions[:3] == ["sign_in", "users.manage", "sign_in"]  # newest first
    assert {r["user_email"] for r in A.audit_log(store)} >= {"owner@example.jp"}


def test_admin_emails_from_config_win_over_the_first_sign_in(store):
    assert A.sign_in(store, "someone@example.jp", "x", admin_emails=["boss@example.jp"]) is None
    assert A.sign_in(store, "Boss@example.jp", "x", admin_emails=["boss@example.jp"]).role is A.Role.ADMIN
    # a configured admin stays admin even after others were added
    assert A.list_users(store)[0]["role"] == "承認・管理"


def test_only_admins_manage_users_and_the_last_admin_stays(store):
    admin = A.sign_in(store, "a@example.jp", "A")
    A.add_user(store, admin, "o@example.jp", A.Role.OPERATOR)
    op = A.sign_in(store, "o@example.jp", "O")
    with pytest.raises(A.AccessDenied):
        A.add_user(store, op, "x@example.jp", A.Role.ADMIN)
    with pytest.raises(A.AccessDenied):
        A.remove_user(store, op, "a@example.jp")
    with pytest.raises(InputError, match="承認・管理"):
        A.remove_user(store, admin, "a@example.jp")
    with pytest.raises(InputError, match="承認・管理"):
        A.set_role(store, admin, "a@example.jp", A.Role.VIEWER)
    A.set_role(store, admin, "o@example.jp", A.Role.VIEWER)
    assert A.sign_in(store, "o@example.jp", "O").role is A.Role.VIEWER
    A.remove_user(store, admin, "o@example.jp")
    assert A.sign_in(store, "o@example.jp", "O") is None


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@b", "a b@example.jp", "x" * 300 + "@example.jp"])
def test_bad_addresses_are_refused_in_japanese(store, email):
    admin = A.sign_in(store, "a@example.jp", "A")
    with pytest.raises(InputError, match="メールアドレス"):
        A.add_user(store, admin, email, A.Role.VIEWER)


def test_audit_names_the_user_and_keeps_the_detail(store):
    A.audit(store, OPERATOR, "segments.edit", "save_segment")
    row = A.audit_log(store)[0]
    assert (row["user_email"], row["action"], row["detail"]) == ("op@example.jp", "segments.edit", "save_segment")


def test_roles_live_in_the_shop_store(tmp_path):
    one, two = Store(tmp_path / "one.duckdb"), Store(tmp_path / "two.duckdb")
    A.sign_in(one, "a@example.jp", "A")
    assert A.sign_in(two, "b@example.jp", "B").role is A.Role.ADMIN  # two's own first user
    assert A.sign_in(two, "a@example.jp", "A") is None  # one's admin has no access to two
    one.close()
    two.close()


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_throttle_delays_grow_exponentially_per_client():
    clock = FakeClock()
    t = A.Throttle(base=1.0, cap=60.0, global_after=1000, clock=clock)
    assert t.wait_for("1.2.3.4") == 0
    t.failed("1.2.3.4")
    assert t.wait_for("1.2.3.4") == pytest.approx(1.0)
    assert t.wait_for("5.6.7.8") == 0  # another client is not held up
    clock.t += 1.0
    t.failed("1.2.3.4")
    assert t.wait_for("1.2.3.4") == pytest.approx(2.0)
    clock.t += 2.0
    t.failed("1.2.3.4")
    assert t.wait_for("1.2.3.4") == pytest.approx(4.0)
    for _ in range(20):
        t.failed("1.2.3.4")
    assert t.wait_for("1.2.3.4") == pytest.approx(60.0)  # capped
    t.succeeded("1.2.3.4")
    assert t.wait_for("1.2.3.4") == 0


def test_throttle_slows_everyone_when_many_clients_fail():
    clock = FakeClock()
    t = A.Throttle(base=1.0, cap=60.0, global_after=5, clock=clock)
    for n in range(5):
        t.failed(f"10.0.0.{n}")
    assert t.wait_for("10.9.9.9") == 0
    t.failed("10.0.0.99")
    assert t.wait_for("10.9.9.9") > 0  # a distributed guess slows every client down


def test_every_function_in_the_action_table_exists():
    """A moved or renamed library function would silently escape the role check."""
    import importlib

    for dotted in A.FUNCTION_ACTIONS:
        module, _, name = dotted.rpartition(".")
        try:
            owner = importlib.import_module(module)
        except ModuleNotFoundError:  # a method: crm_core.db.Store.clear_data
            module, _, cls = module.rpartition(".")
            owner = getattr(importlib.import_module(module), cls)
        fn = getattr(owner, name)
        assert A.action_for(fn) == A.FUNCTION_ACTIONS[dotted], dotted
