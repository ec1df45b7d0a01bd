"""Message templates: presets as data, placeholders, sandboxed rendering, UTM links.

A template is one message for one scenario (FACTS.md §7) in every channel:
LINE (text bubbles plus an optional Flex card), e-mail (subject, preheader,
body, footer), R-Mail (text/HTML to paste into RMS) and package-insert copy
(同梱物).  Presets live in ``data/templates/presets.toml``; a marketer's edits
are stored in the table ``message_templates`` and override the preset with
the same key.

Placeholders are ``{{ name }}``-style fields from the fixed list
:data:`PLACEHOLDERS`; every field has a Japanese fallback for missing values
(``name`` → 「お客様」).  Rendering is sandboxed:

* the template is parsed and only a small set of constructs is accepted
  (text, ``{{ field }}``, ``{% if %}/{% else %}``, comparisons, ``~`` and the
  ``default`` filter); loops, macros, includes, attribute access, calls and
  arithmetic are refused with a Japanese message;
* it runs in a :class:`jinja2.sandbox.SandboxedEnvironment` that allows no
  attribute access, no calls and no operators, with only the placeholder
  values (plain strings) in its context;
* customer values are data, never template source: a name such as
  ``{{7*7}}`` renders literally, and the e-mail HTML is produced by a trusted
  layout with autoescape on, so ``<script>`` arrives as ``&lt;script&gt;``.

Unknown placeholders render empty and are reported by :func:`analyse` (the
compliance lint turns them into findings).
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from crm_core import clock, filecache
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging.context import (
    IDENTITY_FIELDS,
    SAMPLE,
    SETTING_SAMPLE_IDENTITY,
    SETTING_SHOP,
    Campaign,
    Context,
    ShopProfile,
    build_context,
    customer_fields,
    forget_sample_identity,
    save_shop_profile,
    shop_profile,
)
from crm_core.messaging.placeholders import (
    _LINE_BREAKS,
    MAX_VALUE_CHARS,
    PLACEHOLDERS,
    URL_FIELDS,
    URL_RE,
    Placeholder,
    _trim_url,
    add_utm,
    find_urls,
    is_carrier_url,
    one_line,
    tag_links,
    utf16_len,
)
from crm_core.messaging.preview import (
    FIT_PREFIX,
    PREVIEW_FILTERS,
    fit_choice,
    fit_rule,
    preview_customers,
    segment_choices,
    segment_customer_ids,
    segment_rule,
)

__all__ = [
    # re-exported: placeholders and links (messaging.placeholders), context (messaging.context),
    # preview audiences (messaging.preview) — the template API in one place
    "FIT_PREFIX", "PLACEHOLDERS", "PREVIEW_FILTERS", "fit_choice", "fit_rule", "SETTING_SHOP", "URL_FIELDS", "Campaign", "Placeholder", "ShopProfile",
    "add_utm", "build_context", "customer_fields", "find_urls", "is_carrier_url", "preview_customers",
    "save_shop_profile", "segment_choices", "segment_customer_ids", "segment_rule", "shop_profile", "tag_links",
    "utf16_len", "IDENTITY_FIELDS", "SAMPLE", "SETTING_SAMPLE_IDENTITY", "Context", "forget_sample_identity",
    "MAX_VALUE_CHARS", "one_line",
    # this module: the sandbox, templates as data, rendering per channel
    "CHANNELS", "CHANNEL_LABELS", "Card", "Rendered", "Template", "TemplateCheck", "analyse", "flex_bubble",
    "get_template", "list_templates", "preview_rule", "load_presets", "render", "render_for_customer", "render_string",
    "reset_template", "save_template", "template_names", "text_to_html",
]

PRESETS_PATH = Path(__file__).resolve().parents[2] / "data" / "templates" / "presets.toml"
TABLE = "message_templates"
CHANNELS = ("line", "email", "rmail", "insert")
CHANNEL_LABELS = {"line": "LINE", "email": "メール", "rmail": "R-Mail（楽天メルマガ）", "insert": "同梱物"}
LINE_BUBBLE_SEPARATOR = "---"
MAX_SOURCE_CHARS = 20_000
MAX_OUTPUT_CHARS = 200_000
"""A rendered text longer than this is refused (LINE takes 5 × 5,000; no mail needs more)."""


# -- the sandbox ----------------------------------------------------------------
_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.If,
    nodes.Not, nodes.And, nodes.Or, nodes.Compare, nodes.Operand, nodes.CondExpr, nodes.Concat,
)
_ALLOWED_FILTERS = frozenset({"default"})


class _MessageSandbox(SandboxedEnvironment):
    """A sandbox with no attribute access, no calls and no operators."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:  # noqa: ARG002
        return False

    def is_safe_callable(self, obj: Any) -> bool:  # noqa: ARG002
        return False

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:  # noqa: ARG002
        raise SecurityError("operators are not allowed in message templates")

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:  # noqa: ARG002
        raise SecurityError("operators are not allowed in message templates")


def _sandbox() -> _MessageSandbox:
    env = _MessageSandbox(autoescape=False, undefined=jinja2.Undefined, keep_trailing_newline=True)
    env.globals.clear()
    env.filters = {k: v for k, v in env.filters.items() if k in _ALLOWED_FILTERS}
    env.tests = {k: env.tests[k] for k in ("defined", "undefined", "none") if k in env.tests}
    return env


_ENV = _sandbox()


@dataclass
class TemplateCheck:
    """What :func:`analyse` found in one template text."""

    names: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def _too_deep() -> InputError:
    return InputError("テンプレートの入れ子（{% if %} や括弧）が深すぎます。入れ子を減らしてください。", "template nesting too deep")


def _parse(source: str) -> nodes.Template:
    if len(source) > MAX_SOURCE_CHARS:
        raise InputError(f"テンプレートが長すぎます（{len(source):,}文字）。{MAX_SOURCE_CHARS:,}文字以内にしてください。", "template too long")
    try:
        return _ENV.parse(source)
    except (RecursionError, MemoryError):
        raise _too_deep() from None
    except TemplateSyntaxError as exc:
        raise InputError(
            f"テンプレートの{exc.lineno}行目の書き方に誤りがあります。差し込み項目は {{{{ name }}}} のように、"
            "条件は {% if coupon_code %}…{% endif %} のように書いてください。",
            f"template syntax: {exc.message}",
        ) from None


def analyse(source: str) -> TemplateCheck:
    """Placeholders used in a template text, unknown ones, and refused constructs.

    Raises
    ------
    InputError
        When the text is not a valid template (with the line number).
    """
    c = _analysed(source or "")
    return TemplateCheck(set(c.names), set(c.unknown), list(c.problems))


@functools.lru_cache(maxsize=1024)
def _analysed(source: str) -> TemplateCheck:
    """:func:`analyse`, cached per text (rendering a send analyses the same texts for every customer)."""
    check = TemplateCheck()
    tree = _parse(source or "")
    try:
        for node in tree.find_all(nodes.Node):
            if not isinstance(node, _ALLOWED_NODES) and not (isinstance(node, nodes.Filter) and node.name in _ALLOWED_FILTERS):
                what = node.name if isinstance(node, nodes.Filter) else type(node).__name__
                check.problems.append(what)
            if isinstance(node, nodes.Name):
                check.names.add(node.name)
    except RecursionError:
        raise _too_deep() from None
    check.unknown = {n for n in check.names if n not in PLACEHOLDERS}
    return check


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    """A checked and compiled template text (cached: a send renders the same texts for thousands of customers)."""
    check = analyse(source)
    if check.problems:
        raise InputError(
            "テンプレートで使えない書き方が含まれています（" + "、".join(sorted(set(check.problems))) + "）。"
            "使えるのは差し込み項目 {{ 項目 }}、{% if 項目 %}…{% else %}…{% endif %}、default だけです。",
            "refused template constructs: " + ",".join(sorted(set(check.problems))),
        )
    try:
        return _ENV.from_string(source)
    except (RecursionError, MemoryError, SyntaxError):
        raise _too_deep() from None


def render_string(source: str, context: Mapping[str, str]) -> str:
    """Render one template text with the placeholder values (sandboxed).

    Only keys of :data:`PLACEHOLDERS` reach the template, each on one line
    (:func:`one_line`); unknown names render empty.

    Raises
    ------
    InputError
        For syntax errors and refused constructs (loops, calls, arithmetic,
        attribute access ...), nesting too deep, or an output longer than
        :data:`MAX_OUTPUT_CHARS`.
    """
    if not source:
        return ""
    compiled = _compiled(source)
    values = {k: one_line(str(context.get(k, "") or "")) for k in PLACEHOLDERS}
    out: list[str] = []
    size = 0
    try:
        for chunk in compiled.generate(values):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise InputError(
                    f"差し込んだ結果が長すぎます（{MAX_OUTPUT_CHARS:,}文字を超えました）。テンプレートか差し込む内容を短くしてください。",
                    "rendered template too long",
                )
            out.append(chunk)
    except SecurityError as exc:
        raise InputError("テンプレートで計算や関数の呼び出しはできません。差し込み項目だけを使ってください。", f"sandbox: {exc}") from None
    except (RecursionError, MemoryError, SyntaxError):
        raise _too_deep() from None
    return "".join(out)


# -- templates as data ------------------------------------------------------------
@dataclass
class Card:
    """A LINE Flex bubble (and the matching block in the e-mail HTML)."""

    title: str = ""
    price: str = ""
    text: str = ""
    image_url: str = ""
    button_label: str = ""
    button_url: str = ""
    alt_text: str = ""


@dataclass
class Template:
    """One message in all channels; every text may use placeholders."""

    key: str
    label: str
    scenario: str
    description: str = ""
    line_text: str = ""
    card: Card | None = None
    email_subject: str = ""
    email_preheader: str = ""
    email_body: str = ""
    email_footer: str = ""
    rmail_footer: str = ""
    insert_text: str = ""
    fit: list[dict[str, Any]] = field(default_factory=list)
    fit_label: str = ""
    builtin: bool = True
    edited: bool = False

    def texts(self) -> dict[str, str]:
        """Every template text by a Japanese part name (for checks)."""
        out = {
            "LINE本文": self.line_text, "件名": self.email_subject, "プリヘッダー": self.email_preheader,
            "メール本文": self.email_body, "メールフッター": self.email_footer, "R-Mailフッター": self.rmail_footer,
            "同梱物": self.insert_text,
        }
        if self.card:
            for f in fields(Card):
                out[f"カード:{f.name}"] = getattr(self.card, f.name)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("builtin", None)
        d.pop("edited", None)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], shared: Mapping[str, str] | None = None, builtin: bool = True) -> Template:
        shared = shared or {}
        card = data.get("card")
        known = {f.name for f in fields(cls)} - {"card", "builtin", "edited"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs.setdefault("email_footer", shared.get("email_footer", ""))
        kwargs.setdefault("rmail_footer", shared.get("rmail_footer", ""))
        card_obj = Card(**{k: str(v) for k, v in card.items() if k in {f.name for f in fields(Card)}}) if card else None
        return cls(card=card_obj, builtin=builtin, **kwargs)


def channel_texts(template: Template, channel: str) -> list[str]:
    """The template texts a channel uses (for the placeholders a rendered message depends on)."""
    card = [getattr(template.card, f.name) for f in fields(Card)] if template.card else []
    if channel == "line":
        return [template.line_text, *card]
    if channel == "insert":
        return [template.insert_text]
    footer = template.email_footer if channel == "email" else template.rmail_footer
    return [template.email_subject, template.email_preheader, template.email_body, footer, *card]


def load_presets(path: Path | None = None) -> dict[str, Template]:
    """The preset templates from ``data/templates/presets.toml``, by key (each caller gets its own copies).

    The file is parsed once per version (:func:`crm_core.filecache.read_once`): a page asks for the
    templates several times per run.
    """
    return _read_presets(path or PRESETS_PATH)


@filecache.read_once
def _read_presets(path: str) -> dict[str, Template]:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    shared = data.get("shared", {})
    return {t["key"]: Template.from_dict(t, shared) for t in data.get("template", [])}


def list_templates(store: Store | None = None) -> list[Template]:
    """All templates: presets, with the marketer's saved edits applied, then custom ones."""
    presets = load_presets()
    if store is None:
        return list(presets.values())
    saved = {k: json.loads(v) for k, v in store.fetchall("SELECT key, data FROM message_templates ORDER BY key")}
    out = []
    for key, tpl in presets.items():
        if key in saved:
            data = saved.pop(key)
            data.setdefault("fit", tpl.fit)  # edits saved before templates declared their audience
            data.setdefault("fit_label", tpl.fit_label)
            tpl = Template.from_dict(data, builtin=True)
            tpl.edited = True
        out.append(tpl)
    out.extend(Template.from_dict(d, builtin=False) for d in saved.values())
    return out


def preview_rule(store: Store, choice: str) -> dict[str, Any]:
    """The segment rule of a preview choice: :func:`segment_rule`'s, or a template's own audience
    (``fit:<key>``, :func:`fit_choice`) from that template's ``fit`` as it is now (edits included)."""
    if choice.startswith(FIT_PREFIX):
        return fit_rule(get_template(store, choice[len(FIT_PREFIX):]).fit)
    return segment_rule(store, choice)


def get_template(store: Store | None, key: str) -> Template:
    """One template by key.

    Raises
    ------
    InputError
        If there is no such template.
    """
    for tpl in list_templates(store):
        if tpl.key == key:
            return tpl
    names = "、".join(t.key for t in list_templates(store))
    raise InputError(f"テンプレート「{key}」はありません。使えるテンプレート: {names}", f"unknown template {key!r}")


def save_template(store: Store, template: Template) -> None:
    """Store an edited (or new) template; every text must parse."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", template.key or ""):
        raise InputError("テンプレートのキーは半角英数字・ハイフン・アンダースコアで64文字以内にしてください。", "bad template key")
    for part, text in template.texts().items():
        try:
            analyse(text)
        except InputError as exc:
            raise InputError(f"{part}: {exc.message}", exc.detail) from None
    with store.transaction() as cur:
        cur.execute("DELETE FROM message_templates WHERE key = ?", [template.key])
        cur.execute(
            "INSERT INTO message_templates VALUES (?, ?, ?)",
            [template.key, json.dumps(template.to_dict(), ensure_ascii=False), clock.now().replace(microsecond=0)],
        )


def reset_template(store: Store, key: str) -> None:
    """Forget the edits of a template (presets come back)."""
    store.execute("DELETE FROM message_templates WHERE key = ?", [key])


# -- rendering per channel ------------------------------------------------------------
@dataclass
class Rendered:
    """A template rendered for one customer and channel.

    ``line_messages`` is the ``messages`` array LINE receives; e-mail and
    R-Mail fill ``subject``, ``preheader``, ``text`` and ``html``; the insert
    fills ``text``.
    """

    template_key: str
    channel: str
    line_messages: list[dict[str, Any]] = field(default_factory=list)
    subject: str = ""
    preheader: str = ""
    text: str = ""
    html: str = ""
    unsubscribe_url: str = ""
    unknown_placeholders: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)
    """Placeholders the channel's texts use."""
    missing: set[str] = field(default_factory=set)
    """Used placeholders that had no value (rendered as their fallback)."""
    fit: list[dict[str, Any]] = field(default_factory=list)
    fit_label: str = ""

    def to_json(self) -> dict[str, Any] | list[dict[str, Any]]:
        """What the command line prints: LINE's messages array, or the mail parts."""
        if self.channel == "line":
            return self.line_messages
        return {"subject": self.subject, "preheader": self.preheader, "text": self.text, "html": self.html}

    def all_text(self) -> str:
        """Everything a reader sees, for checks."""
        parts = [self.subject, self.preheader, self.text]
        for msg in self.line_messages:
            parts.append(_message_text(msg))
        return "\n".join(p for p in parts if p)


def _message_text(obj: Any) -> str:
    """All strings of a LINE message object (text, Flex texts, labels, URIs)."""
    if isinstance(obj, dict):
        return "\n".join(_message_text(v) for k, v in obj.items() if k not in ("type", "layout", "size", "weight", "color", "style", "aspectRatio", "aspectMode", "margin"))
    if isinstance(obj, list):
        return "\n".join(_message_text(v) for v in obj)
    return obj if isinstance(obj, str) else ""


def _render(source: str, ctx: Mapping[str, str], channel: str, campaign: str) -> str:
    return tag_links(render_string(source, ctx), channel, campaign, skip=[ctx.get("unsubscribe_url", "")]).strip("\n")


def flex_bubble(card: Card) -> dict[str, Any] | None:
    """A Flex message (``type: flex``) with a bubble: image, title, price, note, button."""
    body = []
    if card.title:
        body.append({"type": "text", "text": card.title, "weight": "bold", "size": "lg", "wrap": True})
    if card.price:
        body.append({"type": "text", "text": card.price, "size": "md", "color": "#BF0000", "weight": "bold", "margin": "md"})
    if card.text:
        body.append({"type": "text", "text": card.text, "size": "sm", "color": "#555555", "wrap": True, "margin": "md"})
    if not body:
        return None
    bubble: dict[str, Any] = {"type": "bubble"}
    if card.image_url.startswith("https://"):
        bubble["hero"] = {"type": "image", "url": card.image_url, "size": "full", "aspectRatio": "20:13", "aspectMode": "cover"}
    bubble["body"] = {"type": "box", "layout": "vertical", "contents": body}
    if card.button_url and card.button_label:
        bubble["footer"] = {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {"type": "button", "style": "primary", "color": "#06C755",
                 "action": {"type": "uri", "label": card.button_label, "uri": card.button_url}}
            ],
        }
    alt = card.alt_text or card.title or "お知らせ"
    return {"type": "flex", "altText": alt, "contents": bubble}


def _render_card(card: Card | None, ctx: Mapping[str, str], channel: str, campaign: str) -> Card | None:
    if card is None:
        return None
    out = Card(**{f.name: _render(getattr(card, f.name), ctx, channel, campaign) for f in fields(Card) if f.name != "image_url"})
    out.image_url = render_string(card.image_url, ctx).strip()  # images carry no UTM
    return out


_LAYOUT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ subject }}</title></head>
<body style="margin:0;padding:0;background:#f4f4f4;">
<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;">{{ preheader }}</div>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f4f4;"><tr><td align="center" style="padding:16px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="max-width:600px;width:100%;background:#ffffff;border-radius:8px;">
<tr><td style="padding:24px;font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN',Meiryo,sans-serif;font-size:15px;line-height:1.8;color:#333333;">
{% for para in paragraphs %}<p style="margin:0 0 1em;">{% for line in para %}{% if not loop.first %}<br>{% endif %}{% for kind, value in line %}{% if kind == "link" %}<a href="{{ value }}" style="color:#bf0000;">{{ value }}</a>{% else %}{{ value }}{% endif %}{% endfor %}{% endfor %}</p>
{% endfor %}{% if card %}<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border:1px solid #e5e5e5;border-radius:8px;margin:8px 0 16px;">
{% if card.image_url %}<tr><td><img src="{{ card.image_url }}" alt="{{ card.title }}" width="550" style="width:100%;height:auto;display:block;border-radius:8px 8px 0 0;"></td></tr>{% endif %}
<tr><td style="padding:16px;">{% if card.title %}<div style="font-size:18px;font-weight:bold;">{{ card.title }}</div>{% endif %}{% if card.price %}<div style="color:#bf0000;font-weight:bold;margin-top:8px;">{{ card.price }}</div>{% endif %}{% if card.text %}<div style="font-size:13px;color:#555555;margin-top:8px;">{{ card.text }}</div>{% endif %}
{% if card.button_url and card.button_label %}<div style="margin-top:16px;"><a href="{{ card.button_url }}" style="display:inline-block;background:#bf0000;color:#ffffff;text-decoration:none;padding:10px 24px;border-radius:4px;">{{ card.button_label }}</a></div>{% endif %}
</td></tr></table>{% endif %}
{% if footer %}<hr style="border:none;border-top:1px solid #e5e5e5;margin:24px 0 12px;">
<div style="font-size:12px;color:#777777;">{% for line in footer %}{% if not loop.first %}<br>{% endif %}{% for kind, value in line %}{% if kind == "link" %}<a href="{{ value }}" style="color:#777777;">{{ value }}</a>{% else %}{{ value }}{% endif %}{% endfor %}{% endfor %}</div>{% endif %}
</td></tr></table></td></tr></table></body></html>
"""
)


def _segments(line: str) -> list[tuple[str, str]]:
    """A line split into ("text", ...) and ("link", url) pieces."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in URL_RE.finditer(line):
        url = _trim_url(m.group(0))
        if m.start() > pos:
            out.append(("text", line[pos:m.start()]))
        out.append(("link", url))
        pos = m.start() + len(url)
    if pos < len(line):
        out.append(("text", line[pos:]))
    return out


def text_to_html(subject: str, preheader: str, body: str, footer: str = "", card: Card | None = None) -> str:
    """Simple HTML mail from plain text: paragraphs, links, optional card and footer.

    The layout is trusted code with autoescape on: every piece of text
    (customer values included) is HTML-escaped.
    """
    paragraphs = [[_segments(line) for line in block.split("\n")] for block in re.split(r"\n\s*\n", body.strip()) if block.strip()]
    foot = [_segments(line) for line in footer.strip().split("\n")] if footer.strip() else []
    safe_card = None
    if card is not None:
        safe_card = replace(card)
        for name in ("image_url", "button_url"):
            if not getattr(safe_card, name).startswith(("https://", "http://")):
                setattr(safe_card, name, "")
    return _LAYOUT.render(subject=subject, preheader=preheader, paragraphs=paragraphs, footer=foot, card=safe_card)


def render(template: Template, context: Mapping[str, str], channel: str, campaign: str = "") -> Rendered:
    """Render a template for one customer's context in one channel.

    Parameters
    ----------
    template : Template
    context : mapping
        From :func:`build_context` (built for the same channel).
    channel : {"line", "email", "rmail", "insert"}
    campaign : str
        ``utm_campaign`` for links written in the template (default: the key).
    """
    if channel not in CHANNELS:
        raise InputError("チャネルは line / email / rmail / insert から選んでください。", f"bad channel {channel!r}")
    campaign = campaign or template.key
    unknown: set[str] = set()
    for text in template.texts().values():
        unknown |= analyse(text).unknown
    used: set[str] = set()
    for text in channel_texts(template, channel):
        used |= analyse(text).names & set(PLACEHOLDERS)
    out = Rendered(template_key=template.key, channel=channel, unknown_placeholders=unknown, used=used,
                   missing=used & set(getattr(context, "missing", ())), fit=list(template.fit), fit_label=template.fit_label)
    if channel == "line":
        text = _render(template.line_text, context, channel, campaign)
        bubbles = [b.strip("\n") for b in re.split(rf"(?m)^{re.escape(LINE_BUBBLE_SEPARATOR)}\s*$", text)]
        out.line_messages = [{"type": "text", "text": b} for b in bubbles if b.strip()]
        card = _render_card(template.card, context, channel, campaign)
        flex = flex_bubble(card) if card else None
        if flex:
            out.line_messages.append(flex)
        return out
    if channel == "insert":
        out.text = render_string(template.insert_text, context).strip("\n")
        return out
    out.subject = _LINE_BREAKS.sub(" ", _render(template.email_subject, context, channel, campaign)).strip()
    out.preheader = _LINE_BREAKS.sub(" ", _render(template.email_preheader, context, channel, campaign)).strip()
    body = _render(template.email_body, context, channel, campaign)
    footer = _render(template.email_footer if channel == "email" else template.rmail_footer, context, channel, campaign)
    out.text = body + ("\n\n" + footer if footer else "")
    card = _render_card(template.card, context, channel, campaign)
    out.html = text_to_html(out.subject, out.preheader, body, footer, card)
    link = context.get("unsubscribe_url", "")
    out.unsubscribe_url = link if channel == "email" and link.startswith(("https://", "http://")) else ""
    return out


def render_for_customer(
    store: Store,
    template: str | Template,
    customer_id: str,
    channel: str,
    campaign: Campaign | None = None,
    *,
    customer: Mapping[str, Any] | None = None,
) -> Rendered:
    """Load the template (by key, or use the one given), the customer and the shop profile, then :func:`render`.

    ``customer``: the customer's :func:`customer_fields` when the caller has read them already.
    """
    tpl = get_template(store, template) if isinstance(template, str) else template
    if customer is None:
        customer = customer_fields(store, customer_id)
    campaign = campaign or Campaign()
    ctx = build_context(customer, campaign, shop_profile(store), channel, tpl.key)
    return render(tpl, ctx, channel, campaign.utm_campaign or tpl.key)


def template_names(templates: Iterable[Template]) -> list[dict[str, str]]:
    """``key, label, scenario`` of templates (for ``templates --json``)."""
    return [{"key": t.key, "label": t.label, "scenario": t.scenario} for t in templates]
