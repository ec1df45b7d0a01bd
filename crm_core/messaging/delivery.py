"""Deliver a prepared live campaign from the ledger, resumably and at most once per recipient.

:func:`deliver` needs only the operations store and the channel objects (no
DuckDB): the recipients, their addresses, the rendered bodies and the LINE
batches with their retry keys were written by the preparation step.

Exactly once
------------
* LINE: a batch's members, ``X-Line-Retry-Key`` and body were stored before
  its first request.  The batch is marked ``sending`` (intent) before its request
  leaves, and it is marked ``sent`` with LINE's request id afterwards (outcome:
  the batch row alone; its ledger rows read it through the view ``send_ledger_now``).  Multicasts are pipelined: while request k is in flight a
  writer thread commits, in one transaction, the outcome of batch k-1 and the
  intent of batch k+1 (:meth:`_Run._multicasts`).  After a crash the batches marked
  ``sending`` (at most three) are sent again with the same key and body: LINE (and
  the stand-in) answers 409 with the accepted request id for those it accepted, so
  nobody gets it twice and nobody is skipped.
* E-mail: rows are marked ``sending`` a chunk at a time, each mail's outcome
  is committed right after the server's answer.  A crash can only leave the one
  mail in flight undecided; it is sent again with the **same Message-ID**, so
  the receiving mailbox can tell it is the same message.
* One sender per campaign (:func:`crm_core.messaging.ledger.acquire`): a second
  sender started at the same time sends nothing.

Between batches the sender checks the campaign's status (paused or cancelled
from the console or the command line), the quiet hours and its lock.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from crm_core import opsdb
from crm_core.messaging import consent
from crm_core.messaging import ledger as L
from crm_core.messaging.channels.email_bulk import SmtpSession, campaign_message
from crm_core.messaging.channels.line_bulk import NARROWCAST_MIN, LineBulk, aggregation_unit
from crm_core.messaging.templates import Rendered
from crm_core.messaging.unsubscribe import Unsubscribe

UNSUBSCRIBE_SENTINEL = "https://unsubscribe.invalid/__crm_unsubscribe__"
"""Rendered into bodies at preparation; replaced per recipient by the signed link at delivery."""
EMAIL_CHUNK = 100
STOP_CODES = ("quota_exceeded", "rate_limited", "server_error", "timeout", "connection_error", "tls_error", "unauthorized", "forbidden")
"""LINE answers that pause the send (the batch stays queued with its key and body) instead of failing the batch."""


@dataclass
class Outcome:
    """What one delivery run did: ``status`` is the campaign's status afterwards (or ``busy``)."""

    status: str
    message: str
    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "counts": self.counts, "requests": self.requests}


class _Stop(Exception):
    def __init__(self, status: str, message: str) -> None:
        self.status = status
        self.message = message


def deliver(
    con: sqlite3.Connection,
    campaign_id: int,
    *,
    line: LineBulk | None = None,
    smtp: SmtpSession | None = None,
    unsubscribe: Unsubscribe | None = None,
    clock: Callable[[], dt.datetime] = L.utcnow,
    allowed: Callable[[dt.datetime], str | None] = lambda now: None,
    progress: Callable[[dict[str, int]], None] | None = None,
    max_messages: int | None = None,
    narrowcast_from: int = 0,
    narrowcast_wait: float = 240.0,
) -> Outcome:
    """Send what is still due for a prepared campaign.

    Parameters
    ----------
    allowed : callable
        ``allowed(now)`` returns None when sending is allowed now, else a
        Japanese reason (quiet hours): the run stops with status ``waiting``.
    max_messages : int, optional
        Stop (status ``sending``) after about this many recipients; the next run continues.
    narrowcast_from : int
        LINE: from this many recipients of one body, send an uploaded audience as a narrowcast
        instead of multicasts of 500 (0: always multicast; below LINE's minimum audience, multicast).
    narrowcast_wait : float
        Seconds to wait for LINE to finish a narrowcast before this run stops (status ``sending``; the next run checks again).
        Kept below :data:`~crm_core.messaging.ledger.LOCK_STALE_SECONDS`: the send lock is not refreshed while waiting.
    """
    campaign = L.get(con, campaign_id)
    if campaign is None or not campaign.get("prepared_at"):
        return Outcome("missing", "この施策はまだ送信の準備ができていません。")
    if campaign["status"] in ("cancelled", "done", "paused", "ab_waiting"):
        return Outcome(campaign["status"], L.CAMPAIGN_STATUS[campaign["status"]], L.counts(con, campaign_id))
    owner = L.acquire(con, campaign_id, clock())
    if owner is None:
        return Outcome("busy", "別の送信処理がこの施策を送信中です（二重には送りません）。", L.counts(con, campaign_id))
    run = _Run(con, campaign, owner, clock, allowed, progress, max_messages)
    run.narrowcast_wait = narrowcast_wait
    try:
        L.set_status(con, campaign_id, "sending")
        for channel in _channels(con, campaign):  # LINE（なければメール）: the LINE rows first, then the e-mail rows
            if channel == "line":
                if line is None:
                    raise _Stop("paused", "LINEの送信設定（チャネルアクセストークン）がありません。")
                run.line(line, narrowcast_from)
            elif channel == "email":
                if smtp is None or unsubscribe is None:
                    raise _Stop("paused", "メールの送信設定（SMTPサーバーと配信停止リンクの設定）がありません。")
                run.email(smtp, unsubscribe)
        tallied = L.tally(con, campaign_id)
        left = sum(n for _ch, state, rest, n in tallied if state in ("queued", "sending") and not rest)
        if left:
            raise _Stop("paused", f"{left}件が未送信のまま残っています。")
        rest = sum(n for _ch, _state, rest, n in tallied if rest)
        if rest:
            raise _Stop("ab_waiting", f"A/Bテストのサンプルに送りました。結果を待って、残り{rest:,}人に勝ちパターンを送ります。")
        con.execute("UPDATE send_campaigns SET status = 'done', finished_at = ?, note = NULL WHERE campaign_id = ?",
                    [L.iso(clock()), campaign_id])
        return Outcome("done", "送信が完了しました。", L.counts(con, campaign_id, tallied), run.requests)
    except _Stop as stop:
        current = L.status_of(con, campaign_id)
        if current not in ("cancelled", "paused"):  # a pause or cancel from outside stays as it was set
            L.set_status(con, campaign_id, stop.status, stop.message)
        return Outcome(L.status_of(con, campaign_id) or stop.status, stop.message, L.counts(con, campaign_id), run.requests)
    finally:
        L.release(con, campaign_id, owner)


def _channels(con: sqlite3.Connection, campaign: dict[str, Any]) -> list[str]:
    """The channels a run sends on: the campaign's own, or those of a ``line_or_email`` send with rows still to send."""
    if campaign["channel"] != "line_or_email":
        return [campaign["channel"]]
    open_ = {ch for ch, state, rest, n in L.tally(con, int(campaign["campaign_id"])) if state in ("queued", "sending") and not rest and n}
    return [ch for ch in ("line", "email") if ch in open_]


class _Run:
    def __init__(self, con, campaign, owner, clock, allowed, progress, max_messages=None) -> None:
        self.max_messages = max_messages
        self.done = 0
        self.con: sqlite3.Connection = con
        self.c = campaign
        self.cid = int(campaign["campaign_id"])
        self.owner = owner
        self.clock = clock
        self.allowed = allowed
        self.progress = progress
        self.requests = 0
        self.narrowcast_wait = 240.0

    def checkpoint(self, heartbeat: bool = True) -> None:
        """Stop when paused, cancelled, inside quiet hours or when the lock was taken over (``heartbeat=False``: refreshed elsewhere)."""
        now = self.clock()
        status = L.status_of(self.con, self.cid)
        if status in ("paused", "cancelled"):
            raise _Stop(status, L.CAMPAIGN_STATUS[status])
        reason = self.allowed(now)
        if reason:
            raise _Stop("waiting", reason)
        if heartbeat and not L.heartbeat(self.con, self.cid, self.owner, now):
            raise _Stop("sending", "別の送信処理に引き継がれました。")
        if self.max_messages is not None and self.done >= self.max_messages:
            raise _Stop("sending", "今回の送信数の上限に達しました。続きは次の実行で送ります。")
        if self.progress:
            self.progress(L.counts(self.con, self.cid))

    # -- LINE -----------------------------------------------------------------------------
    def line(self, api: LineBulk, narrowcast_from: int = 0) -> None:
        unit = aggregation_unit(self.cid)
        api.open()
        # every LINE row still open, multicast or narrowcast: the month's quota must cover them all
        left = sum(n for ch, state, _rest, n in L.tally(self.con, self.cid) if ch == "line" and state in ("queued", "sending"))
        try:
            quota = api.quota()
        except Exception as exc:  # noqa: BLE001 - the SDK raises several types; a quota we cannot read stops the send
            raise _Stop("paused", "LINEの今月の送信上限と利用数を確認できませんでした。接続設定を確認してから再開してください。") from exc
        if left and not quota.allows(left) and not self.c.get("accept_overage"):
            raise _Stop("paused", f"LINEの今月の送信上限（{quota.limit:,}通）のうち{quota.used:,}通を使っており、残り{quota.remaining:,}通では"
                                  f"この配信（{left:,}通）を送りきれません。追加料金を承諾するか、上限を見直してから再開してください。")
        if narrowcast_from:
            L.merge_into_narrowcast(self.con, self.cid, max(narrowcast_from, NARROWCAST_MIN), self.clock())
        contents: dict[int, Any] = {}
        while True:
            batches = self.con.execute(
                "SELECT * FROM send_batches WHERE campaign_id = ? AND state IN ('queued', 'sending', 'accepted') ORDER BY batch_id",
                [self.cid]).fetchall()
            if not batches:
                return
            for b in batches:
                if b["content_id"] not in contents:
                    contents[b["content_id"]] = L.load_content(self.con, b["content_id"])
            if batches[0]["kind"] == "narrowcast":
                self.checkpoint()
                self._narrowcast(api, batches[0], contents[batches[0]["content_id"]])
                continue
            run = []
            for b in batches:  # the multicasts up to the next narrowcast
                if b["kind"] != "multicast":
                    break
                run.append(b)
            self._multicasts(api, run, contents, unit)

    def _multicasts(self, api: LineBulk, batches: list[sqlite3.Row], contents: dict[int, Any], unit: str) -> None:
        """Send multicast batches in order, the ledger's writes overlapping the requests.

        Each batch's members, body and retry key were stored at preparation.  Before request k leaves,
        its intent (``sending``, one more attempt) is committed; while request k is in flight, a
        thread with its own connection commits, in one transaction, the outcome of batch k-1 (the
        batch row ``sent``), the intent of batch k+1 and the lock's heartbeat
        (:func:`~crm_core.messaging.ledger.batch_step`).  A crash (kill -9) leaves at most the batches
        k-1, k and k+1 ``sending`` without an outcome; the next run sends them again with the same keys
        (LINE answers 409 for those it accepted), so nobody gets a message twice and nobody is skipped.
        A run that stops on its own (pause, quiet hours, an error) first writes every outcome it has,
        and gives back the intent of a batch it marked ahead but never requested.
        """
        pipe = _Pipe(self.con)
        lock = (self.cid, self.owner)
        ahead: list[int] = []  # batches whose intent this run committed and whose request it has not made
        unconfirmed: list[tuple[int, str | None, int]] = []  # accepted batches whose outcome is not known to be committed
        step: dict[str, Any] = {"future": None, "sent": None, "members": [], "lost": False}

        def submit(sent: tuple[int, str | None, int] | None, intent: int | None) -> None:
            step.update(future=pipe.submit(L.batch_step, sent=sent, intent=intent, lock=lock, now=self.clock()), sent=sent)

        def wait() -> None:
            if step["future"] is not None:
                members, alive = step["future"].result()
                step.update(future=None, members=members, lost=step["lost"] or not alive)
                if step["sent"] is not None:
                    unconfirmed.remove(step["sent"])
                    step["sent"] = None

        self.checkpoint(heartbeat=False)
        submit(None, batches[0]["batch_id"])
        try:
            for k, batch in enumerate(batches):
                wait()  # this batch's intent is committed (when the lock is lost, nothing but the outcome is written)
                if step["lost"]:
                    raise _Stop("sending", "別の送信処理に引き継がれました。")
                ahead.append(batch["batch_id"])
                members = step["members"]
                if k:
                    self.checkpoint(heartbeat=False)
                submit(unconfirmed[-1] if unconfirmed else None, batches[k + 1]["batch_id"] if k + 1 < len(batches) else None)
                ahead.remove(batch["batch_id"])  # from here on the request may have left
                result = api.multicast(members, contents[batch["content_id"]], retry_key=batch["retry_key"], aggregation_unit=unit)
                self.requests += result.attempts
                self.done += len(members)
                if result.ok:
                    unconfirmed.append((batch["batch_id"], result.request_id, batch["attempts"] + 1))
                    continue
                wait()  # the writer is idle before this connection writes
                self._batch_failed(batch, result)
            wait()
        finally:
            try:
                wait()
            finally:
                pipe.close()
                for batch_id, request_id, attempts in unconfirmed:  # idempotent: written again when unsure
                    L.record_batch_sent(self.con, batch_id, request_id=request_id, attempts=attempts, now=self.clock())
                if not step["lost"]:  # a sender that took over may be sending these now: leave them as they are
                    L.withdraw_intent(self.con, ahead, self.clock())

    def _batch_failed(self, batch: sqlite3.Row, result: Any) -> None:
        """A LINE request that was not accepted: nobody in the batch is marked sent."""
        stop = result.error_code in STOP_CODES
        # a batch stopped by the channel keeps its key and body: resuming sends exactly it again
        L.record_batch_error(self.con, batch["batch_id"], state="queued" if stop else "failed",
                             error=f"{result.error_code}: {result.message}", now=self.clock())
        if stop:
            raise _Stop("paused", result.message + " 送信を一時停止しました。原因を解消してから再開してください（送信済みの人には二重に送りません）。")

    def _narrowcast(self, api: LineBulk, batch: sqlite3.Row, messages: Any) -> None:
        """One narrowcast batch: upload the audience once and check its size, send with the stored retry key, wait for LINE's progress.

        Below LINE's minimum audience the batch becomes multicasts (never requested, so nobody can get both).
        Its rows are marked sent only when LINE's progress says ``succeeded``; a refused or failed narrowcast marks nobody sent.
        """
        bid = int(batch["batch_id"])
        if batch["state"] != "accepted":
            if batch["audience_id"] is None:
                members = [r[0] for r in self.con.execute("SELECT address FROM send_ledger WHERE batch_id = ? ORDER BY seq", [bid])]
                group = api.create_audience(f"crm施策{self.cid}", members)
                self.con.execute("UPDATE send_batches SET audience_id = ? WHERE batch_id = ?", [group, bid])
                batch = self.con.execute("SELECT * FROM send_batches WHERE batch_id = ?", [bid]).fetchone()
            if not batch["attempts"]:  # never requested: check the audience's size first (also after a crash right after the upload)
                size = api.audience_size(int(batch["audience_id"]))
                if size < NARROWCAST_MIN:
                    L.split_into_multicasts(self.con, bid, self.clock(), f"audience {batch['audience_id']}: {size} users matched,"
                                                                         f" below LINE's narrowcast minimum ({NARROWCAST_MIN}): multicast")
                    return
            L.batch_intent(self.con, bid, self.clock())  # intent (the retry key was stored when the batch was made)
            result = api.narrowcast(messages, audience_group_id=int(batch["audience_id"]), retry_key=batch["retry_key"])
            self.requests += result.attempts
            if not result.ok:
                self._batch_failed(batch, result)
                return
            L.record_batch_accepted(self.con, bid, request_id=result.request_id, now=self.clock())
            request_id = result.request_id
        else:
            request_id = batch["request_id"]
        progress = api.wait_narrowcast(request_id, timeout=self.narrowcast_wait)
        phase = progress.get("phase")
        if phase == "succeeded":
            L.record_batch_sent(self.con, bid, request_id=request_id, attempts=int(batch["attempts"]) + 1, now=self.clock())
            self.done += int(batch["size"])
            return
        if phase == "failed":
            L.record_batch_error(self.con, bid, state="failed", now=self.clock(),
                                 error=f"narrowcast failed: errorCode {progress.get('errorCode')} {progress.get('failedDescription') or ''}".strip())
            raise _Stop("paused", f"LINEの絞り込み配信（オーディエンス配信）が失敗しました（エラーコード{progress.get('errorCode')}）。"
                                  "この配信で送信済みになったお客様はいません。内容を確認してから再開してください。")
        raise _Stop("sending", "LINEが絞り込み配信を送信中です。次の実行で結果を確認します（二重には送りません）。")

    # -- e-mail -------------------------------------------------------------------------------
    def email(self, smtp: SmtpSession, unsubscribe: Unsubscribe) -> None:
        sender = self.c["sender"]
        from_addr, from_name = sender.get("from_addr", ""), sender.get("from_name", "")
        encoding = sender.get("encoding", "utf-8")
        contents: dict[int, Any] = {}
        while True:
            rows = self.con.execute(
                "SELECT customer_id, address, content_id, message_id, state FROM send_ledger"
                " WHERE campaign_id = ? AND channel = 'email' AND state IN ('queued', 'sending') AND content_id IS NOT NULL ORDER BY seq LIMIT ?",
                [self.cid, EMAIL_CHUNK if self.max_messages is None else max(1, min(EMAIL_CHUNK, self.max_messages - self.done))]).fetchall()
            if not rows:
                return
            self.checkpoint()
            now = L.iso(self.clock())
            with opsdb.transaction(self.con):  # intent for the chunk
                self.con.execute(
                    "UPDATE send_ledger SET state = 'sending', updated_at = ? WHERE campaign_id = ? AND channel = 'email'"
                    " AND state = 'queued' AND customer_id IN (SELECT value FROM json_each(?))",
                    [now, self.cid, _json([r["customer_id"] for r in rows])])
            for r in rows:
                content = contents.get(r["content_id"])
                if content is None:
                    content = contents[r["content_id"]] = L.load_content(self.con, r["content_id"])
                url = unsubscribe.url(self.cid, r["customer_id"])
                rendered = Rendered(template_key=self.c["template"], channel="email", subject=content["subject"],
                                    preheader=content.get("preheader", ""),
                                    text=content["text"].replace(UNSUBSCRIBE_SENTINEL, url),
                                    html=content.get("html", "").replace(UNSUBSCRIBE_SENTINEL, url))
                msg = campaign_message(r["address"], rendered, from_addr=from_addr, from_name=from_name, unsubscribe_url=url,
                                       message_id=r["message_id"], encoding=encoding)
                result = smtp.send(msg, from_addr, r["address"])
                self.requests += 1
                self.done += 1
                now = L.iso(self.clock())
                if result.ok:
                    self.con.execute("UPDATE send_ledger SET state = 'sent', sent_at = ?, updated_at = ?, attempts = attempts + 1,"
                                     " request_id = ?, error = NULL WHERE campaign_id = ? AND customer_id = ? AND channel = 'email'",
                                     [now, now, result.request_id, self.cid, r["customer_id"]])
                    continue
                if result.error_code in ("disconnected", "smtp_error", "auth_failed"):
                    # the server is unreachable: nothing was accepted, the row waits for the resume
                    self.con.execute("UPDATE send_ledger SET state = 'queued', updated_at = ?, error = ? WHERE campaign_id = ?"
                                     " AND customer_id = ? AND channel = 'email'",
                                     [now, f"{result.error_code}: {result.message}"[:300], self.cid, r["customer_id"]])
                    raise _Stop("paused", result.message + " 送信を一時停止しました。再開すると続きから送ります。")
                with opsdb.transaction(self.con):
                    self.con.execute("UPDATE send_ledger SET state = 'failed', updated_at = ?, attempts = attempts + 1, error = ?"
                                     " WHERE campaign_id = ? AND customer_id = ? AND channel = 'email'",
                                     [now, f"{result.error_code} {result.http_status or ''}: {result.detail or result.message}"[:300],
                                      self.cid, r["customer_id"]])
                    if result.error_code == "recipient_refused":
                        consent.suppress(self.con, "email", r["address"], source="bounce", reason=f"SMTP {result.http_status}",
                                         actor="sender", campaign_id=self.cid, customer_id=r["customer_id"])


class _Pipe:
    """One writer thread with its own connection to the operations file (the caller's when the file has no path)."""

    def __init__(self, con: Any) -> None:
        path = con.execute("PRAGMA database_list").fetchone()[2]
        self._own = opsdb.connect(path, migrate=False) if path else None
        self._con = self._own if self._own is not None else con
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger") if self._own is not None else None

    def submit(self, fn: Callable[..., Any], **kwargs: Any) -> Future:
        if self._pool is None:  # an in-memory store: the same work, in this thread
            done: Future = Future()
            try:
                done.set_result(fn(self._con, **kwargs))
            except Exception as exc:  # noqa: BLE001 - raised again by result()
                done.set_exception(exc)
            return done
        return self._pool.submit(fn, self._con, **kwargs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._own is not None:
            self._own.close()


def _json(values: list[str]) -> str:
    import json

    return json.dumps(values)


# -- channel objects from the send settings ----------------------------------------------------
LIVE_SETTING_NAMES = {
    "CRM_PUBLIC_URL": "公開URL（LINEのWebhookと配信停止リンクの受け口、https）",
    "CRM_UNSUBSCRIBE_SECRET": "配信停止リンクの署名キー（16文字以上のランダムな文字列）",
    "LINE_CHANNEL_SECRET": "LINEチャネルシークレット（Webhookの署名確認）",
    "CRM_SEND_RATE": "メールの送信速度（1秒あたりの通数、0は制限なし）",
    "CRM_LINE_NARROWCAST_FROM": "LINEでこの人数以上に同じメッセージを送るときはオーディエンスを作って絞り込み配信にする（空欄なら10,000人から、0は使わない）",
}


def live_setting(name: str, secrets: Any = None, environ: Any = None) -> str:
    """One live-send setting from secrets first, then the environment ("" when unset)."""
    import os

    environ = os.environ if environ is None else environ
    value = None
    if secrets is not None:
        try:
            value = secrets.get(name)
        except Exception:  # noqa: BLE001 - a broken secrets file reads as "not set"
            value = None
    if value in (None, ""):
        value = environ.get(name, "")
    return str(value or "").strip()


NARROWCAST_DEFAULT_FROM = 10_000  # below it multicasts of 500 are few and each has its own statistics unit


def channel_objects(settings: Any, secrets: Any = None, environ: Any = None) -> dict[str, Any]:
    """``line`` (LineBulk), ``smtp`` (SmtpSession), ``unsubscribe``, ``from_addr`` and ``narrowcast_from`` from the send settings.

    The channel objects are None when not set.  ``narrowcast_from``: sends to at least this many LINE
    recipients go out as an uploaded audience plus one narrowcast (their statistics are fetched per
    request id); ``CRM_LINE_NARROWCAST_FROM`` unset or blank means :data:`NARROWCAST_DEFAULT_FROM`,
    ``0`` always multicasts, anything that is not a whole number also multicasts (the safe reading).
    """
    out: dict[str, Any] = {"line": None, "smtp": None, "unsubscribe": None, "from_addr": settings.smtp_from, "narrowcast_from": 0}
    raw = live_setting("CRM_LINE_NARROWCAST_FROM", secrets, environ)
    try:
        out["narrowcast_from"] = NARROWCAST_DEFAULT_FROM if raw == "" else max(int(raw), 0)
    except ValueError:
        out["narrowcast_from"] = 0
    if settings.line_token:
        out["line"] = LineBulk(settings.line_token, settings.line_base_url or None)
    if settings.smtp_host:
        try:
            rate = float(live_setting("CRM_SEND_RATE", secrets, environ) or 0)
        except ValueError:
            rate = 0.0
        out["smtp"] = SmtpSession(settings.smtp_host, settings.smtp_port, username=settings.smtp_username,
                                  password=settings.smtp_password, starttls=settings.smtp_starttls or None, rate=rate)
    secret = live_setting("CRM_UNSUBSCRIBE_SECRET", secrets, environ)
    public = live_setting("CRM_PUBLIC_URL", secrets, environ)
    if len(secret) >= 16 and public.startswith("https://"):
        out["unsubscribe"] = Unsubscribe(secret, public)
    return out
