"""Forged and replayed webhooks, through the whole app with the real conversation engine, and what
the logs show while a message goes all the way (signed webhook, stored, understood, answered, sent,
status callback): never the phone number, never the message text.
"""

from __future__ import annotations

import json

import pytest
import structlog
from sqlmodel import col, func, select

from channels.outbox_worker import drain
from channels.twilio import MESSAGES_PATH, STATUS_PATH
from core.models import Direction, InboundReceipt, Message, OutboxMessage
from tests.fakes.twilio_api import FakeTwilioApi
from tests.plans import small_plan
from tests.twilio_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    inbound_form,
    post_signed,
    sign,
    twilio_settings,
)

SENDER = "+14165550101"  # Recipient 1 of the small plan
SECRET_TEXT = "leave it behind the blue recycling bin please"


@pytest.fixture
async def fake_twilio():
    fake = FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def settings(database_url, fake_twilio):
    return twilio_settings(database_url, api_url=fake_twilio.base_url, log_level="DEBUG")


@pytest.fixture
def rendered_logs():
    """Every log line as written (after redaction): a tap just before the JSON renderer."""
    lines: list[str] = []
    processors = structlog.get_config()["processors"]

    def tap(_logger, _method, event_dict):
        lines.append(json.dumps(event_dict, default=str))
        return event_dict

    processors.insert(len(processors) - 1, tap)
    yield lines
    processors.remove(tap)


async def inbound_count(ctx) -> int:
    async with ctx.uow() as uow:
        return (
            await uow.session.exec(
                select(func.count()).select_from(Message).where(Message.direction == Direction.inbound)
            )
        ).one()


async def outbox_count(ctx) -> int:
    async with ctx.uow() as uow:
        return (await uow.session.exec(select(func.count()).select_from(OutboxMessage))).one()


class TestForgedTwilioWebhooks:
    async def test_every_forgery_is_refused_and_nothing_is_stored(self, ctx, client, acme):
        await client.post("/api/v1/plans", json=small_plan(), headers=acme.headers)
        form = inbound_form("where is my parcel", sender=SENDER, sid="SM" + "f" * 32)
        forgeries = {
            "unsigned": {},
            "wrong token": {"X-Twilio-Signature": sign(MESSAGES_PATH, form, token="not-our-token")},
            "another URL": {"X-Twilio-Signature": sign(STATUS_PATH, form)},
            "garbage": {"X-Twilio-Signature": "AAAA"},
        }
        for name, headers in forgeries.items():
            response = await client.post(MESSAGES_PATH, data=form, headers=headers)
            assert response.status_code == 403, name
        tampered = {**form, "Body": "cancel my delivery"}
        response = await client.post(
            MESSAGES_PATH, data=tampered, headers={"X-Twilio-Signature": sign(MESSAGES_PATH, form)}
        )
        assert response.status_code == 403, "a body changed after signing"
        assert await inbound_count(ctx) == 0 and await outbox_count(ctx) == 0

    async def test_a_replayed_webhook_is_stored_once_and_answered_once(self, ctx, client, acme):
        await client.post("/api/v1/plans", json=small_plan(), headers=acme.headers)
        form = inbound_form("where is my parcel", sender=SENDER, sid="SM" + "e" * 32)
        for _ in range(3):
            response = await post_signed(client, MESSAGES_PATH, form)
            assert response.status_code == 200
        assert await inbound_count(ctx) == 1
        assert await outbox_count(ctx) == 1
        async with ctx.uow() as uow:
            receipts = (await uow.session.exec(select(InboundReceipt))).all()
            assert [r.external_id for r in receipts] == ["SM" + "e" * 32]


class TestForgedTelegramWebhooks:
    async def test_a_wrong_or_missing_secret_token_is_refused(self, client):
        update = {
            "update_id": 1,
            "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}},
        }
        assert (await client.post("/webhooks/telegram", json=update)).status_code == 403
        headers = {"X-Telegram-Bot-Api-Secret-Token": "guess"}
        assert (await client.post("/webhooks/telegram", json=update, headers=headers)).status_code == 403


class TestLogsKeepSecrets:
    async def test_the_whole_path_logs_neither_the_phone_number_nor_the_text(
        self, ctx, client, acme, fake_twilio, rendered_logs
    ):
        await client.post("/api/v1/plans", json=small_plan(), headers=acme.headers)
        for i, text in enumerate(
            ("where is my parcel", f"instructions: {SECRET_TEXT}", "gibberish " + SECRET_TEXT)
        ):
            form = inbound_form(text, sender=SENDER, sid=f"SM{i:032d}")
            assert (await post_signed(client, MESSAGES_PATH, form)).status_code == 200
        report = await drain(ctx)
        assert report.sent >= 3 and len(fake_twilio.messages) >= 3
        sent = fake_twilio.messages[0]
        callback = {**fake_twilio.callback_form(sent, "delivered")}
        path = sent.status_callback.removeprefix(PUBLIC_URL)
        response = await client.post(
            path, data=callback, headers={"X-Twilio-Signature": sign(path, callback)}
        )
        assert response.status_code in (200, 204)
        async with ctx.uow() as uow:
            assert (
                await uow.session.exec(
                    select(func.count()).select_from(Message).where(col(Message.text).contains("recycling"))
                )
            ).one() >= 1, "the text was stored, as it should"

        logs = "\n".join(rendered_logs)
        assert len(rendered_logs) >= 5, "the path logged something"
        assert SENDER not in logs and SENDER.removeprefix("+1") not in logs
        for word in ("recycling", "blue", "where is my parcel", "gibberish"):
            assert word not in logs, f"message text ({word!r}) in the logs"
        for reply in fake_twilio.messages:
            first_line = reply.body.splitlines()[0]
            assert first_line not in logs, "a reply's text in the logs"
        assert any('"request_id"' in line for line in rendered_logs), "log lines carry the request id"


class TestRedaction:
    async def test_phone_numbers_in_free_text_nested_values_and_tracebacks_are_scrubbed(
        self, client, rendered_logs
    ):
        log = structlog.get_logger("doorstep.test")
        log.warning("lookup", detail="called +14165550199 and (416) 555-0198", day="2026-12-03")
        log.warning("nested", problems=[{"loc": ["phone"], "msg": "+14165550197 is invalid"}], body="secret")
        try:
            raise ValueError("cannot text 4165550196")
        except ValueError:
            log.exception("failed")
        logs = "\n".join(rendered_logs)
        for number in ("4165550199", "555-0198", "4165550197", "4165550196", "secret"):
            assert number not in logs
        assert "2026-12-03" in logs, "dates are not phone numbers"

    async def test_url_encoded_numbers_are_scrubbed_and_twilios_request_dumps_stay_quiet(
        self, client, rendered_logs
    ):
        """Twilio's client logs each request's URL and query at INFO: the "did this reach Twilio?"
        look-up carries To and From there, URL-encoded."""
        import logging

        log = structlog.get_logger("doorstep.test")
        log.warning(
            "GET https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
            "?To=%2B14165550195&From=whatsapp%3A%2B15145550194&DateSent%3E=2026-12-03"
        )
        logs = "\n".join(rendered_logs)
        for number in ("4165550195", "5145550194"):
            assert number not in logs
        assert "2026-12-03" in logs
        for name in ("twilio.http_client", "twilio.async_http_client"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO)
