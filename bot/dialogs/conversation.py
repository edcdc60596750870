"""The conversation's flow: keywords first, then who is writing, then what they asked.

Every turn reads the dialog state (pending confirmation, options offered last turn, what we are
waiting for) and leaves it updated; the replies are built on the `Turn`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from bot import identity, keywords
from bot.dialogs import changes
from bot.dialogs.turn import MENU_INTENTS, Parsed, Turn
from bot.events import RecipientOptedIn, RecipientOptedOut
from bot.handoff import request_person
from bot.i18n import SUPPORTED, Speaker, normalize_locale
from bot.keywords import Keyword
from core.consent import set_opt_out
from core.logging import get_logger
from core.models import ConversationStatus, Delivery, Retailer
from core.ratelimit import FailureLimiter, sender_key

log = get_logger("doorstep.bot.dialogs")

Understand = Callable[..., Any]
DEFAULT_TIMEZONE = "America/Toronto"
MAX_VERIFY_ATTEMPTS = 3
# Intents that keep the language the conversation is in: "2" or "ok" says nothing about it.
LANGUAGE_NEUTRAL = {"choose_option", "choose", "stale", "unknown"}
# A request worth carrying over while we first ask who is writing or which delivery it is about.
DEFERRABLE = {
    "where_is_parcel",
    "reschedule",
    "redirect_pickup",
    "white_glove",
    "cancel_white_glove",
    "instructions",
    "notify_me",
}
# intents whose text may hold a code that looks like a tracking number ("buzzer A1234567")
KEEPS_ITS_CODES = {"instructions", "human"}


# Each language named in itself, so anyone can find theirs.
def _tracking_key(tracking: str) -> str:
    """A tracking number as compared with one written in a chat: "g-001" names G001."""
    return identity.normalize_tracking(tracking).replace("-", "")


LANGUAGE_NAMES = {"en": "English", "fr_CA": "Français", "es": "Español"}
CONTACT_PAYLOAD = "share_contact"  # channels/telegram_format: a "share my phone number" button


class Dialogs:
    def __init__(self, understand: Understand, guesses: FailureLimiter | None = None) -> None:
        self._understand = understand
        # wrong tracking/postal-code pairs per sender, across conversations and processes
        self._guesses = guesses

    # --- the turn ----------------------------------------------------------------------------------

    async def run_keyword_only(self, turn: Turn) -> bool:
        """While an agent owns the conversation only the carriers' keywords get the bot's answer."""
        if turn.message.payload is not None or not (hit := keywords.match(turn.message.text)):
            return False
        await self.identify(turn)
        self.speak(turn, None)
        await self.keyword(turn, *hit)
        return True

    async def run(self, turn: Turn) -> None:
        await self.identify(turn)
        self.speak(turn, None)
        message = turn.message
        if message.payload is None and (hit := keywords.match(message.text)):
            await self.keyword(turn, *hit)
            return
        if message.start_token is not None or message.text.strip().lower().startswith("/start"):
            await self.telegram_start(turn)
            return
        if message.contact_phone:
            await self.telegram_contact(turn)
            return
        if message.attachments and not message.text.strip() and message.payload is None:
            await self.ask_for_person(turn, Parsed("human"), attachment=True)
            return
        parsed = await self.parse(turn)
        self.speak(turn, parsed)
        await self.dispatch(turn, parsed)

    async def identify(self, turn: Turn) -> None:
        """The sender's recipient rows (narrowed to the retailer whose own number they wrote to)."""
        message, conversation = turn.message, turn.conversation
        sender = await identity.sender_of(
            turn.uow, message.channel, message.sender, message.service_address, conversation
        )
        recipients, retailers, pinned = sender.recipients, sender.retailers, sender.number_owner
        retailer_ids = {r.retailer_id for r in recipients}
        if pinned is not None and pinned.id is not None:
            recipients = [r for r in recipients if r.retailer_id == pinned.id]
            retailer_ids = {pinned.id}
            retailers[pinned.id] = pinned
            conversation.retailer_id = pinned.id
        turn.recipients = recipients
        turn.deliveries = None
        if conversation.retailer_id is not None:
            retailer_ids.add(conversation.retailer_id)
        missing = retailer_ids - set(retailers)
        if missing:
            rows = (await turn.uow.session.exec(select(Retailer).where(col(Retailer.id).in_(missing)))).all()
            retailers.update({r.id: r for r in rows if r.id is not None})
        turn.retailers = {i: r for i, r in retailers.items() if i in retailer_ids}

    def speak(self, turn: Turn, parsed: Parsed | None, language: str | None = None) -> None:
        """Answer in the language they wrote, else the one this conversation is in, else their profile's."""
        recipient = turn.recipient
        retailer = turn.retailers.get(turn.conversation.retailer_id or 0)
        profile = (
            recipient.locale
            if recipient is not None
            else (retailer.default_locale if retailer is not None else turn.conversation.locale)
        )
        current = normalize_locale(turn.state.get("language") or profile)
        if language:
            current = normalize_locale(language)
        elif (
            parsed is not None
            and parsed.language
            and parsed.intent not in LANGUAGE_NEUTRAL
            and turn.message.payload is None
        ):
            current = normalize_locale(parsed.language)
        if parsed is not None or language:
            turn.state["language"] = current
            turn.conversation.locale = current
        turn.speaker = Speaker(current, turn.message.channel)

    async def deliveries(self, turn: Turn) -> list[Delivery]:
        """The sender's open and recent deliveries, soonest first; one query per turn."""
        if turn.deliveries is None:
            turn.deliveries = await identity.deliveries_of(
                turn.uow, [r.id for r in turn.recipients if r.id is not None], turn.now.date()
            )
        return turn.deliveries

    async def talked_about(self, turn: Turn) -> Delivery | None:
        """The delivery this conversation is about, once it is known."""
        if turn.conversation.delivery_id is None:
            return None
        for known in await self.deliveries(turn):
            if known.id == turn.conversation.delivery_id:
                return known
        return await turn.uow.session.get(Delivery, turn.conversation.delivery_id)

    @staticmethod
    def timezone(turn: Turn, delivery: Delivery | None) -> str:
        """The time zone of the delivery talked about, else of the sender's retailer."""
        if delivery is not None:
            return delivery.timezone
        for retailer in turn.retailers.values():
            return retailer.timezone
        return DEFAULT_TIMEZONE

    async def parse(self, turn: Turn) -> Parsed:
        message = turn.message
        if message.payload is not None:
            return self.from_payload(turn, message.payload)
        text = message.text.strip()
        if not text:
            return Parsed("unknown")
        delivery = await self.talked_about(turn)
        timezone = self.timezone(turn, delivery)
        try:
            # "at 3pm" is on the delivery's day, not today
            understood = self._understand(
                text[:1000],
                locale=turn.speaker.locale,
                now=turn.now,
                timezone=timezone,
                default_day=delivery.day if delivery is not None else None,
            )
        except Exception as exc:  # a reader bug must not leave the recipient without an answer
            log.error("understanding_failed", conversation_id=turn.conversation.id, error=type(exc).__name__)
            return Parsed("unknown")
        parsed = Parsed.of(understood)
        if parsed.intent == "choose_option" and parsed.option is not None:
            offered = turn.state.get("options") or []
            if 1 <= parsed.option <= len(offered):
                return self.from_payload(turn, str(offered[parsed.option - 1]["payload"]))
        return parsed

    def from_payload(self, turn: Turn, payload: str) -> Parsed:
        if payload in MENU_INTENTS:
            return Parsed(MENU_INTENTS[payload])
        if payload.startswith("lang:") and payload[5:] in SUPPORTED:
            return Parsed("change_language", target_language=payload[5:])
        if payload == CONTACT_PAYLOAD:  # "1" after the share-your-number prompt: that is a keyboard button
            return Parsed("identify")
        if payload in (turn.state.get("offers") or {}):
            return Parsed("choose", choice=payload)
        return Parsed("stale")

    # --- what they asked -------------------------------------------------------------------------

    async def dispatch(self, turn: Turn, parsed: Parsed) -> None:
        state, conversation = turn.state, turn.conversation
        intent = parsed.intent
        awaiting = state.pop("awaiting", None)
        if intent != "unknown":
            conversation.misunderstood = 0

        if intent in ("human", "personal_data"):
            await self.ask_for_person(turn, parsed)
            return
        if intent == "identify":
            self.unlinked(turn)
            return
        if intent in ("stop", "start", "help"):  # said in a sentence ("please stop texting me")
            await self.keyword(turn, Keyword(intent), None)
            return
        if intent == "change_language":
            if parsed.target_language:
                self.change_language(turn, parsed.target_language)
            else:
                turn.say(
                    turn._("Which language would you like?"),
                    [turn.option(name, f"lang:{code}") for code, name in LANGUAGE_NAMES.items()],
                    kind="language.ask",
                )
            return
        if intent == "thanks":
            turn.say(turn._("You're welcome! Write here anytime."), kind="thanks")
            return
        if intent == "goodbye":
            state.pop("pending", None)
            turn.say(turn._("Goodbye! Write here anytime if you need anything."), kind="goodbye")
            return
        if intent == "choose" and parsed.choice and parsed.choice.split(":")[0] in ("ret", "dlv"):
            await self.chosen_identity(turn, parsed.choice)
            return
        if awaiting == "instructions" and turn.message.payload is None and intent not in ("no", "stale"):
            parsed = Parsed("instructions", instructions=turn.message.text.strip())
            intent = parsed.intent
        unlinked = not turn.recipients and not identity.phone_channels(turn.message.channel)
        if unlinked and (awaiting == "verify" or parsed.tracking or parsed.postal_code):
            await self.verify(turn, parsed)
            return

        if intent in ("unknown", "choose_option", "stale"):
            await self.not_understood(turn, parsed)
            return

        delivery = await self.focus(turn, parsed)
        if delivery is None:
            return
        await self.act(turn, delivery, parsed)

    async def act(self, turn: Turn, delivery: Delivery, parsed: Parsed) -> None:
        state, intent = turn.state, parsed.intent
        pending = state.get("pending")
        if pending is not None and pending.get("delivery_id") != delivery.id:
            pending = None
        if intent in ("yes", "no"):
            state.pop("pending", None)
            offered = turn.previous_options()
            offers = [option.payload for option, data in offered if data is not None]
            if pending is None and intent == "yes" and len(offers) == 1:
                await self.chosen_offer(turn, delivery, offers[0])  # "yes" to the one time offered
            elif pending is None and intent == "yes" and offers:
                # "yes" to "which of these?": ask which one rather than drop what was offered
                turn.say(
                    turn._("Which one? Please reply with a number from 1 to %(count)s.", count=len(offered)),
                    offered,
                    kind="clarify",
                )
            elif pending is None:
                text = (
                    turn._("OK. Anything else I can do?")
                    if intent == "no"
                    else turn._("What would you like to do?")
                )
                turn.say(text, changes.menu(turn, delivery), kind="menu")
            elif intent == "no":
                turn.say(
                    turn._("OK, nothing changed. Anything else?"), changes.menu(turn, delivery), kind="menu"
                )
            elif changes.pending_expired(turn, pending):
                turn.say(
                    turn._("Sorry, that offer has expired. Let's look again."),
                    changes.menu(turn, delivery),
                    kind="expired",
                )
            else:
                await changes.confirm(turn, delivery, pending)
            return
        state.pop("pending", None)
        if intent == "reschedule" and self.crew_times_offered(turn) and parsed.has_time:
            # "saturday after 2" just after the crew's times: a time for the crew, not a new delivery time
            parsed, intent = parsed.but(intent="white_glove"), "white_glove"
        if intent == "choose" and parsed.choice:
            await self.chosen_offer(turn, delivery, parsed.choice)
        elif intent == "where_is_parcel":
            await changes.status(turn, delivery)
        elif intent == "reschedule":
            await changes.reschedule(turn, delivery, parsed)
        elif intent == "redirect_pickup":
            await changes.redirect(turn, delivery)
        elif intent == "white_glove":
            await changes.white_glove(turn, delivery, parsed)
        elif intent == "cancel_white_glove":
            if delivery.white_glove and not delivery.setup_booked_through_doorstep:
                await self.ask_for_person(turn, parsed)  # sold with the order: the retailer's call
            else:
                await changes.call_off_white_glove(turn, delivery)
        elif intent == "instructions":
            await changes.instructions(turn, delivery, parsed.instructions)
        elif intent == "notify_me":
            await changes.when_we_write(turn, delivery)
        elif intent == "greeting":
            if turn.conversation.status == ConversationStatus.needs_person:
                # "hello? anyone there?" while waiting for a person: not a new conversation
                turn.say(
                    turn._(
                        "A person on our team has already been asked and will answer here soon. "
                        "Meanwhile, I can still help:"
                    ),
                    kind="handoff.waiting",
                )
            else:
                self.greet(turn)
            await changes.status(turn, delivery)
        else:
            await self.not_understood(turn, parsed)

    @staticmethod
    def crew_times_offered(turn: Turn) -> bool:
        """The last turn offered in-home setup slots (and nothing else)."""
        payloads = [str(o["payload"]) for o in turn.state.get("options") or []]
        return bool(payloads) and all(p.startswith("wg:") for p in payloads)

    async def chosen_offer(self, turn: Turn, delivery: Delivery, choice: str) -> None:
        data = (turn.state.get("offers") or {}).get(choice) or {}
        kind = choice.split(":")[0]
        if kind == "win":
            await changes.confirm_window(
                turn, delivery, datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"])
            )
        elif kind == "wg":
            await changes.confirm_white_glove(
                turn, delivery, datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"])
            )
        elif kind == "pp":
            await changes.confirm_pickup(turn, delivery, data)

    # --- small talk, language, a person ----------------------------------------------------------

    def brand(self, turn: Turn) -> str:
        chosen = turn.retailers.get(turn.conversation.retailer_id or 0)
        retailers = [chosen] if chosen is not None else list(turn.retailers.values())
        names = sorted({r.brand_name or r.name for r in retailers})
        return ", ".join(names) if names else "Doorstep"

    def greet(self, turn: Turn) -> None:
        recipient = turn.recipient
        name = recipient.name.split(" ")[0] if recipient is not None and recipient.name else ""
        text = turn._("Hi %(name)s!", name=name) if name else turn._("Hi!")
        turn.say(
            text + " " + turn._("I'm the delivery assistant of %(brand)s.", brand=self.brand(turn)),
            kind="greeting",
        )

    def change_language(self, turn: Turn, target: str) -> None:
        locale = normalize_locale(target)
        for recipient in turn.recipients:
            recipient.locale = locale
            turn.uow.session.add(recipient)
        self.speak(turn, None, language=locale)
        turn.say(turn._("OK, I'll write in English from now on."), kind="language")

    async def ask_for_person(self, turn: Turn, parsed: Parsed, *, attachment: bool = False) -> None:
        """Queue for a person, tied first to the retailer the sender is a recipient of, so its agents see it.

        One retailer among the sender's deliveries (or, with none, among their recipient rows): tied at
        once. Several: asked which one first, as for any other request, and queued with the one chosen.
        A picture or file sent without words comes here too: the bot cannot look at it, a person can
        (the console shows it).
        """
        conversation = turn.conversation
        if conversation.retailer_id is None and turn.recipients:
            deliveries = await self.deliveries(turn)
            retailer_ids = sorted(
                {d.retailer_id for d in deliveries} or {r.retailer_id for r in turn.recipients}
            )
            if len(retailer_ids) > 1:
                turn.state["deferred"] = parsed.as_state()
                self.ask_retailer(turn, retailer_ids)
                return
            self.tie(turn, retailer_ids[0], deliveries)
        if attachment:
            self.attachment_to_person(turn)
        else:
            self.person(turn, parsed.intent)

    def tie(self, turn: Turn, retailer_id: int, deliveries: list[Delivery]) -> None:
        """The conversation belongs to this retailer, its recipient row and its one open delivery."""
        conversation = turn.conversation
        conversation.retailer_id = retailer_id
        mine = [r for r in turn.recipients if r.retailer_id == retailer_id]
        if len(mine) == 1:
            conversation.recipient_id = mine[0].id
        open_ones = [
            d for d in deliveries if d.retailer_id == retailer_id and d.status in identity.OPEN_STATUSES
        ]
        if conversation.delivery_id is None and len(open_ones) == 1:
            conversation.delivery_id = open_ones[0].id

    def person(self, turn: Turn, intent: str = "human") -> None:
        turn.state.pop("pending", None)
        about_data = intent == "personal_data"
        if request_person(turn.uow, turn.conversation, intent if about_data else "asked", turn.now):
            text = (
                turn._(
                    "Your request about your personal data goes to a person on our team: they can show "
                    "you what we keep about you or erase it. They'll answer here as soon as they can."
                )
                if about_data
                else turn._(
                    "OK, I'm passing you to a person on our team. They'll answer here as soon as they can."
                )
            )
        else:
            text = turn._("A person on our team has already been asked and will answer here soon.")
        turn.say(text, kind="handoff")

    def attachment_to_person(self, turn: Turn) -> None:
        turn.state.pop("pending", None)
        kinds = {a.content_type.split("/")[0] for a in turn.message.attachments}
        if request_person(turn.uow, turn.conversation, "attachment", turn.now):
            text = (
                turn._(
                    "Thanks, I've got your picture. I can't look at pictures myself, so I'm passing it to a "
                    "person on our team. They'll answer here as soon as they can."
                )
                if kinds == {"image"}
                else turn._(
                    "Thanks, I've got your voice message. I can't listen to it myself, so I'm passing it to "
                    "a person on our team. They'll answer here as soon as they can."
                )
                if kinds == {"audio"}
                else turn._(
                    "Thanks, I've got your file. I can't open files myself, so I'm passing it to a person "
                    "on our team. They'll answer here as soon as they can."
                )
            )
        else:
            text = turn._(
                "Thanks, I've got it. A person on our team has already been asked and will see it here."
            )
        turn.say(text, kind="handoff")

    async def not_understood(self, turn: Turn, parsed: Parsed) -> None:
        conversation = turn.conversation
        if parsed.intent == "choose_option" and parsed.option is not None and turn.state.get("options"):
            count = len(turn.state["options"])
            turn.say(
                turn._("Please reply with a number from 1 to %(count)s.", count=count),
                turn.previous_options(),
                kind="clarify",
            )
            return
        if parsed.intent == "stale":
            delivery = await self.focus(turn, parsed, ask=False)
            turn.say(
                turn._("Sorry, that choice is no longer available. Here's what I can do:"),
                changes.menu(turn, delivery),
                kind="clarify",
            )
            return
        conversation.misunderstood += 1
        pending = turn.state.get("pending")
        if pending is not None:
            turn.say(
                turn._("Sorry, I didn't get that. Please reply YES or NO."),
                changes.yes_no(turn),
                kind="clarify",
            )
            return
        if not turn.recipients and conversation.misunderstood < 2:
            self.unlinked(turn)
            return
        offered = turn.previous_options()
        if conversation.misunderstood < 2 and any(data is not None for _, data in offered):
            # a list of times or points is on the table: keep it rather than fall back to the menu
            turn.say(
                turn._(
                    "Sorry, I didn't get that. Which one? Please reply with a number from 1 to %(count)s.",
                    count=len(offered),
                ),
                offered,
                kind="clarify",
            )
            return
        delivery = await self.focus(turn, parsed, ask=False)
        if conversation.misunderstood >= 2:
            turn.say(
                turn._("Sorry, I still don't understand. Would you like to talk to a person?"),
                [
                    turn.option(turn._("Talk to a person"), "menu:person"),
                    turn.option(turn._("Change the time"), "menu:reschedule"),
                    turn.option(turn._("Pickup point"), "menu:pickup"),
                ],
                kind="clarify.person",
            )
            return
        turn.say(
            turn._("Sorry, I didn't understand. I can help with:"),
            changes.menu(turn, delivery),
            kind="clarify",
        )

    # --- carrier keywords ------------------------------------------------------------------------

    async def keyword(self, turn: Turn, keyword: Keyword, language: str | None) -> None:
        if language:
            self.speak(turn, None, language=language)
        brand = self.brand(turn)
        channel = turn.message.channel
        ids = tuple(r.id for r in turn.recipients if r.id is not None)
        if keyword == Keyword.stop:
            for recipient in turn.recipients:
                set_opt_out(recipient, channel, True, turn.now)
                turn.uow.session.add(recipient)
            turn.state.pop("pending", None)
            turn.uow.record(
                RecipientOptedOut(turn.conversation.id or 0, turn.conversation.retailer_id, str(channel), ids)
            )
            turn.say(
                turn._(
                    "You're unsubscribed: %(brand)s won't send you any more messages here. "
                    "Reply START to resume.",
                    brand=brand,
                ),
                kind="optout",
            )
        elif keyword == Keyword.start:
            for recipient in turn.recipients:
                set_opt_out(recipient, channel, False, turn.now)
                turn.uow.session.add(recipient)
            turn.uow.record(
                RecipientOptedIn(turn.conversation.id or 0, turn.conversation.retailer_id, str(channel), ids)
            )
            turn.say(
                turn._(
                    "You're subscribed again: %(brand)s will keep you posted here about your deliveries. "
                    "Reply STOP to stop.",
                    brand=brand,
                ),
                kind="optin",
            )
        else:
            turn.say(
                turn._(
                    "%(brand)s delivery assistant: write here to check or change your delivery, or to reach "
                    "a person. Reply STOP to stop messages, START to resume.",
                    brand=brand,
                ),
                kind="help",
            )

    # --- which recipient, which retailer, which delivery -----------------------------------------

    async def focus(self, turn: Turn, parsed: Parsed, *, ask: bool = True) -> Delivery | None:
        """The delivery this conversation is about; asks (when `ask`) if that is not clear yet."""
        conversation = turn.conversation
        if not turn.recipients:
            if ask:
                self.defer(turn, parsed)
                self.unlinked(turn)
            return None
        deliveries = await self.deliveries(turn)
        if parsed.tracking and parsed.intent not in KEEPS_ITS_CODES:
            named = _tracking_key(parsed.tracking)
            own = next((d for d in deliveries if _tracking_key(d.tracking) == named), None)
            if own is not None:
                return self.take(turn, own)
            if ask:  # never act on another parcel than the one named; say nothing of the one named
                turn.say(
                    turn._(
                        "Sorry, I can't find the delivery %(tracking)s among yours. Please check the "
                        "number; a person on our team can also help.",
                        tracking=parsed.tracking,
                    ),
                    [turn.option(turn._("Talk to a person"), "menu:person")],
                    kind="tracking_not_theirs",
                )
                return None
        current = next((d for d in deliveries if d.id == conversation.delivery_id), None)
        if current is not None:
            turn.delivery = current
            return current
        retailer_ids = sorted({d.retailer_id for d in deliveries})
        if len(retailer_ids) > 1:
            if conversation.retailer_id in retailer_ids:
                deliveries = [d for d in deliveries if d.retailer_id == conversation.retailer_id]
            else:
                if ask:
                    self.defer(turn, parsed)
                    self.ask_retailer(turn, retailer_ids)
                return None
        candidates = [d for d in deliveries if d.status in identity.OPEN_STATUSES] or deliveries
        if not candidates:
            if ask:
                turn.say(
                    turn._("I don't see any upcoming delivery for you right now."),
                    [turn.option(turn._("Talk to a person"), "menu:person")],
                    kind="no_delivery",
                )
            return None
        if len(candidates) > 1:
            if ask:
                self.defer(turn, parsed)
                self.ask_delivery(turn, candidates)
            return None
        return self.take(turn, candidates[0])

    def take(self, turn: Turn, delivery: Delivery) -> Delivery:
        conversation = turn.conversation
        conversation.delivery_id = delivery.id
        conversation.retailer_id = delivery.retailer_id
        conversation.recipient_id = delivery.recipient_id
        turn.delivery = delivery
        return delivery

    def defer(self, turn: Turn, parsed: Parsed) -> None:
        if parsed.intent in DEFERRABLE:
            turn.state["deferred"] = parsed.as_state()

    def ask_retailer(self, turn: Turn, retailer_ids: list[int]) -> None:
        options = []
        for retailer_id in retailer_ids:
            retailer = turn.retailers.get(retailer_id)
            label = (retailer.brand_name or retailer.name) if retailer else str(retailer_id)
            options.append(turn.option(label, f"ret:{retailer_id}", {"retailer_id": retailer_id}))
        turn.say(
            turn._("You have deliveries from several stores. Which one is this about?"),
            options,
            kind="ask.retailer",
        )

    def ask_delivery(self, turn: Turn, deliveries: list[Delivery]) -> None:
        options = []
        for delivery in deliveries[:5]:
            label = f"{delivery.tracking} · {turn.speaker.day(delivery.day, delivery.timezone)}"
            options.append(turn.option(label, f"dlv:{delivery.id}", {"delivery_id": delivery.id}))
        turn.say(
            turn._("You have several deliveries. Which one is this about?"), options, kind="ask.delivery"
        )

    async def chosen_identity(self, turn: Turn, choice: str) -> None:
        data = (turn.state.get("offers") or {}).get(choice) or {}
        conversation = turn.conversation
        if "retailer_id" in data:
            conversation.retailer_id = int(data["retailer_id"])
            conversation.delivery_id = None
        elif "delivery_id" in data:
            conversation.delivery_id = int(data["delivery_id"])
        deferred = turn.state.pop("deferred", None)
        parsed = Parsed.from_state(deferred) if deferred else Parsed("where_is_parcel")
        if parsed.intent in ("human", "personal_data"):
            if conversation.retailer_id is not None:
                deliveries = await self.deliveries(turn)
                self.tie(turn, conversation.retailer_id, deliveries)
            self.speak(turn, None, language=turn.state.get("language"))
            self.person(turn, parsed.intent)
            return
        delivery = await self.focus(turn, parsed)
        if delivery is not None:
            self.speak(turn, None, language=turn.state.get("language"))
            await self.act(turn, delivery, parsed)

    def unlinked(self, turn: Turn) -> None:
        channel = turn.message.channel
        if identity.phone_channels(channel):
            turn.say(
                turn._(
                    "Sorry, I can't find a delivery for this phone number. A person on our team can help."
                ),
                [turn.option(turn._("Talk to a person"), "menu:person")],
                kind="unknown_sender",
            )
            return
        turn.state["awaiting"] = "verify"
        if channel.value == "telegram":
            turn.say(
                turn._(
                    "To find your delivery, share your phone number with the button below, "
                    "or send your tracking number and postal code."
                ),
                [turn.option(turn._("Share my phone number"), CONTACT_PAYLOAD)],
                kind="ask.identity",
                request_contact=True,
            )
            return
        turn.say(
            turn._("To find your delivery, send your tracking number and postal code."), kind="ask.identity"
        )

    async def verify(self, turn: Turn, parsed: Parsed) -> None:
        """Tracking number AND postal code, from one message or two; a few tries only."""
        state = turn.state
        attempts = int(state.get("verify_attempts", 0))
        if attempts >= MAX_VERIFY_ATTEMPTS:
            turn.say(
                turn._("Sorry, I can't look up more deliveries here. A person on our team can help."),
                [turn.option(turn._("Talk to a person"), "menu:person")],
                kind="verify.locked",
            )
            return
        given = dict(state.get("verify") or {})
        if parsed.tracking:
            given["tracking"] = parsed.tracking
        if parsed.postal_code:
            given["postal_code"] = parsed.postal_code
        state["verify"] = given
        if not given.get("tracking") or not given.get("postal_code"):
            state["awaiting"] = "verify"
            if not given:
                turn.conversation.misunderstood += 1
                if turn.conversation.misunderstood >= 2:
                    turn.say(
                        turn._("Sorry, I still don't understand. Would you like to talk to a person?"),
                        [turn.option(turn._("Talk to a person"), "menu:person")],
                        kind="clarify.person",
                    )
                    return
            if given.get("tracking"):
                text = turn._("Thanks. What is the postal code of the delivery address?")
            elif given.get("postal_code"):
                text = turn._("Thanks. What is your tracking number?")
            else:
                text = turn._("To find your delivery, send your tracking number and postal code.")
            turn.say(text, kind="ask.identity")
            return
        state.pop("verify", None)
        sender = sender_key(str(turn.message.channel), turn.message.sender)
        # a sender over the limit gets the answer of a wrong pair, right pair or not: guessing teaches nothing
        blocked = self._guesses is not None and await self._guesses.blocked(sender)
        delivery = (
            None
            if blocked
            else await identity.find_by_tracking_and_postal_code(
                turn.uow, given["tracking"], given["postal_code"], turn.conversation.retailer_id
            )
        )
        if delivery is None or delivery.recipient_id is None:
            if self._guesses is not None and not blocked:
                await self._guesses.record_failure(sender)
            state["verify_attempts"] = attempts + 1
            state["awaiting"] = "verify"
            turn.say(
                turn._(
                    "Sorry, I couldn't find a delivery with that tracking number and postal code. "
                    "Please check both and send them again."
                ),
                kind="verify.failed",
            )
            return
        state.pop("verify_attempts", None)
        self.take(turn, delivery)
        await self.identify(turn)
        deferred = state.pop("deferred", None)
        follow = Parsed.from_state(deferred) if deferred else Parsed("where_is_parcel")
        turn.say(turn._("Found it, thanks!"), kind="verify.done")
        await self.act(turn, delivery, follow)

    # --- Telegram linking ------------------------------------------------------------------------

    async def telegram_start(self, turn: Turn) -> None:
        token = turn.message.start_token
        if token:
            delivery = await identity.link_by_start_token(turn.uow, token, turn.message.sender)
            if delivery is None:
                turn.say(turn._("Sorry, this link is no longer valid."), kind="link.invalid")
                if not turn.recipients:
                    self.unlinked(turn)
                    return
            else:
                self.take(turn, delivery)
                await self.identify(turn)
                self.speak(turn, None)
        self.greet(turn)
        delivery = await self.focus(turn, Parsed("where_is_parcel"))
        if delivery is not None:
            await changes.status(turn, delivery)

    async def telegram_contact(self, turn: Turn) -> None:
        phone = turn.message.contact_phone or ""
        recipients = await identity.link_by_contact(turn.uow, phone, turn.message.sender)
        if not recipients:
            turn.say(
                turn._(
                    "Sorry, I can't find a delivery for this phone number. A person on our team can help."
                ),
                [turn.option(turn._("Talk to a person"), "menu:person")],
                kind="unknown_sender",
            )
            return
        await self.identify(turn)
        self.speak(turn, None)
        turn.say(turn._("Thanks, your phone number is linked."), kind="link.done")
        deferred = turn.state.pop("deferred", None)
        parsed = Parsed.from_state(deferred) if deferred else Parsed("where_is_parcel")
        delivery = await self.focus(turn, parsed)
        if delivery is not None:
            await self.act(turn, delivery, parsed)
