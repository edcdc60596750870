"""The Twilio webhooks: signatures, inbound messages handed to the engine once, status callbacks."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlmodel import select

from channels.twilio import MESSAGES_PATH, STATUS_PATH
from core.config import Settings
from core.context import AppContext
from core.models import Channel, InboundReceipt, OutboxMessage, OutboxStatus, utcnow
from core.outbox import enqueue
from tests.fakes.recording_engine import RecordingEngine
from tests.twilio_support import (
    PUBLIC_URL,
    RECIPIENT,
    SHARED_SMS,
    SHARED_WHATSAPP,
    inbound_form,
    post_signed,
    sign,
    twilio_settings,
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return twilio_settings(database_url)


@pytest.fixture
async def engine(ctx: AppContext, client: AsyncClient) -> RecordingEngine:
    """Set after the app started, so whatever engine the app wires is replaced by the recording one."""
    recording = RecordingEngine(ctx)
    ctx.components["engine"] = recording
    return recording


class TestSignature:
    async def test_a_signed_sms_is_answered_with_empty_twiml(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        response = await post_signed(client, MESSAGES_PATH, inbound_form())
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
        assert response.text.endswith("<Response/>")
        assert len(engine.received) == 1

    async def test_a_post_without_signature_is_refused_with_403(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        response = await client.post(MESSAGES_PATH, data=inbound_form())
        assert response.status_code == 403
        assert engine.received == []

    async def test_a_signature_made_with_another_token_is_refused(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        response = await post_signed(client, MESSAGES_PATH, inbound_form(), token="not-our-token")
        assert response.status_code == 403
        assert engine.received == []

    async def test_a_tampered_body_is_refused(self, client: AsyncClient, engine: RecordingEngine):
        form = inbound_form(body="1")
        headers = {"X-Twilio-Signature": sign(MESSAGES_PATH, form)}
        response = await client.post(MESSAGES_PATH, data={**form, "Body": "2"}, headers=headers)
        assert response.status_code == 403
        assert engine.received == []

    async def test_the_signature_is_checked_against_the_public_url_not_the_host_called(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        form = inbound_form()
        from twilio.request_validator import RequestValidator

        from tests.twilio_support import AUTH_TOKEN

        signed_for_host = RequestValidator(AUTH_TOKEN).compute_signature(
            "http://testserver" + MESSAGES_PATH, form
        )
        response = await client.post(
            MESSAGES_PATH, data=form, headers={"X-Twilio-Signature": signed_for_host}
        )
        assert response.status_code == 403
        assert PUBLIC_URL != "http://testserver"

    async def test_status_callbacks_need_a_signature_too(self, client: AsyncClient):
        response = await client.post(
            STATUS_PATH, data={"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
        )
        assert response.status_code == 403


class TestInbound:
    async def test_an_sms_becomes_an_inbound_message_for_the_engine(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        await post_signed(client, MESSAGES_PATH, inbound_form(body="Tomorrow after 3pm", sid="SM" + "b" * 32))
        (message,) = engine.received
        assert message.channel == Channel.sms
        assert message.sender == RECIPIENT
        assert message.text == "Tomorrow after 3pm"
        assert message.provider_id == "SM" + "b" * 32
        assert message.service_address == ""  # the shared number: the sender's phone decides
        assert message.received_at is not None

    async def test_whatsapp_loses_its_prefix_and_keeps_its_channel_and_button_payload(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        form = inbound_form(
            body="Reschedule",
            sender=f"whatsapp:{RECIPIENT}",
            to=f"whatsapp:{SHARED_WHATSAPP}",
            ButtonPayload="reschedule",
            ButtonText="Reschedule",
            ProfileName="Ada",
        )
        await post_signed(client, MESSAGES_PATH, form)
        (message,) = engine.received
        assert message.channel == Channel.whatsapp
        assert message.sender == RECIPIENT
        assert message.payload == "reschedule"
        assert message.sender_name == "Ada"
        assert message.service_address == ""

    async def test_a_retailers_own_number_is_passed_on_as_the_service_address(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        await post_signed(client, MESSAGES_PATH, inbound_form(to="+15145550199"))
        assert engine.received[0].service_address == "+15145550199"

    async def test_the_reply_is_written_to_the_outbox_not_the_twiml(
        self, client: AsyncClient, ctx: AppContext, engine: RecordingEngine
    ):
        response = await post_signed(client, MESSAGES_PATH, inbound_form())
        assert "<Message" not in response.text
        async with ctx.uow() as uow:
            rows = (await uow.session.exec(select(OutboxMessage))).all()
        assert [(r.channel, r.to_address, r.status) for r in rows] == [
            (Channel.sms, RECIPIENT, OutboxStatus.pending)
        ]

    async def test_a_form_without_message_sid_is_a_bad_request(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        form = inbound_form()
        del form["MessageSid"], form["SmsMessageSid"]
        response = await post_signed(client, MESSAGES_PATH, form)
        assert response.status_code == 400
        assert engine.received == []

    async def test_an_alphanumeric_sender_gets_an_empty_answer_and_reaches_nobody(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        response = await post_signed(client, MESSAGES_PATH, inbound_form(sender="ACME"))
        assert response.status_code == 200
        assert engine.received == []

    async def test_without_a_running_engine_the_webhook_says_so_and_twilio_retries(
        self, client: AsyncClient, ctx: AppContext
    ):
        ctx.components.pop("engine", None)
        response = await post_signed(client, MESSAGES_PATH, inbound_form())
        assert response.status_code == 503


class TestDuplicates:
    async def test_a_retried_webhook_is_processed_once(
        self, client: AsyncClient, ctx: AppContext, engine: RecordingEngine
    ):
        form = inbound_form(sid="SM" + "c" * 32)
        first = await post_signed(client, MESSAGES_PATH, form)
        second = await post_signed(client, MESSAGES_PATH, form)
        assert first.status_code == second.status_code == 200
        assert len(engine.received) == 1
        async with ctx.uow() as uow:
            assert len((await uow.session.exec(select(OutboxMessage))).all()) == 1

    async def test_concurrent_retries_reach_the_engine_once(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        form = inbound_form(sid="SM" + "d" * 32)
        responses = await asyncio.gather(*(post_signed(client, MESSAGES_PATH, form) for _ in range(5)))
        assert {r.status_code for r in responses} == {200}
        assert len(engine.received) == 1

    async def test_a_retry_reaching_another_process_is_stopped_by_the_engine(
        self, client: AsyncClient, ctx: AppContext, engine: RecordingEngine
    ):
        """Another process has no memory of the first delivery: the provider id in the database decides."""
        async with ctx.uow() as uow:
            uow.session.add(InboundReceipt(provider="sms", external_id="SM" + "e" * 32))
            await uow.commit()
        await post_signed(client, MESSAGES_PATH, inbound_form(sid="SM" + "e" * 32))
        assert engine.received == []

    async def test_two_different_messages_are_both_processed(
        self, client: AsyncClient, engine: RecordingEngine
    ):
        await post_signed(client, MESSAGES_PATH, inbound_form(sid="SM" + "1" * 32))
        await post_signed(client, MESSAGES_PATH, inbound_form(sid="SM" + "2" * 32))
        assert len(engine.received) == 2


async def sent_row(
    ctx: AppContext, sid: str = "SM" + "f" * 32, status: OutboxStatus = OutboxStatus.queued
) -> int:
    async with ctx.uow() as uow:
        row = await enqueue(
            uow.session, channel=Channel.sms, to_address=RECIPIENT, body="hi", idempotency_key=sid
        )
        row.provider_id = sid
        row.status = status
        await uow.commit()
        return row.id or 0


async def status_of(ctx: AppContext, row_id: int) -> OutboxMessage:
    async with ctx.uow() as uow:
        row = await uow.session.get(OutboxMessage, row_id)
        assert row is not None
        return row


def status_form(status: str, sid: str = "SM" + "f" * 32, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": status, "To": RECIPIENT, "From": SHARED_SMS, **extra}


class TestStatusCallbacks:
    async def test_statuses_move_forward(self, client: AsyncClient, ctx: AppContext):
        row_id = await sent_row(ctx)
        for status, expected in (
            ("sent", OutboxStatus.sent),
            ("delivered", OutboxStatus.delivered),
            ("read", OutboxStatus.read),
        ):
            response = await post_signed(client, STATUS_PATH, status_form(status))
            assert response.status_code == 204
            assert (await status_of(ctx, row_id)).status == expected

    async def test_a_late_sent_after_delivered_is_ignored(self, client: AsyncClient, ctx: AppContext):
        row_id = await sent_row(ctx)
        await post_signed(client, STATUS_PATH, status_form("delivered"))
        await post_signed(client, STATUS_PATH, status_form("sent"))
        await post_signed(client, STATUS_PATH, status_form("queued"))
        assert (await status_of(ctx, row_id)).status == OutboxStatus.delivered

    async def test_failed_is_final_and_keeps_the_error_code(self, client: AsyncClient, ctx: AppContext):
        row_id = await sent_row(ctx)
        await post_signed(client, STATUS_PATH, status_form("failed", ErrorCode="30003"))
        await post_signed(client, STATUS_PATH, status_form("delivered"))
        row = await status_of(ctx, row_id)
        assert row.status == OutboxStatus.failed
        assert "30003" in row.last_error

    async def test_undelivered_after_sent_is_recorded(self, client: AsyncClient, ctx: AppContext):
        row_id = await sent_row(ctx, status=OutboxStatus.sent)
        await post_signed(client, STATUS_PATH, status_form("undelivered", ErrorCode="30005"))
        assert (await status_of(ctx, row_id)).status == OutboxStatus.undelivered

    async def test_a_callback_for_an_unknown_message_is_acknowledged_and_ignored(self, client: AsyncClient):
        response = await post_signed(client, STATUS_PATH, status_form("delivered", sid="SM" + "9" * 32))
        assert response.status_code == 204

    async def test_an_unknown_status_is_a_bad_request(self, client: AsyncClient, ctx: AppContext):
        await sent_row(ctx)
        response = await post_signed(client, STATUS_PATH, status_form("teleported"))
        assert response.status_code == 400

    async def test_a_callback_that_beats_the_workers_record_finds_its_row_by_outbox_id(
        self, client: AsyncClient, ctx: AppContext
    ):
        async with ctx.uow() as uow:
            row = await enqueue(
                uow.session, channel=Channel.sms, to_address=RECIPIENT, body="x", idempotency_key="k"
            )
            row.status = OutboxStatus.sending
            row.claimed_until = utcnow() + timedelta(seconds=60)
            await uow.commit()
            row_id = row.id
        path = f"{STATUS_PATH}?outbox={row_id}"
        response = await post_signed(client, path, status_form("sent", sid="SM" + "7" * 32))
        assert response.status_code == 204
        row = await status_of(ctx, row_id or 0)
        assert (row.status, row.provider_id) == (OutboxStatus.sent, "SM" + "7" * 32)
