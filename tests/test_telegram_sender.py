"""Telegram out: the outbox sender through the real aiogram client against the strict fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from channels.base import PermanentSendError, TransientSendError
from channels.ratelimit import RateLimited, RateLimiter
from channels.telegram_bot import TelegramSender, build_bot, telegram_limits
from channels.telegram_format import REQUEST_CONTACT_PAYLOAD, format_html, parse_start_token, render
from core.config import Settings
from core.models import Channel, OutboxMessage
from tests import telegram_support
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.telegram_support import BOT_TOKEN, CHAT_ID

fake_api = telegram_support.fake_api


@pytest.fixture
async def sender(fake_api: FakeTelegramAPI) -> AsyncIterator[TelegramSender]:
    settings = Settings(
        telegram_api_url=fake_api.base_url,
        telegram_bot_token=BOT_TOKEN,  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    bot = build_bot(settings)
    yield TelegramSender(bot)
    await bot.session.close()


def outbox(body: str = "Your parcel arrives Thursday.", options=(), to: str = str(CHAT_ID)) -> OutboxMessage:
    return OutboxMessage(
        id=1, channel=Channel.telegram, to_address=to, body=body, options=list(options), idempotency_key="k"
    )


OPTIONS = [
    {"label": "Reschedule", "payload": "reschedule"},
    {"label": "Pickup point", "payload": "pickup"},
    {"label": "Talk to a person, please", "payload": "agent"},
]


class TestSendingReplies:
    async def test_options_become_an_inline_keyboard_with_the_payloads_as_callback_data(
        self, sender, fake_api
    ):
        result = await sender.send(outbox(options=OPTIONS))
        [call] = fake_api.calls_to("sendMessage")
        assert call.params["chat_id"] == CHAT_ID
        assert call.params["parse_mode"] == "HTML"
        keyboard = call.params["reply_markup"]["inline_keyboard"]
        assert keyboard == [
            [
                {"text": "Reschedule", "callback_data": "reschedule"},
                {"text": "Pickup point", "callback_data": "pickup"},
            ],
            [{"text": "Talk to a person, please", "callback_data": "agent"}],
        ]
        assert result.provider_id == f"{CHAT_ID}:1"
        assert fake_api.rejected == []

    async def test_text_with_html_characters_is_escaped_and_lightly_formatted(self, sender, fake_api):
        await sender.send(outbox("Parcel MH2611250007: **Thu 2–4 PM** <door> & <b>not bold</b>"))
        [call] = fake_api.calls_to("sendMessage")
        assert call.params["text"] == (
            "Parcel <code>MH2611250007</code>: <b>Thu 2–4 PM</b> "
            "&lt;door&gt; &amp; &lt;b&gt;not bold&lt;/b&gt;"
        )
        assert fake_api.rejected == []

    async def test_a_contact_request_becomes_a_one_time_reply_keyboard(self, sender, fake_api):
        options = [{"label": "📱 Share my number", "payload": REQUEST_CONTACT_PAYLOAD}]
        await sender.send(outbox("To find your parcel, share your number.", options))
        [call] = fake_api.calls_to("sendMessage")
        assert call.params["reply_markup"] == {
            "keyboard": [[{"text": "📱 Share my number", "request_contact": True}]],
            "resize_keyboard": True,
            "one_time_keyboard": True,
        }

    async def test_a_message_without_options_has_no_keyboard(self, sender, fake_api):
        await sender.send(outbox("Delivered. Thank you!"))
        assert "reply_markup" not in fake_api.calls_to("sendMessage")[0].params


class TestSendFailures:
    async def test_a_5xx_is_transient(self, sender, fake_api):
        fake_api.fail_next(status=502)
        with pytest.raises(TransientSendError) as caught:
            await sender.send(outbox())
        assert caught.value.retry_after is None
        await sender.send(outbox())  # the retry goes through
        assert len(fake_api.calls_to("sendMessage")) == 1

    async def test_a_429_is_transient_with_the_retry_after_telegram_gave(self, sender, fake_api):
        fake_api.rate_limit_next(retry_after=7)
        with pytest.raises(TransientSendError) as caught:
            await sender.send(outbox())
        assert caught.value.retry_after == 7

    async def test_after_a_429_the_chat_waits_its_turn_without_calling_telegram(self, sender, fake_api):
        fake_api.rate_limit_next(retry_after=30)
        with pytest.raises(TransientSendError):
            await sender.send(outbox())
        with pytest.raises(RateLimited) as caught:
            await sender.send(outbox())
        assert 29 < caught.value.wait <= 30
        assert fake_api.calls_to("sendMessage") == []
        await sender.send(outbox(to="700100201"))  # other chats go on
        assert len(fake_api.calls_to("sendMessage")) == 1

    async def test_a_blocked_bot_is_a_permanent_failure(self, sender, fake_api):
        fake_api.blocked_chats.add(CHAT_ID)
        with pytest.raises(PermanentSendError, match="blocked"):
            await sender.send(outbox())

    async def test_the_network_being_down_is_transient(self, sender, fake_api):
        await fake_api.stop()
        with pytest.raises(TransientSendError):
            await sender.send(outbox())

    async def test_a_payload_too_long_for_callback_data_is_permanent_and_never_sent(self, sender, fake_api):
        with pytest.raises(PermanentSendError, match="64 bytes"):
            await sender.send(outbox(options=[{"label": "x", "payload": "é" * 33}]))
        assert fake_api.calls == []

    async def test_an_address_that_is_not_a_chat_id_is_permanent(self, sender):
        with pytest.raises(PermanentSendError):
            await sender.send(outbox(to="+15145550100"))


class TestRateLimits:
    def test_one_message_per_second_per_chat(self):
        now = [100.0]
        limiter = RateLimiter(clock=lambda: now[0])
        assert limiter.try_acquire(telegram_limits(outbox())) == 0
        assert limiter.try_acquire(telegram_limits(outbox())) == pytest.approx(1.0)
        assert limiter.try_acquire(telegram_limits(outbox(to="42"))) == 0
        now[0] += 1.0
        assert limiter.try_acquire(telegram_limits(outbox())) == 0

    def test_about_thirty_messages_per_second_overall(self):
        now = [100.0]
        limiter = RateLimiter(clock=lambda: now[0])
        waits = [limiter.try_acquire(telegram_limits(outbox(to=str(chat)))) for chat in range(31)]
        assert waits[:30] == [0] * 30
        assert waits[30] == pytest.approx(1 / 30)


class TestRendering:
    def test_short_labels_share_rows_and_long_ones_get_their_own(self):
        rendering = render("Pick one", OPTIONS)
        assert [[b.text for b in row] for row in rendering.inline_keyboard] == [
            ["Reschedule", "Pickup point"],
            ["Talk to a person, please"],
        ]

    def test_with_a_contact_request_other_options_become_numbered_lines(self):
        options = [{"label": "Share my number", "payload": REQUEST_CONTACT_PAYLOAD}, OPTIONS[2]]
        rendering = render("Who are you?", options)
        assert rendering.contact_button == "Share my number"
        assert rendering.inline_keyboard == []
        assert rendering.html == "Who are you?\n2. Talk to a person, please"

    def test_html_is_escaped_even_inside_bold_markers(self):
        assert format_html("**<i>**") == "<b>&lt;i&gt;</b>"

    def test_start_tokens_follow_telegrams_deep_link_alphabet(self):
        assert parse_start_token("/start abc_DEF-09") == "abc_DEF-09"
        assert parse_start_token("/start@DoorstepDemoBot abc") == "abc"
        assert parse_start_token("/start a b") is None
        assert parse_start_token("/started abc") is None


class TestTheFakeBotApi:
    """The fake refuses what the official spec refuses, so the client's calls are checked for real."""

    async def test_an_unknown_method_answers_404(self, fake_api):
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{fake_api.base_url}/bot{BOT_TOKEN}/sendTelepathy", data={"chat_id": "1"}
            )
        assert response.status_code == 404
        assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}

    async def test_an_unknown_field_answers_400_in_the_bot_api_shape(self, fake_api):
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{fake_api.base_url}/bot{BOT_TOKEN}/sendMessage",
                data={"chat_id": "1", "text": "x", "colour": "red"},
            )
        body = response.json()
        assert (response.status_code, body["ok"], body["error_code"]) == (400, False, 400)
        assert "colour" in body["description"]

    async def test_a_missing_required_field_answers_400(self, fake_api):
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{fake_api.base_url}/bot{BOT_TOKEN}/sendMessage", json={"chat_id": 1})
        assert response.status_code == 400
        assert "'text'" in response.json()["description"]

    async def test_unknown_fields_inside_a_keyboard_are_refused(self, fake_api):
        markup = '{"inline_keyboard": [[{"text": "a", "callback_data": "a", "colour": "red"}]]}'
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{fake_api.base_url}/bot{BOT_TOKEN}/sendMessage",
                data={"chat_id": "1", "text": "x", "reply_markup": markup},
            )
        assert response.status_code == 400
        assert "colour" in response.json()["description"]

    async def test_unbalanced_html_is_refused_like_telegram_does(self, fake_api):
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{fake_api.base_url}/bot{BOT_TOKEN}/sendMessage",
                data={"chat_id": "1", "text": "<b>x", "parse_mode": "HTML"},
            )
        assert response.status_code == 400

    async def test_a_wrong_token_answers_401(self, fake_api):
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{fake_api.base_url}/bot1:wrong/getMe")
        assert response.status_code == 401
