"""Conversations as readable transcripts, run against the engine with the real understanding and the
real scheduling service, on every database.

A transcript (tests/transcripts/*.txt) starts with headers, then alternates what the recipient says
and what must follow:

    # Ada moves her delivery to Friday afternoon          (comments)
    channel: sms                                          sms | whatsapp | telegram | web
    sender: +14165550101                                  phone, chat id or sandbox session
    now: 2026-12-02 10:00                                 local time in Toronto (this is the default)
    retailers: acme globex                                each gets tests/plans.small_plan (T001..., G001...)
    prefix: TOR-2026-                                     acme's tracking prefix (default T)
    service: +15145550199                                 the number written to: acme's own (default: shared)
    bilingual: yes                                        an en_ scenario whose SMS replies may leave GSM-7

    > Can you come on Friday afternoon instead?           the recipient writes
    > [button 2]  > [payload menu:pickup]                 presses the 2nd button / sends a payload
    > [start T002]  > [contact +14165550101]              Telegram deep link of a delivery / shared contact
    < Which of these times                                a fragment of the replies (texts and [labels])
    <! T001                                               a fragment that must not appear
    < (no reply)                                          the bot stays silent
    = plan: T001 window 2026-12-04 14:00-16:00            the plan afterwards (window, pickup, white-glove,
    = plan: T001 pickup PP1                                 instructions; "unchanged" / "none")
    = consent: +14165550101 sms opted-out                 opted-out | opted-in
    = conversation: needs_person                          status, or "owner agent" / "owner bot"
    = profile: +14165550102 locale en                     the recipient's profile locale
    ! agent takes over | agent hands back | agent closes  what an agent does in the console
    ! set T001 status out_for_delivery                    a change from the field
    ! link web T003                                       the sandbox links the session to T003's recipient
    ! restart                                             a new engine (the dialog must survive)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot import handoff
from bot.engine import ConversationEngine
from bot.messages import InboundMessage, OutboundMessage
from core.consent import opted_out
from core.models import (
    Channel,
    Conversation,
    Delivery,
    DeliveryStatus,
    PickupPoint,
    Recipient,
    Retailer,
    User,
)
from core.sms import is_gsm7
from core.tenants import create_retailer
from scheduling.plans import import_plan
from tests.plans import small_plan

TZ = ZoneInfo("America/Toronto")
DIRECTORY = Path(__file__).parent / "transcripts"
TRANSCRIPTS = sorted(DIRECTORY.glob("*.txt"))
HEADER = re.compile(r"^([a-z]+):\s*(.*)$")
READABLE_SPACES = str.maketrans({"\u202f": " ", "\u2009": " ", "\u00a0": " "})


@dataclass
class Step:
    kind: str  # ">", "<", "<!", "=", "!"
    text: str
    line: int


@dataclass
class Scenario:
    path: Path
    headers: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)


def parse(path: Path) -> Scenario:
    scenario = Scenario(path)
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        for kind in ("<!", ">", "<", "=", "!"):
            if line.startswith(kind):
                scenario.steps.append(Step(kind, line[len(kind) :].strip(), number))
                break
        else:
            match = HEADER.match(line)
            if match is None or scenario.steps:
                raise ValueError(f"{path.name}:{number}: cannot read {line!r}")
            scenario.headers[match.group(1)] = match.group(2).strip()
    return scenario


class Runner:
    def __init__(self, ctx: Any, scenario: Scenario) -> None:
        self.ctx = ctx
        self.scenario = scenario
        headers = scenario.headers
        self.channel = Channel(headers.get("channel", "sms"))
        self.sender = headers.get("sender", "+14165550101")
        self.service_address = headers.get("service", "")
        self.now = datetime.strptime(headers.get("now", "2026-12-02 10:00"), "%Y-%m-%d %H:%M").replace(
            tzinfo=TZ
        )
        self.engine = self.new_engine()
        self.count = 0
        self.replies: list[OutboundMessage] = []
        self.windows_at_start: dict[str, tuple[datetime | None, datetime | None]] = {}
        self.agent_id: int | None = None

    def new_engine(self) -> ConversationEngine:
        return ConversationEngine(self.ctx, clock=lambda: self.now)

    def where(self, step: Step) -> str:
        return f"{self.scenario.path.name}:{step.line}"

    async def setup(self) -> None:
        retailers = self.scenario.headers.get("retailers", "acme").split()
        prefixes = {"acme": self.scenario.headers.get("prefix", "T"), "globex": "G"}
        for slug in retailers:
            own_number = {"sms_from": self.service_address} if slug == "acme" and self.service_address else {}
            async with self.ctx.uow() as uow:
                retailer, _ = await create_retailer(uow.session, slug, slug.title(), **own_number)
                await uow.commit()
            async with self.ctx.uow() as uow:
                retailer = await uow.session.get(Retailer, retailer.id)
                await import_plan(uow, retailer, small_plan(prefix=prefixes[slug]))
        async with self.ctx.uow() as uow:
            for delivery in (await uow.session.exec(select(Delivery))).all():
                self.windows_at_start[delivery.tracking] = (delivery.window_start, delivery.window_end)

    async def run(self) -> None:
        await self.setup()
        for step in self.scenario.steps:
            if step.kind == ">":
                await self.say(step)
            elif step.kind == "<":
                self.expect(step)
            elif step.kind == "<!":
                haystack = self.haystack()
                assert step.text not in haystack, (
                    f"{self.where(step)}: {step.text!r} must not be in:\n{haystack}"
                )
            elif step.kind == "=":
                await self.check(step)
            else:
                await self.act(step)

    # --- the recipient -----------------------------------------------------------------------------

    async def delivery(self, tracking: str) -> Delivery:
        async with self.ctx.uow() as uow:
            return (await uow.session.exec(select(Delivery).where(Delivery.tracking == tracking))).one()

    async def say(self, step: Step) -> None:
        self.count += 1
        fields: dict[str, Any] = {"text": step.text}
        special = re.fullmatch(r"\[(button|payload|start|contact) ?(.*)\]", step.text)
        if special:
            kind, argument = special.group(1), special.group(2).strip()
            fields["text"] = ""
            if kind == "button":
                options = [o for reply in self.replies for o in reply.options]
                index = int(argument) - 1
                assert 0 <= index < len(options), f"{self.where(step)}: no button {argument} in {options}"
                fields["payload"] = options[index].payload
            elif kind == "payload":
                fields["payload"] = argument
            elif kind == "start":
                token = argument
                if re.fullmatch(r"[A-Z]+-?[\d-]*\d", argument):
                    token = (await self.delivery(argument)).telegram_link_token or ""
                fields["text"] = f"/start {token}"
                fields["start_token"] = token
            else:
                fields["contact_phone"] = argument
        message = InboundMessage(
            channel=self.channel,
            sender=self.sender,
            provider_id=f"transcript-{self.count}",
            service_address=self.service_address,
            **fields,
        )
        self.replies = await self.engine.handle(message)
        self.now += timedelta(seconds=20)
        english = self.scenario.path.name.startswith("en_") and "bilingual" not in self.scenario.headers
        if self.channel == Channel.sms and english:
            # English on SMS must fit GSM-7: one stray typographic character would triple the cost
            assert is_gsm7(self.haystack()), f"{self.where(step)}: not GSM-7:\n{self.haystack()!r}"

    def haystack(self) -> str:
        """The replies and their options' labels; CLDR's narrow and thin spaces read as spaces."""
        parts = []
        for reply in self.replies:
            parts.append(reply.text)
            parts.extend(f"[{option.label}]" for option in reply.options)
        return "\n".join(parts).translate(READABLE_SPACES)

    def expect(self, step: Step) -> None:
        if step.text == "(no reply)":
            assert not self.replies, f"{self.where(step)}: expected silence, got:\n{self.haystack()}"
            return
        haystack = self.haystack()
        assert step.text in haystack, f"{self.where(step)}: {step.text!r} not in:\n{haystack}"

    # --- what changed ------------------------------------------------------------------------------

    async def check(self, step: Step) -> None:
        kind, _, rest = step.text.partition(":")
        words = rest.split()
        if kind == "plan":
            await self.check_plan(step, words)
        elif kind == "consent":
            phone, channel, expected = words
            async with self.ctx.uow() as uow:
                recipients = (await uow.session.exec(select(Recipient).where(Recipient.phone == phone))).all()
            assert recipients, f"{self.where(step)}: no recipient {phone}"
            want = expected == "opted-out"
            assert all(opted_out(r, channel) == want for r in recipients), f"{self.where(step)}: consent"
        elif kind == "conversation":
            conversation = await self.conversation()
            if words[0] == "owner":
                assert conversation.owner == words[1], f"{self.where(step)}: owner {conversation.owner}"
            else:
                assert conversation.status == words[0], f"{self.where(step)}: status {conversation.status}"
        elif kind == "profile":
            phone, _, locale = words
            async with self.ctx.uow() as uow:
                recipient = (
                    await uow.session.exec(select(Recipient).where(Recipient.phone == phone))
                ).first()
            assert recipient is not None and recipient.locale == locale, f"{self.where(step)}: locale"
        else:
            raise ValueError(f"{self.where(step)}: unknown check {step.text!r}")

    async def check_plan(self, step: Step, words: list[str]) -> None:
        tracking, what, *value = words
        delivery = await self.delivery(tracking)
        where = self.where(step)
        if what == "window":
            if value == ["unchanged"]:
                got = (delivery.window_start, delivery.window_end)
                assert got == self.windows_at_start[tracking], f"{where}: window moved to {got}"
                return
            assert delivery.window_start and delivery.window_end, f"{where}: no window"
            assert span(delivery.window_start, delivery.window_end) == " ".join(value), (
                f"{where}: window is {span(delivery.window_start, delivery.window_end)}"
            )
        elif what == "pickup":
            if value == ["none"]:
                assert delivery.pickup_point_id is None, f"{where}: redirected"
                return
            async with self.ctx.uow() as uow:
                point = await uow.session.get(PickupPoint, delivery.pickup_point_id or 0)
            assert point is not None and point.external_id == value[0], f"{where}: pickup {point}"
            at_point = (DeliveryStatus.redirected, DeliveryStatus.ready_for_pickup)
            assert delivery.status in at_point, f"{where}: status {delivery.status}"
        elif what == "white-glove":
            if value == ["none"]:
                assert delivery.white_glove_start is None, f"{where}: booked"
                return
            assert delivery.white_glove_start and delivery.white_glove_end, f"{where}: not booked"
            assert span(delivery.white_glove_start, delivery.white_glove_end) == " ".join(value), (
                f"{where}: booked {span(delivery.white_glove_start, delivery.white_glove_end)}"
            )
        elif what == "instructions":
            assert delivery.instructions == " ".join(value), (
                f"{where}: instructions {delivery.instructions!r}"
            )
        elif what == "status":
            assert delivery.status == value[0], f"{where}: status {delivery.status}"
        else:
            raise ValueError(f"{where}: unknown plan check {what!r}")

    async def conversation(self) -> Conversation:
        async with self.ctx.uow() as uow:
            return (
                await uow.session.exec(
                    select(Conversation).where(
                        Conversation.channel == self.channel, Conversation.address == self.sender
                    )
                )
            ).one()

    # --- the world around --------------------------------------------------------------------------

    async def act(self, step: Step) -> None:
        words = step.text.split()
        if words[0] == "agent":
            if self.agent_id is None:
                async with self.ctx.uow() as uow:
                    user = User(email="agent@example.com", name="Agent", password_hash="-")
                    uow.session.add(user)
                    await uow.commit()
                    self.agent_id = user.id
            conversation_id = (await self.conversation()).id
            action = {"takes": handoff.take_over, "hands": handoff.hand_back, "closes": handoff.close}[
                words[1]
            ]
            async with self.ctx.uow() as uow:
                await action(uow, conversation_id, self.agent_id)
        elif words[0] == "set":
            tracking, _, status = words[1:]
            async with self.ctx.uow() as uow:
                delivery = (
                    await uow.session.exec(select(Delivery).where(Delivery.tracking == tracking))
                ).one()
                delivery.status = DeliveryStatus(status)
                uow.session.add(delivery)
                await uow.commit()
        elif words[0] == "link":
            delivery = await self.delivery(words[2])
            await self.engine.link_web_session(self.sender, delivery.recipient_id or 0)
        elif words[0] == "restart":
            self.engine = self.new_engine()
        elif words[0] == "wait":
            self.now += timedelta(minutes=int(words[1].rstrip("m")))
        else:
            raise ValueError(f"{self.where(step)}: unknown action {step.text!r}")


def span(start: datetime, end: datetime) -> str:
    local_start, local_end = start.astimezone(TZ), end.astimezone(TZ)
    return f"{local_start:%Y-%m-%d} {local_start:%H:%M}-{local_end:%H:%M}"


def test_there_are_at_least_forty_transcripts_over_three_languages():
    assert len(TRANSCRIPTS) >= 40
    languages = {path.stem.split("_")[0] for path in TRANSCRIPTS}
    assert {"en", "fr", "es"} <= languages


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda path: path.stem)
async def test_transcript(path: Path, ctx: Any) -> None:
    await Runner(ctx, parse(path)).run()
