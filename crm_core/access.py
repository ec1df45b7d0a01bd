"""Who may do what in a shop: roles, the shop's users, the audit log, the sign-in throttle.

Three roles, lowest first:

- 閲覧 (``Role.VIEWER``): analyses and results only;
- 担当 (``Role.OPERATOR``): also imports, segments, messages, coupons, plans, test sends;
- 承認・管理 (``Role.ADMIN``): also live-send approval, send settings and the sender
  identity, users, deleting data.

Every page and every action of the console asks :func:`require` (pages through
``pages.ui``); a refusal is an :class:`AccessDenied`, an :class:`InputError` with a
Japanese message.  :data:`FUNCTION_ACTIONS` names the action of each library function
that changes a shop, so the console checks and audits every call of one of them in a
single place.  Users and the audit log live in the shop's own store (tables ``users``
and ``audit_log``, migration 5 in :mod:`crm_core.db`), so a user of one shop has no
access to another.

The first person who signs in to a shop with no users becomes its 承認・管理, unless
``admin_emails`` (``CRM_ADMIN_EMAILS``) is configured: then only those addresses
become 承認・管理 by signing in, in every shop.
"""

from __future__ import annotations

import enum
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from crm_core import clock
from crm_core.db import Store
from crm_core.errors import InputError


class Role(enum.Enum):
    """A user's role in one shop (the value is the Japanese label stored in the shop)."""

    VIEWER = "閲覧"
    OPERATOR = "担当"
    ADMIN = "承認・管理"

    @property
    def label(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """A role from its label or name (``閲覧`` or ``VIEWER``)."""
        if isinstance(value, Role):
            return value
        for role in cls:
            if value in (role.value, role.name, role.name.lower()):
                return role
        raise InputError(f"役割「{value}」はありません。閲覧・担当・承認・管理 から選んでください。", f"unknown role {value!r}")


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

ROLE_HELP = {
    Role.VIEWER: "分析と施策の効果を見られます（変更はできません）。",
    Role.OPERATOR: "データ取込・セグメント・メッセージ・クーポン・販促計画・テスト送信、本番配信の作成、シナリオのオン・オフと編集ができます。",
    Role.ADMIN: "本番配信の承認・送信設定・送信者情報・ユーザー管理・データの削除もできます。",
}

# action -> (lowest role, Japanese description for refusals)
ACTIONS: dict[str, tuple[Role, str]] = {
    "analytics.view": (Role.VIEWER, "分析の閲覧"),
    "results.view": (Role.VIEWER, "施策の効果の閲覧"),
    "import": (Role.OPERATOR, "データの取り込み"),
    "segments.edit": (Role.OPERATOR, "セグメントの作成・変更"),
    "messages.edit": (Role.OPERATOR, "メッセージの作成・変更"),
    "coupons.edit": (Role.OPERATOR, "クーポンの発行"),
    "coupons.export": (Role.OPERATOR, "クーポンコード一覧（氏名・メールアドレス付き）のダウンロード"),
    "plans.edit": (Role.OPERATOR, "販促計画・カレンダーの変更"),
    "campaigns.edit": (Role.OPERATOR, "施策の記録・結果の取り込み"),
    "model.edit": (Role.OPERATOR, "RFM・ランクの基準の変更"),
    "test_send": (Role.OPERATOR, "テスト送信"),
    "live_send.prepare": (Role.OPERATOR, "本番配信の作成・テスト送信"),
    "scenarios.edit": (Role.OPERATOR, "シナリオのオン・オフ"),
    "live_send.approve": (Role.ADMIN, "本番配信の承認・送信・停止"),
    "send_settings.edit": (Role.ADMIN, "送信設定・送信者情報の変更"),
    "users.manage": (Role.ADMIN, "ユーザーの管理"),
    "data.delete": (Role.ADMIN, "データの削除"),
    "data.backup": (Role.ADMIN, "データベースのバックアップ"),
}

# "<module>.<qualified name>" of library functions that change a shop -> action.
FUNCTION_ACTIONS: dict[str, str] = {
    **{f"crm_core.audience.library.{n}": "segments.edit"
       for n in ("save_segment", "delete_segment", "duplicate_segment", "rename_segment")},
    **{f"crm_core.messaging.templates.{n}": "messages.edit" for n in ("save_template", "reset_template")},
    "crm_core.messaging.context.save_shop_profile": "send_settings.edit",
    **{f"crm_core.messaging.coupons.{n}": "coupons.edit" for n in ("create_coupon", "issue_for_target")},
    **{f"crm_core.messaging.sends.{n}": "test_send"
       for n in ("test_send", "add_test_recipient", "remove_test_recipient")},
    **{f"crm_core.messaging.sends.{n}": "send_settings.edit" for n in ("save_console_settings", "check_connection")},
    **{f"crm_core.planning.planner.{n}": "plans.edit"
       for n in ("save_plan", "delete_plan", "add_line_presale", "set_exclude_conflicts")},
    "crm_core.planning.frequency.set_max_per_week": "plans.edit",
    **{f"crm_core.planning.costs.{n}": "plans.edit" for n in ("set_beyond_rate", "set_line_plan", "set_usd_jpy")},
    **{f"crm_core.events.calendar.{n}": "plans.edit"
       for n in ("add_event", "update_event", "delete_event", "confirm_event", "restore_event")},
    "crm_core.results.campaigns.import_results": "campaigns.edit",
    "crm_core.results.campaigns.freeze_campaign": "campaigns.edit",
    "crm_core.results.campaigns.set_global_holdout": "campaigns.edit",
    "crm_core.results.campaigns.delete_campaign": "data.delete",
    **{f"crm_core.model.settings.{n}": "model.edit"
       for n in ("set_rank_thresholds", "set_rfm_segments", "set_rfm_thresholds")},
    "crm_core.pipeline.after_settings_change": "model.edit",
    "crm_core.pipeline.import_files": "import",
    "crm_core.pipeline.after_import": "import",
    "crm_core.ingest.mappings.save_mapping": "import",
    "crm_core.ingest.identity.rekey": "import",
    "crm_core.sample.load.load_sample": "import",
    "crm_core.sample.load.remove_sample_identity": "data.delete",
    "crm_core.sample.load.prepare_for_real_import": "import",
    "crm_core.db.Store.clear_data": "data.delete",
    **{f"crm_core.results.live.{n}": "live_send.prepare" for n in ("create", "test_send", "rmail_export")},
    **{f"crm_core.results.live.{n}": "live_send.approve" for n in ("approve", "pause", "resume", "cancel", "mark_rmail_sent")},
    "crm_core.jobs.enqueue": "live_send.approve",
    **{f"crm_core.scenarios.engine.{n}": "scenarios.edit" for n in ("enable", "disable", "update", "set_caps")},
    "crm_core.backup.backup_store": "data.backup",
}


class AccessDenied(InputError, PermissionError):
    """The signed-in user's role does not allow this action (a Japanese message)."""


@dataclass(frozen=True)
class User:
    """A signed-in person (or the one-person install) and their role in the current shop."""

    email: str
    name: str
    role: Role


def action_for(fn: Callable[..., Any]) -> str | None:
    """The action a library function performs (None for reads)."""
    module = getattr(fn, "__module__", "") or ""
    qualname = getattr(fn, "__qualname__", "") or ""
    return FUNCTION_ACTIONS.get(f"{module}.{qualname}")


def can(user: User | None, action: str) -> bool:
    """True when ``user`` may perform ``action`` (``KeyError`` for an unknown action)."""
    lowest, _ = ACTIONS[action]
    return user is not None and user.role.rank >= lowest.rank


def require(user: User | None, action: str) -> None:
    """Refuse ``action`` unless ``user``'s role allows it.

    Raises
    ------
    AccessDenied
        With a Japanese message naming the role needed.
    KeyError
        For an action that is not in :data:`ACTIONS` (a programming error).
    """
    lowest, what = ACTIONS[action]
    if user is None:
        raise AccessDenied("ログインしていません。ログインしてからもう一度お試しください。", f"{action}: not signed in")
    if user.role.rank < lowest.rank:
        raise AccessDenied(
            f"「{what}」には「{lowest.label}」以上の権限が必要です（あなたの役割は「{user.role.label}」です）。"
            "必要なときはショップの承認・管理の担当者に依頼してください。",
            f"{action}: role {user.role.name} < {lowest.name}",
        )


# -- users of a shop ----------------------------------------------------------------------------
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    """Lower-cased, trimmed address; ``InputError`` when it is not one."""
    value = (email or "").strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise InputError("メールアドレスの形式が正しくありません（例: tanaka@example.jp）。", "bad e-mail address")
    return value


def list_users(store: Store) -> list[dict[str, Any]]:
    """The shop's users: email, name, role (Japanese label), added_at, added_by; admins first."""
    rows = store.fetchall(
        "SELECT email, name, role, added_at, added_by FROM users "
        "ORDER BY CASE role WHEN '承認・管理' THEN 0 WHEN '担当' THEN 1 ELSE 2 END, email"
    )
    return [dict(zip(("email", "name", "role", "added_at", "added_by"), r, strict=True)) for r in rows]


def _role_of(store: Store, email: str) -> Role | None:
    value = store.scalar("SELECT role FROM users WHERE email = ?", [email])
    return None if value is None else Role.parse(value)


def sign_in(store: Store, email: str, name: str = "", admin_emails: Iterable[str] = ()) -> User | None:
    """:func:`member`, and a successful sign-in is written to the audit log."""
    user = member(store, email, name, admin_emails)
    if user is not None:
        audit(store, user, "sign_in")
    return user


def member(store: Store, email: str, name: str = "", admin_emails: Iterable[str] = (), claim: bool = True) -> User | None:
    """The user ``email`` as a member of this shop (with their current role), or None when they have no access.

    A shop without users makes its first signed-in user 承認・管理 — unless
    ``admin_emails`` is given: then exactly those addresses become 承認・管理 on sign-in.
    ``claim=False`` only says what signing in would give, without recording it.
    """
    email = normalise_email(email)
    admins = {normalise_email(a) for a in admin_emails if a and a.strip()}
    role = _role_of(store, email)
    if not claim:
        if email in admins or (role is None and not admins and not store.scalar("SELECT count(*) FROM users")):
            return User(email, name or email, Role.ADMIN)
        return None if role is None else User(email, name or email, role)
    with store.transaction() as cur:
        if email in admins and role is not Role.ADMIN:
            cur.execute("DELETE FROM users WHERE email = ?", [email])
            cur.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?)", [email, name, Role.ADMIN.value, clock.now(), "config"])
            role = Role.ADMIN
        elif role is None and not admins and not cur.execute("SELECT count(*) FROM users").fetchone()[0]:
            cur.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?)", [email, name, Role.ADMIN.value, clock.now(), "first sign-in"])
            role = Role.ADMIN
    if role is None:
        return None
    stored_name = store.scalar("SELECT name FROM users WHERE email = ?", [email])
    return User(email, stored_name or name or email, role)


def add_user(store: Store, by: User | None, email: str, role: Role | str, name: str = "") -> None:
    """Give ``email`` a role in this shop (承認・管理 only)."""
    require(by, "users.manage")
    email, role = normalise_email(email), Role.parse(role)
    if _role_of(store, email) is not None:
        raise InputError(f"{email} はすでに登録されています。役割を変えるときは「役割を変更」を使ってください。", "user exists")
    store.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?)", [email, name.strip(), role.value, clock.now(), by.email])
    audit(store, by, "users.manage", f"add {email} as {role.name}")


def _check_admins_remain(store: Store, email: str) -> None:
    others = store.scalar("SELECT count(*) FROM users WHERE role = ? AND email <> ?", [Role.ADMIN.value, email])
    if _role_of(store, email) is Role.ADMIN and not others:
        raise InputError("承認・管理のユーザーが一人もいなくなるため、変更できません。先に別の承認・管理のユーザーを登録してください。",
                         "last admin")


def set_role(store: Store, by: User | None, email: str, role: Role | str) -> None:
    """Change a user's role (承認・管理 only; the last 承認・管理 keeps the role)."""
    require(by, "users.manage")
    email, role = normalise_email(email), Role.parse(role)
    if _role_of(store, email) is None:
        raise InputError(f"{email} は登録されていません。", "no such user")
    if role is not Role.ADMIN:
        _check_admins_remain(store, email)
    store.execute("UPDATE users SET role = ? WHERE email = ?", [role.value, email])
    audit(store, by, "users.manage", f"role {email} -> {role.name}")


def remove_user(store: Store, by: User | None, email: str) -> None:
    """Take away a user's access to this shop (承認・管理 only; never the last 承認・管理)."""
    require(by, "users.manage")
    email = normalise_email(email)
    _check_admins_remain(store, email)
    store.execute("DELETE FROM users WHERE email = ?", [email])
    audit(store, by, "users.manage", f"remove {email}")


# -- audit log ----------------------------------------------------------------------------------
def audit(store: Store, user: User | None, action: str, detail: str = "") -> None:
    """Record that ``user`` did ``action`` (``detail``: function or short English note, never customer data)."""
    store.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
        [clock.now(), user.email if user else None, user.role.value if user else None, action, detail[:500]],
    )


def audit_log(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """The newest entries first: logged_at, user_email, role, action, detail."""
    rows = store.fetchall(
        "SELECT logged_at, user_email, role, action, detail FROM audit_log ORDER BY logged_at DESC, rowid DESC LIMIT ?", [int(limit)]
    )
    return [dict(zip(("logged_at", "user_email", "role", "action", "detail"), r, strict=True)) for r in rows]


# -- sign-in throttle -----------------------------------------------------------------------------
class Throttle:
    """Exponential delays after failed sign-ins, per client and for everyone.

    After ``n`` consecutive failures a client must wait ``base * 2**(n-1)`` seconds
    (at most ``cap``) before its next try.  When more than ``global_after`` failures
    from any clients fall within ``window`` seconds, every client waits the same way
    (a guess spread over many addresses).  Thread-safe; keep one per server.
    """

    def __init__(self, base: float = 1.0, cap: float = 300.0, global_after: int = 20, window: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base, self.cap, self.global_after, self.window = base, cap, global_after, window
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[int, float]] = {}
        self._recent: list[float] = []

    def _delay(self, n: int) -> float:
        return 0.0 if n <= 0 else min(self.cap, self.base * 2 ** min(n - 1, 30))

    def wait_for(self, client: str) -> float:
        """Seconds ``client`` must still wait before trying again (0 = may try now)."""
        now = self._clock()
        with self._lock:
            self._recent = [t for t in self._recent if now - t < self.window]
            n, last = self._clients.get(client, (0, now))
            own = max(0.0, last + self._delay(n) - now)
            excess = len(self._recent) - self.global_after
            shared = max(0.0, self._recent[-1] + self._delay(excess) - now) if excess > 0 else 0.0
            return max(own, shared)

    def failed(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            n, _ = self._clients.get(client, (0, now))
            self._clients[client] = (n + 1, now)
            self._recent.append(now)
            if len(self._clients) > 10_000:  # bounded memory under a flood of addresses
                self._clients.pop(next(iter(self._clients)))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)
