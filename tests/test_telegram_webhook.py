"""Telegram in: the webhook checks its secret, feeds aiogram, and hands the engine neutral messages."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from httpx import AsyncClient
from pydantic import SecretStr

from app import create_app
from bot.messages import InboundMessage
from channels.telegram_bot import run_polling, set_webhook
from core.config import ROOT, Settings
from core.context import AppContext
from core.models import Channel
from tests import telegram_support
from tests.fakes.recording_engine import RecordingEngine
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.telegram_support import (
    CHAT_ID,
    WEBHOOK_SECRET,
    callback_update,
    contact_update,
    message_update,
    signed,
)

fake_api = telegram_support.fake_api
settings = telegram_support.settings


@pytest.fixture
async def engine(ctx: AppContext, client: AsyncClient) -> RecordingEngine:
    recording = RecordingEngine(ctx)
    ctx.components["engine"] = recording
    return recording


class TestTheWebhookSecret:
    async def test_an_update_without_the_secret_header_is_refused_with_403(self, client, engine):
        response = await client.post("/webhooks/telegram", json=message_update())
        assert response.status_code == 403
        assert engine.received == []

    async def test_an_update_with_a_wrong_secret_is_refused_with_403(self, client, engine):
        response = await client.post("/webhooks/telegram", json=message_update(), headers=signed("guess"))
        assert response.status_code == 403
        assert engine.received == []

    async def test_a_secret_that_only_shares_a_prefix_is_refused(self, client, engine):
        headers = signed(WEBHOOK_SECRET[:-1])
        assert (
            await client.post("/webhooks/telegram", json=message_update(), headers=headers)
        ).status_code == 403

    async def test_an_update_with_the_secret_is_accepted(self, client, engine):
        response = await client.post("/webhooks/telegram", json=message_update(), headers=signed())
        assert response.status_code == 200
        assert len(engine.received) == 1


class TestMalformedUpdates:
    async def test_a_body_that_is_not_json_answers_400(self, client, engine):
        response = await client.post("/webhooks/telegram", content=b"{not json", headers=signed())
        assert response.status_code == 400
        assert engine.received == []

    async def test_an_update_without_update_id_answers_400(self, client, engine):
        update = message_update()
        del update["update_id"]
        assert (await client.post("/webhooks/telegram", json=update, headers=signed())).status_code == 400

    async def test_an_update_whose_message_lacks_its_chat_answers_400(self, client, engine):
        update = message_update()
        del update["message"]["chat"]
        assert (await client.post("/webhooks/telegram", json=update, headers=signed())).status_code == 400


class TestTextMessages:
    async def test_a_text_becomes_an_inbound_message_keyed_by_the_update_id(self, client, engine):
        update = message_update("Where is my parcel?", update_id=812_345)
        await client.post("/webhooks/telegram", json=update, headers=signed())
        [inbound] = engine.received
        assert inbound == InboundMessage(
            channel=Channel.telegram,
            sender=str(CHAT_ID),
            text="Where is my parcel?",
            provider_id="812345",
            received_at=inbound.received_at,
            sender_name="Camille Tremblay",
        )
        assert inbound.received_at is not None and inbound.received_at.tzinfo is not None

    async def test_the_same_update_delivered_twice_is_handled_once(self, client, engine):
        update = message_update("hello", update_id=900_001)
        first = await client.post("/webhooks/telegram", json=update, headers=signed())
        again = await client.post("/webhooks/telegram", json=update, headers=signed())
        assert (first.status_code, again.status_code) == (200, 200)
        assert len(engine.received) == 1

    async def test_update_kinds_the_bot_does_not_use_are_acknowledged_and_ignored(self, client, engine):
        edited = message_update("typo fixed")
        edited["edited_message"] = edited.pop("message")
        assert (await client.post("/webhooks/telegram", json=edited, headers=signed())).status_code == 200
        assert engine.received == []

    async def test_messages_in_groups_are_ignored(self, client, engine):
        update = message_update("hi all", chat_id=-100123, chat_type="supergroup")
        assert (await client.post("/webhooks/telegram", json=update, headers=signed())).status_code == 200
        assert engine.received == []

    async def test_an_engine_failure_answers_500_so_telegram_retries(self, client, ctx, engine):
        class Broken:
            async def handle(self, message):
                raise RuntimeError("database down")

        ctx.components["engine"] = Broken()
        update = message_update("hello", update_id=900_002)
        with pytest.raises(RuntimeError):
            await client.post("/webhooks/telegram", json=update, headers=signed())
        ctx.components["engine"] = engine
        assert (await client.post("/webhooks/telegram", json=update, headers=signed())).status_code == 200
        assert [m.provider_id for m in engine.received] == ["900002"]


class TestDeepLinksAndContacts:
    async def test_start_with_a_token_carries_the_token(self, client, engine):
        await client.post("/webhooks/telegram", json=message_update("/start tok_ABC-123"), headers=signed())
        assert engine.received[0].start_token == "tok_ABC-123"

    async def test_a_malformed_start_token_is_dropped(self, client, engine):
        await client.post("/webhooks/telegram", json=message_update("/start <script>"), headers=signed())
        assert engine.received[0].start_token is None
        await client.post("/webhooks/telegram", json=message_update("/start " + "a" * 65), headers=signed())
        assert engine.received[1].start_token is None

    async def test_a_plain_start_has_no_token(self, client, engine):
        await client.post("/webhooks/telegram", json=message_update("/start"), headers=signed())
        assert engine.received[0].start_token is None
        assert engine.received[0].text == "/start"

    async def test_the_senders_own_contact_is_a_vouched_phone_number(self, client, engine):
        await client.post("/webhooks/telegram", json=contact_update("15145551007", CHAT_ID), headers=signed())
        assert engine.received[0].contact_phone == "15145551007"

    async def test_someone_elses_contact_is_not_taken_as_the_senders_phone(self, client, engine):
        await client.post("/webhooks/telegram", json=contact_update("15145559999", 111), headers=signed())
        await client.post("/webhooks/telegram", json=contact_update("15145559998", None), headers=signed())
        assert [m.contact_phone for m in engine.received] == [None, None]


class TestButtons:
    async def test_a_pressed_button_sends_its_payload_and_the_query_is_answered(
        self, client, engine, fake_api: FakeTelegramAPI
    ):
        update = callback_update("reschedule", update_id=777_001)
        assert (await client.post("/webhooks/telegram", json=update, headers=signed())).status_code == 200
        [inbound] = engine.received
        assert (inbound.payload, inbound.sender, inbound.provider_id) == (
            "reschedule",
            str(CHAT_ID),
            "777001",
        )
        [answer] = fake_api.calls_to("answerCallbackQuery")
        assert answer.params == {"callback_query_id": update["callback_query"]["id"]}

    async def test_the_query_is_answered_even_when_the_engine_fails(self, client, ctx, fake_api):
        class Broken:
            async def handle(self, message):
                raise RuntimeError("boom")

        ctx.components["engine"] = Broken()
        with pytest.raises(RuntimeError):
            await client.post("/webhooks/telegram", json=callback_update("pickup"), headers=signed())
        assert len(fake_api.calls_to("answerCallbackQuery")) == 1

    async def test_a_retried_button_press_is_answered_again_but_handled_once(self, client, engine, fake_api):
        update = callback_update("agent", update_id=777_002)
        await client.post("/webhooks/telegram", json=update, headers=signed())
        fake_api.fail_next(status=400)  # Telegram: "query is too old"
        assert (await client.post("/webhooks/telegram", json=update, headers=signed())).status_code == 200
        assert len(engine.received) == 1


class TestPolling:
    async def test_polling_feeds_the_same_handlers_after_deleting_the_webhook(
        self, settings, ctx: AppContext, fake_api: FakeTelegramAPI
    ):
        app = create_app(settings, ctx=ctx)
        engine = RecordingEngine(ctx)
        task = asyncio.create_task(run_polling(app, handle_signals=False, polling_timeout=1))
        try:
            for _ in range(200):
                if "telegram" in ctx.components:
                    break
                await asyncio.sleep(0.05)
            ctx.components["engine"] = engine  # after the app's own starters ran
            fake_api.push_update(message_update("hello from polling", update_id=123_456))
            for _ in range(100):
                if engine.received:
                    break
                await asyncio.sleep(0.05)
        finally:
            await ctx.components["telegram"].dispatcher.stop_polling()
            await asyncio.wait_for(task, 10)
        assert [m.text for m in engine.received] == ["hello from polling"]
        assert fake_api.calls[0].method == "deleteWebhook"
        assert fake_api.calls_to("getUpdates")


class TestRegisteringTheWebhook:
    async def test_set_webhook_points_telegram_at_the_public_url_with_the_secret(
        self, settings, fake_api: FakeTelegramAPI
    ):
        url = await set_webhook(settings.model_copy(update={"public_url": "https://doorstep.example/"}))
        assert url == "https://doorstep.example/webhooks/telegram"
        [call] = fake_api.calls_to("setWebhook")
        assert call.params == {
            "url": url,
            "secret_token": WEBHOOK_SECRET,
            "allowed_updates": ["message", "callback_query"],
        }


class TestAMalformedToken:
    async def test_the_app_starts_without_telegram_and_the_webhook_says_so(self, settings, ctx):
        from httpx import ASGITransport

        broken = settings.model_copy(update={"telegram_bot_token": SecretStr("not-a-token")})
        app = create_app(broken, ctx=ctx)
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
        ):
            assert (await http.get("/healthz")).status_code == 200
            response = await http.post("/webhooks/telegram", json=message_update(), headers=signed())
            assert response.status_code == 503
            assert Channel.telegram not in ctx.components.get("senders", {})


class TestTheChannelOff:
    """Production without TELEGRAM_BOT_TOKEN: no bot, no aiogram in memory, a webhook that says so."""

    def test_production_without_a_token_has_no_telegram_and_needs_no_webhook_secret(self):
        production = Settings(
            environment="production",
            secret_key=SecretStr("a-real-secret"),
            twilio_auth_token=SecretStr("a-real-token"),
            _env_file=None,  # type: ignore[call-arg]
        )
        assert production.telegram_token is None

    def test_production_with_a_token_still_requires_the_webhook_secret(self):
        with pytest.raises(ValueError, match="TELEGRAM_WEBHOOK_SECRET"):
            Settings(
                environment="production",
                secret_key=SecretStr("a-real-secret"),
                twilio_auth_token=SecretStr("a-real-token"),
                telegram_bot_token=SecretStr("123:abc"),
                _env_file=None,  # type: ignore[call-arg]
            )

    def test_development_runs_the_channel_on_a_placeholder_token(self):
        assert Settings(_env_file=None).telegram_token is not None  # type: ignore[call-arg]

    def test_a_process_without_telegram_never_imports_aiogram(self, tmp_path):
        script = """
import asyncio, json, sys
from httpx import ASGITransport, AsyncClient
from app import create_app

async def main():
    app = create_app()
    async with app.router.lifespan_context(app), AsyncClient(
        transport=ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        response = await http.post(
            "/webhooks/telegram", json={"update_id": 1},
            headers={"X-Telegram-Bot-Api-Secret-Token": "a-webhook-secret"},
        )
    print(json.dumps({"status": response.status_code, "aiogram": "aiogram" in sys.modules}))

asyncio.run(main())
"""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TELEGRAM_", "DATABASE_", "REDIS_"))
        }
        env.update(
            ENVIRONMENT="production",
            DATABASE_URL=f"sqlite:///{tmp_path / 'off.db'}",
            SECRET_KEY="a-real-secret",
            TWILIO_AUTH_TOKEN="a-real-token",
            TELEGRAM_WEBHOOK_SECRET="a-webhook-secret",
            SCHEDULER_ENABLED="false",
            OUTBOX_ENABLED="false",
            LOG_LEVEL="WARNING",
        )
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == {"status": 503, "aiogram": False}
