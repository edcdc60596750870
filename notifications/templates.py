"""Message templates: a locked-down Jinja2 sandbox, localised filters, validation and versions.

A retailer's template is untrusted code. Layers of defence, each enough against a different attack:
1. `ImmutableSandboxedEnvironment`: no private or dunder attributes, no mutating methods.
2. A node allowlist checked at compile time: output, conditions, filters and operators only; no
   calls, loops, assignments, macros, includes or imports, so a render's cost is linear in the
   template's size.
3. No globals (no `range`, `cycler`, `namespace`, `lipsum`...) and an allowlist of filters, each
   with a cap on the size of what it returns; `*`, `%` and `+` are intercepted and capped.
4. The output is capped, and the variables are plain values (strings, numbers, dates, windows),
   never ORM objects: nothing reaches the database, the file system or another tenant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.units import format_unit
from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes, pass_context
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import sms, wording
from core.config import ROOT
from core.models import Channel, Retailer, Template, utcnow
from core.sms import plain
from notifications.events import EVENTS, FILE_CHANNEL, LOCALES, EventSpec, check_key

TEMPLATE_DIR = ROOT / "templates"
MAX_SOURCE_CHARS = 2000
MAX_OUTPUT_CHARS = 4096
SMS_MAX_SEGMENTS = 4  # a retailer may lower it with settings["sms_max_segments"]
WHATSAPP_BODY_LIMIT = 1024
WHATSAPP_SESSION_BUTTONS = 3
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")

ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Tuple,
    nodes.List,
    nodes.Keyword,
)
SAFE_JINJA_FILTERS = [
    *("default", "d", "upper", "lower", "title", "capitalize", "trim", "truncate", "replace", "length"),
    *("count", "first", "last", "join", "round", "int", "float", "abs", "string", "striptags"),
    *("wordcount", "e", "escape"),
]


class TemplateProblem(Exception):
    """Something wrong with a template, with the line it is on when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "msg": self.message}


@dataclass(frozen=True)
class Window:
    """A time window (aware datetimes); templates format it with the `window` filter."""

    start: datetime
    end: datetime


# --- localised filters ---------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _locale(name: str) -> Locale:
    return Locale.parse(name)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=8192)
def format_window(start: datetime, end: datetime, locale: str, timezone: str, part: str = "full") -> str:
    """The bot's wording of a window (core.wording), so a notification and a reply read alike."""
    if part == "time":
        return wording.hours(start, end, locale, timezone)
    if part != "full":
        raise TemplateProblem("the window filter takes 'full' or 'time'")
    return wording.window(start, end, locale, timezone)


def _context_locale(context: Context) -> tuple[str, str]:
    return str(context.get("locale") or "en"), str(context.get("timezone") or "UTC")


@pass_context
def window_filter(context: Context, value: Any, part: str = "full") -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, Window):
        raise TemplateProblem("the window filter formats a window (window or slot)")
    locale, timezone = _context_locale(context)
    return format_window(value.start, value.end, locale, timezone, part)


@lru_cache(maxsize=4096)
def _format_date(value: date, fmt: str, locale: str, timezone: str) -> str:
    loc = _locale(locale)
    zone = _zone(timezone) if isinstance(value, datetime) else None
    if isinstance(value, datetime):
        value = value.astimezone(_zone(timezone))
    if fmt in ("short", "medium", "long", "full"):
        return format_date(value, fmt, locale=loc)
    if fmt.isalpha():
        return format_skeleton(fmt, value, tzinfo=zone, locale=loc)
    return format_date(value, fmt, locale=loc)


@pass_context
def date_filter(context: Context, value: Any, fmt: str = "") -> str:
    """A day as the bot words it ("Sat Dec 5"), or in a babel format or skeleton of the template's."""
    if value is None or value == "":
        return ""
    if isinstance(value, Window):
        value = value.start
    if not isinstance(value, date):
        raise TemplateProblem("the date filter formats a date or a datetime")
    if not fmt:
        locale, timezone = _context_locale(context)
        return wording.day(value, locale, timezone)
    if len(fmt) > 40:
        raise TemplateProblem("a date format has at most 40 characters")
    locale, timezone = _context_locale(context)
    try:
        return _format_date(value, fmt, locale, timezone)
    except (ValueError, KeyError, TypeError) as exc:
        raise TemplateProblem(f"bad date format {fmt!r}: {exc}") from None


@pass_context
def time_filter(context: Context, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, datetime):
        raise TemplateProblem("the time filter formats a datetime (eta, delivered_at)")
    locale, timezone = _context_locale(context)
    return wording.clock_time(value, locale, timezone)


@pass_context
def distance_filter(context: Context, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TemplateProblem("the distance filter formats a number of metres")
    locale, _tz = _context_locale(context)
    if abs(value) < 1000:
        return str(format_unit(round(value), "length-meter", length="short", locale=_locale(locale)))
    return str(
        format_unit(round(value / 1000, 1), "length-kilometer", length="short", locale=_locale(locale))
    )


# --- the sandbox ---------------------------------------------------------------------------------


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


def _check_size(value: Any) -> Any:
    if _sized(value) > MAX_OUTPUT_CHARS:
        raise SecurityError(f"a value longer than {MAX_OUTPUT_CHARS} characters")
    return value


def _capped(filter_: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        return _check_size(filter_(*args, **kwargs))

    for marker in ("jinja_pass_arg",):  # keep pass_context / pass_eval_context markers
        if hasattr(filter_, marker):
            setattr(run, marker, getattr(filter_, marker))
    return run


def _safe_replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old_, new_ = str(value), str(old), str(new)
    hits = text.count(old_) if old_ else len(text) + 1
    if count is not None:
        hits = min(hits, max(count, 0))
    if len(text) + hits * len(new_) > MAX_OUTPUT_CHARS:
        raise SecurityError(f"a value longer than {MAX_OUTPUT_CHARS} characters")
    return text.replace(old_, new_, -1 if count is None else count)


class MessageEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "%", "+", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            raise SecurityError("the power operator is not allowed in templates")
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed; use filters")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _sized(seq) and isinstance(times, int) and _sized(seq) * times > MAX_OUTPUT_CHARS:
                    raise SecurityError(f"a value longer than {MAX_OUTPUT_CHARS} characters")
        return _check_size(super().call_binop(context, operator, left, right))


def build_environment() -> MessageEnvironment:
    env = MessageEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
        cache_size=0,
    )
    env.globals.clear()
    filters: dict[str, Callable[..., Any]] = {name: JINJA_FILTERS[name] for name in SAFE_JINJA_FILTERS}
    filters["replace"] = _safe_replace
    filters.update(window=window_filter, date=date_filter, time=time_filter, distance=distance_filter)
    env.filters = {name: _capped(f) for name, f in filters.items()}
    return env


ENV = build_environment()


def check_nodes(tree: nodes.Template) -> None:
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, ALLOWED_NODES):
            kind = type(node).__name__
            hint = {
                "Call": "calls are not allowed; use filters, e.g. {{ brand|upper }}",
                "For": "loops are not allowed",
                "Assign": "{% set %} is not allowed",
                "AssignBlock": "{% set %} is not allowed",
                "Include": "templates cannot include files",
                "Import": "templates cannot import",
                "FromImport": "templates cannot import",
                "Extends": "templates cannot extend files",
            }.get(kind, f"{kind} is not allowed in message templates")
            raise TemplateProblem(hint, getattr(node, "lineno", None))


@lru_cache(maxsize=2048)
def compile_template(source: str) -> tuple[JinjaTemplate, frozenset[str]]:
    """Parse, check and compile a template; returns it with the variable names it uses."""
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateProblem(f"a template has at most {MAX_SOURCE_CHARS} characters")
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"syntax error: {exc.message}", exc.lineno) from None
    check_nodes(tree)
    try:
        variables = frozenset(meta.find_undeclared_variables(tree))
        return ENV.from_string(tree), variables
    except TemplateSyntaxError as exc:  # e.g. "No filter named 'attr'"
        raise TemplateProblem(exc.message or "invalid template", exc.lineno) from None


def render_source(source: str, context: Mapping[str, Any], channel: Channel) -> str:
    """Render a template for one channel; SMS text is normalised to GSM-7 look-alikes."""
    template, _variables = compile_template(source)
    size = 0
    parts: list[str] = []
    try:
        for chunk in template.generate(dict(context)):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateProblem(f"the message is longer than {MAX_OUTPUT_CHARS} characters")
            parts.append(chunk)
    except TemplateProblem:
        raise
    except UndefinedError as exc:
        raise TemplateProblem(f"undefined: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateProblem(f"refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateProblem(f"cannot render: {exc.message}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"cannot render: {exc.__class__.__name__}: {exc}") from None
    return tidy("".join(parts), channel)


_BLANK_LINES = re.compile(r"\n{3,}")


def tidy(text: str, channel: Channel) -> str:
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    text = _BLANK_LINES.sub("\n\n", text)
    return plain(text) if channel == Channel.sms else text


def options_for(spec: EventSpec, locale: str) -> list[dict[str, str]]:
    return [{"label": option.label(locale), "payload": option.payload} for option in spec.options]


def sms_message(
    body: str, options: Iterable[dict[str, str]], locale: str = "en", *, smart: bool = True
) -> sms.SmsMessage:
    """The SMS as the phone shows it and what it costs: the same `core.sms.compose` the sender uses,
    so the editor's count is the outbox row's count."""
    try:
        return sms.compose(body, [o["label"] for o in options], locale, smart=smart)
    except sms.SmsTooLong as exc:
        raise TemplateProblem(str(exc)) from None


# --- defaults and overrides ----------------------------------------------------------------------


def default_path(event: str, locale: str, channel: Channel) -> Path:
    return TEMPLATE_DIR / event / f"{locale}.{FILE_CHANNEL[channel].value}.j2"


@lru_cache(maxsize=512)
def default_body(event: str, locale: str, channel: Channel) -> str:
    check_key(event, locale, channel)
    return default_path(event, locale, channel).read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class ActiveTemplate:
    event: str
    locale: str
    channel: Channel
    body: str
    content_sid: str | None
    version: int  # 0: the default file
    source: str  # "default" or "retailer"


async def active_template(
    session: AsyncSession, retailer_id: int, event: str, locale: str, channel: Channel
) -> ActiveTemplate:
    row = (
        await session.exec(
            select(Template)
            .where(
                Template.retailer_id == retailer_id,
                Template.event == event,
                Template.locale == locale,
                Template.channel == channel,
                col(Template.active).is_(True),
            )
            .order_by(col(Template.version).desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return ActiveTemplate(
            event, locale, channel, default_body(event, locale, channel), None, 0, "default"
        )
    return ActiveTemplate(event, locale, channel, row.body, row.content_sid, row.version, "retailer")


async def active_templates(
    session: AsyncSession, retailer_id: int
) -> dict[tuple[str, str, str], ActiveTemplate]:
    """Every active override of a retailer in one query (the bulk path and the editor's list)."""
    rows = (
        await session.exec(
            select(Template)
            .where(Template.retailer_id == retailer_id, col(Template.active).is_(True))
            .order_by(col(Template.version))
        )
    ).all()
    found: dict[tuple[str, str, str], ActiveTemplate] = {}
    for row in rows:
        found[(row.event, row.locale, str(row.channel))] = ActiveTemplate(
            row.event, row.locale, Channel(row.channel), row.body, row.content_sid, row.version, "retailer"
        )
    return found


async def versions(
    session: AsyncSession, retailer_id: int, event: str, locale: str, channel: Channel
) -> list[Template]:
    return list(
        (
            await session.exec(
                select(Template)
                .where(
                    Template.retailer_id == retailer_id,
                    Template.event == event,
                    Template.locale == locale,
                    Template.channel == channel,
                )
                .order_by(col(Template.version).desc())
            )
        ).all()
    )


class TemplateInvalid(Exception):
    def __init__(self, report: Report) -> None:
        super().__init__("; ".join(p["msg"] for p in report.errors))
        self.report = report


class VersionNotFound(LookupError):
    pass


async def save_template(
    session: AsyncSession,
    retailer: Retailer,
    event: str,
    locale: str,
    channel: Channel,
    body: str,
    *,
    content_sid: str | None = None,
    author: str = "",
) -> Template:
    """Validate and store a new version, which becomes the active one. Raises TemplateInvalid."""
    assert retailer.id is not None
    report = validate(retailer, event, locale, channel, body, content_sid=content_sid)
    if report.errors:
        raise TemplateInvalid(report)
    existing = await versions(session, retailer.id, event, locale, channel)
    for row in existing:
        if row.active:
            row.active = False
            session.add(row)
    template = Template(
        retailer_id=retailer.id,
        event=event,
        locale=locale,
        channel=channel,
        version=(existing[0].version + 1) if existing else 1,
        body=body,
        content_sid=content_sid or None,
        active=True,
        created_by=author[:200],
        created_at=utcnow(),
    )
    session.add(template)
    await session.flush()
    return template


async def rollback_template(
    session: AsyncSession,
    retailer: Retailer,
    event: str,
    locale: str,
    channel: Channel,
    version: int,
    *,
    author: str = "",
) -> Template | None:
    """Make an earlier version active again, as a new version (history is kept).

    Version 0 is the default file: every override is deactivated and None is returned.
    """
    assert retailer.id is not None
    existing = await versions(session, retailer.id, event, locale, channel)
    if version == 0:
        for row in existing:
            if row.active:
                row.active = False
                session.add(row)
        await session.flush()
        return None
    target = next((row for row in existing if row.version == version), None)
    if target is None:
        raise VersionNotFound(version)
    return await save_template(
        session, retailer, event, locale, channel, target.body, content_sid=target.content_sid, author=author
    )


# --- sample data and validation ------------------------------------------------------------------

SAMPLE_NAMES = {"en": "Ada Lovelace", "fr_CA": "Geneviève Tremblay", "es": "María José Fernández"}
SAMPLE_REASONS = {
    "en": "nobody answered the door",
    "fr_CA": "personne n'a répondu",
    "es": "nadie abrió la puerta",
}


def sample_context(
    event: str,
    locale: str,
    *,
    brand: str,
    timezone: str,
    telegram_bot: str = "DoorstepDemoBot",
    sparse: bool = False,
) -> dict[str, Any]:
    """Realistic values for previews and validation; `sparse` leaves every optional value empty."""
    zone = ZoneInfo(timezone)
    start = datetime(2026, 12, 3, 14, 0, tzinfo=zone)
    window = Window(start, start + timedelta(hours=2))
    context: dict[str, Any] = {
        "brand": brand,
        "recipient_name": "" if sparse else SAMPLE_NAMES.get(locale, "Ada"),
        "tracking": "TOR-000123",
        "address": "1234 Queen St W, Apt 5",
        "window": window,
        "day": start.date(),
        "locale": locale,
        "timezone": timezone,
        "telegram_link": f"https://t.me/{telegram_bot}?start=Xk3p9Qz7Lm2Vb8Nc4Rt6Yw1Hs5Jd0Fg",
        "eta": None if sparse else start + timedelta(minutes=35),
        "stops_away": 2,
        "delivered_at": start + timedelta(minutes=42),
        "proof_photo_url": "" if sparse else "https://proof.example.com/p/8f3a2c",
        "proof_signer": "" if sparse else SAMPLE_NAMES.get(locale, "Ada").split()[0],
        "reason": "" if sparse else SAMPLE_REASONS.get(locale, ""),
        "pickup_name": "Queen St Lockers",
        "pickup_address": "500 Queen St W",
        "slot": Window(start + timedelta(hours=1), start + timedelta(hours=3)),
    }
    allowed = EVENTS[event].all_variables
    return {key: value for key, value in context.items() if key in allowed}


def whatsapp_variables(spec: EventSpec, context: Mapping[str, Any]) -> dict[str, str]:
    """Positional ContentVariables for an approved WhatsApp template: "1" is the first name, and so on."""
    locale, timezone = str(context.get("locale", "en")), str(context.get("timezone", "UTC"))
    values: dict[str, str] = {}
    for position, name in enumerate(spec.whatsapp_variables, start=1):
        if name == "window_text":
            w = context.get("window")
            value = format_window(w.start, w.end, locale, timezone) if isinstance(w, Window) else ""
        elif name == "slot_text":
            s = context.get("slot")
            value = format_window(s.start, s.end, locale, timezone) if isinstance(s, Window) else ""
        elif name == "eta_text":
            eta = context.get("eta")
            value = wording.clock_time(eta, locale, timezone) if isinstance(eta, datetime) else ""
        elif name == "proof_text":
            value = str(context.get("proof_signer") or context.get("proof_photo_url") or "-")
        else:
            value = str(context.get(name, ""))
        values[str(position)] = value or "-"
    return values


def whatsapp_variable_problems(values: Mapping[str, str]) -> list[str]:
    """Twilio's rules for ContentVariables: non-empty, no newlines or tabs, no 5 spaces in a row."""
    problems = []
    for key, value in values.items():
        if not value.strip():
            problems.append(f"WhatsApp variable {{{{{key}}}}} is empty")
        if "\n" in value or "\t" in value:
            problems.append(f"WhatsApp variable {{{{{key}}}}} has a newline or a tab")
        if "     " in value:
            problems.append(f"WhatsApp variable {{{{{key}}}}} has more than 4 spaces in a row")
    return problems


@dataclass
class Report:
    """What validation or a preview found; `errors` block a save, `warnings` do not."""

    text: str = ""
    options: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    segments: int | None = None
    encoding: str | None = None
    sms_body: str = ""
    characters: int = 0
    content_variables: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": not self.errors,
            "text": self.text,
            "options": self.options,
            "errors": self.errors,
            "warnings": self.warnings,
            "sms": (
                {
                    "segments": self.segments,
                    "encoding": self.encoding,
                    "body": self.sms_body,
                    "characters": len(self.sms_body),
                }
                if self.segments
                else None
            ),
            "characters": self.characters,
            "content_variables": self.content_variables,
        }


def validate(
    retailer: Retailer,
    event: str,
    locale: str,
    channel: Channel,
    body: str,
    *,
    content_sid: str | None = None,
    sample: Mapping[str, Any] | None = None,
    telegram_bot: str = "DoorstepDemoBot",
) -> Report:
    """Syntax, allowed constructs, known variables, a render with sample data, and channel rules."""
    spec, locale, channel = check_key(event, locale, channel)
    report = Report(options=options_for(spec, locale))
    if not body.strip():
        report.errors.append({"line": None, "msg": "the template is empty"})
        return report
    try:
        _template, used = compile_template(body)
    except TemplateProblem as exc:
        report.errors.append(exc.as_dict())
        return report
    unknown = sorted(used - set(spec.all_variables))
    if unknown:
        report.errors.append(
            {
                "line": _line_of(body, unknown[0]),
                "msg": f"unknown variable(s) {', '.join(unknown)}; this event has "
                + ", ".join(sorted(spec.all_variables)),
            }
        )
        return report
    brand = retailer.brand_name or retailer.name
    timezone = retailer.timezone or "UTC"
    contexts = [
        sample_context(event, locale, brand=brand, timezone=timezone, telegram_bot=telegram_bot),
        sample_context(event, locale, brand=brand, timezone=timezone, telegram_bot=telegram_bot, sparse=True),
    ]
    if sample:
        contexts[0].update({k: v for k, v in sample.items() if k in spec.all_variables})
    texts = []
    for context in contexts:
        try:
            texts.append(render_source(body, context, channel))
        except TemplateProblem as exc:
            report.errors.append(exc.as_dict())
            return report
    report.text = texts[0]
    report.characters = len(texts[0])
    if not all(t.strip() for t in texts):
        report.errors.append({"line": None, "msg": "the message renders empty for some deliveries"})
    if spec.first_contact and channel in (Channel.sms, Channel.whatsapp):
        if "brand" not in used:
            report.errors.append({"line": None, "msg": "a first message names the brand: use {{ brand }}"})
        if "STOP" not in body:
            report.errors.append({"line": None, "msg": "a first message says how to stop: include STOP"})
    if channel == Channel.sms:
        _check_sms(retailer, locale, texts, report)
    elif channel == Channel.whatsapp:
        if len(texts[0]) > WHATSAPP_BODY_LIMIT:
            report.errors.append(
                {"line": None, "msg": f"{len(texts[0])} characters; WhatsApp allows {WHATSAPP_BODY_LIMIT}"}
            )
        if len(report.options) > WHATSAPP_SESSION_BUTTONS:
            report.warnings.append(
                f"WhatsApp shows {WHATSAPP_SESSION_BUTTONS} quick replies at most; "
                "the rest become numbered lines"
            )
        if content_sid:
            if not CONTENT_SID.match(content_sid):
                report.errors.append({"line": None, "msg": "a content SID is HX followed by 32 hex digits"})
            report.content_variables = whatsapp_variables(spec, contexts[0])
            for problem in whatsapp_variable_problems(report.content_variables):
                report.errors.append({"line": None, "msg": problem})
        else:
            report.warnings.append(
                "without an approved template (content SID), WhatsApp delivers this only within 24 hours "
                "of the recipient's last message; otherwise SMS is used"
            )
    elif len(texts[0]) > 4096:
        report.errors.append({"line": None, "msg": "Telegram messages have at most 4096 characters"})
    return report


def _check_sms(retailer: Retailer, locale: str, texts: list[str], report: Report) -> None:
    """Segments and encoding of the final SMS (numbered options, smart encoding as the retailer set it)."""
    smart = sms.smart_encoding(retailer.settings, locale)
    limit = int(retailer.settings.get("sms_max_segments", SMS_MAX_SEGMENTS))
    try:
        messages = [sms_message(t, report.options, locale, smart=smart) for t in texts]
    except TemplateProblem as exc:
        report.errors.append(exc.as_dict())
        return
    final = messages[0]
    report.sms_body, report.segments, report.encoding = final.body, final.segments, final.encoding
    if final.encoding == "GSM-7" and smart:
        report.text = sms.to_gsm7(texts[0])
    worst = max(m.segments for m in messages)
    if worst > limit:
        report.errors.append({"line": None, "msg": f"{worst} SMS segments; at most {limit} are allowed"})
    if final.encoding == "UCS-2":
        culprits = sms.unencodable(final.body, smart=smart)
        hint = "" if smart else " (smart encoding is off: settings.sms_smart_encoding)"
        report.warnings.append(f"UCS-2 encoding (70 characters a segment) because of: {culprits}{hint}")


def _line_of(body: str, name: str) -> int | None:
    for number, line in enumerate(body.splitlines(), start=1):
        if re.search(rf"\b{re.escape(name)}\b", line):
            return number
    return None


def all_keys() -> list[tuple[str, str, Channel]]:
    from notifications.events import CHANNELS

    return [(event, locale, channel) for event in EVENTS for locale in LOCALES for channel in CHANNELS]
