"""The web sandbox's API: pick a recipient, chat on channel `web`, see every channel's rendering."""

from __future__ import annotations

import pytest
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app import create_app
from bot.messages import Option, OutboundMessage
from channels.outbox_worker import drain
from channels.sandbox import new_session_id, renderings, sandbox_enabled, session_recipient
from core.config import Settings
from core.context import AppContext
from core.models import Channel, OutboxMessage, OutboxStatus
from core.outbox import enqueue
from scheduling.plans import import_plan
from tests.fakes.recording_engine import RecordingEngine
from tests.plans import small_plan


@pytest.fixture
async def plan(ctx: AppContext, acme) -> None:
    async with ctx.uow() as uow:
        from core.models import Retailer

        retailer = await uow.session.get(Retailer, acme.retailer_id)
        await import_plan(uow, retailer, small_plan())


@pytest.fixture
async def engine(ctx: AppContext, client: AsyncClient) -> RecordingEngine:
    recording = RecordingEngine(ctx)
    ctx.components["engine"] = recording
    return recording


async def first_recipient(client: AsyncClient, q: str = "") -> dict:
    response = await client.get("/sandbox/api/recipients", params={"q": q})
    assert response.status_code == 200
    return response.json()["recipients"][0]


async def open_session(client: AsyncClient, recipient_id: int) -> str:
    response = await client.post("/sandbox/api/sessions", json={"recipient_id": recipient_id})
    assert response.status_code == 201, response.text
    return response.json()["session_id"]


class TestThePage:
    async def test_the_page_and_its_own_script_and_styles_are_served(self, client):
        page = await client.get("/sandbox")
        assert page.status_code == 200
        assert 'src="/sandbox/static/sandbox.js"' in page.text
        assert "http://" not in page.text and "https://" not in page.text  # no CDN
        for asset in ("sandbox.js", "sandbox.css"):
            assert (await client.get(f"/sandbox/static/{asset}")).status_code == 200


class TestListingRecipients:
    async def test_recipients_show_name_locale_retailer_and_tracking_but_no_phone(self, client, plan):
        listing = (await client.get("/sandbox/api/recipients")).json()["recipients"]
        assert len(listing) == 5
        first = listing[0]
        assert set(first) == {"id", "name", "locale", "retailer", "tracking", "deliveries"}
        assert first["retailer"] == {"slug": "acme", "name": "Acme"}
        assert "+1416" not in str(listing)

    async def test_the_search_matches_names_tracking_numbers_and_locales(self, client, plan):
        by_tracking = (await client.get("/sandbox/api/recipients", params={"q": "t003"})).json()["recipients"]
        assert [r["tracking"] for r in by_tracking] == ["T003"]
        by_locale = (await client.get("/sandbox/api/recipients", params={"q": "fr_ca"})).json()["recipients"]
        assert [r["locale"] for r in by_locale] == ["fr_CA"]

    async def test_a_limit_out_of_range_is_refused(self, client):
        assert (await client.get("/sandbox/api/recipients", params={"limit": 0})).status_code == 422


class TestChatting:
    async def test_opening_a_session_links_it_to_the_recipient_in_the_engine(self, client, plan, engine):
        recipient = await first_recipient(client)
        session_id = await open_session(client, recipient["id"])
        assert engine.linked == {session_id: recipient["id"]}

    async def test_a_message_goes_to_the_engine_on_channel_web_and_replies_come_with_renderings(
        self, client, plan, engine
    ):
        recipient = await first_recipient(client)
        session_id = await open_session(client, recipient["id"])
        response = await client.post(
            f"/sandbox/api/sessions/{session_id}/messages",
            json={"text": "Where is my parcel?", "client_id": "abc12345"},
        )
        assert response.status_code == 200, response.text
        [inbound] = engine.received
        assert (inbound.channel, inbound.sender, inbound.text) == (
            Channel.web,
            session_id,
            "Where is my parcel?",
        )
        assert inbound.provider_id == "web-abc12345"
        [reply] = response.json()["replies"]
        assert [o["payload"] for o in reply["options"]] == ["reschedule", "pickup", "agent"]
        sms, whatsapp, telegram = (reply["renderings"][c] for c in ("sms", "whatsapp", "telegram"))
        assert "1" in sms["body"] and sms["segments"] >= 1 and sms["encoding"] in ("GSM-7", "UCS-2")
        assert whatsapp["channel"] == "whatsapp" and whatsapp["kind"] in ("text", "quick_reply")
        assert [[b["callback_data"] for b in row] for row in telegram["inline_keyboard"]] == [
            ["reschedule", "pickup"],
            ["agent"],
        ]
        assert "&lt;between&gt; A &amp; B" in telegram["text"]

    async def test_a_button_press_sends_its_payload(self, client, plan, engine):
        session_id = await open_session(client, (await first_recipient(client))["id"])
        await client.post(
            f"/sandbox/api/sessions/{session_id}/messages", json={"text": "Pickup point", "payload": "pickup"}
        )
        assert engine.received[0].payload == "pickup"

    async def test_a_retried_post_with_the_same_client_id_is_handled_once(self, client, plan, engine):
        session_id = await open_session(client, (await first_recipient(client))["id"])
        for _ in range(2):
            await client.post(
                f"/sandbox/api/sessions/{session_id}/messages", json={"text": "hi", "client_id": "same-id-1"}
            )
        assert len(engine.received) == 1

    async def test_an_empty_message_is_refused_with_a_clear_reason(self, client, plan, engine):
        session_id = await open_session(client, (await first_recipient(client))["id"])
        response = await client.post(f"/sandbox/api/sessions/{session_id}/messages", json={"text": "  "})
        assert response.status_code == 422
        assert "write a message" in response.text

    async def test_a_forged_session_id_is_refused(self, client, plan, engine, settings):
        recipient = await first_recipient(client)
        real = await open_session(client, recipient["id"])
        forged = real.replace(f"sb_{recipient['id']}_", f"sb_{recipient['id'] + 1}_")
        response = await client.post(f"/sandbox/api/sessions/{forged}/messages", json={"text": "hi"})
        assert response.status_code == 404
        assert engine.received == []

    async def test_an_unknown_recipient_cannot_be_picked(self, client, engine):
        assert (await client.post("/sandbox/api/sessions", json={"recipient_id": 999})).status_code == 404

    async def test_without_an_engine_the_sandbox_says_so(self, client, plan, ctx):
        ctx.components.pop("engine", None)
        recipient = await first_recipient(client)
        assert (
            await client.post("/sandbox/api/sessions", json={"recipient_id": recipient["id"]})
        ).status_code == 503


class TestWhatTheRecipientReceived:
    async def test_notifications_on_other_channels_are_listed_with_masked_addresses(
        self, client, ctx, plan, engine
    ):
        recipient = await first_recipient(client)
        session_id = await open_session(client, recipient["id"])
        async with ctx.uow() as uow:
            await enqueue(
                uow.session,
                channel=Channel.sms,
                to_address="+14165550101",
                body="Your parcel arrives tomorrow 9-11.",
                idempotency_key="n1",
                recipient_id=recipient["id"],
            )
            await uow.commit()
        notes = (await client.get(f"/sandbox/api/sessions/{session_id}/notifications")).json()[
            "notifications"
        ]
        assert [(n["channel"], n["status"], n["body"]) for n in notes] == [
            ("sms", "pending", "Your parcel arrives tomorrow 9-11.")
        ]
        assert "5550101" not in notes[0]["to"]

    async def test_web_replies_are_delivered_by_the_web_sender(self, client, ctx, plan, engine):
        recipient = await first_recipient(client)
        session_id = await open_session(client, recipient["id"])
        await client.post(f"/sandbox/api/sessions/{session_id}/messages", json={"text": "hi"})
        report = await drain(ctx)
        assert report.sent == 1
        async with ctx.uow() as uow:
            from sqlmodel import select

            [row] = (
                await uow.session.exec(select(OutboxMessage).where(OutboxMessage.channel == Channel.web))
            ).all()
            assert row.status == OutboxStatus.delivered
            assert row.provider_id == f"web-{row.id}"


class TestWhereTheSandboxRuns:
    def test_on_in_development_and_off_in_production_unless_turned_on(self):
        assert sandbox_enabled(Settings(environment="development", _env_file=None))
        production = {"environment": "production", "secret_key": "x" * 32, "twilio_auth_token": "t" * 32}
        production["telegram_webhook_secret"] = "s" * 32
        assert not sandbox_enabled(Settings(**production, _env_file=None))
        assert sandbox_enabled(Settings(**production, sandbox_enabled=True, _env_file=None))

    async def test_in_production_the_routes_do_not_exist(self, settings, ctx):
        production = settings.model_copy(
            update={"environment": "production", "secret_key": "x" * 32, "sandbox_enabled": None}
        )
        app = create_app(production, ctx=ctx)
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
        ):
            assert (await http.get("/sandbox")).status_code == 404
            assert (await http.get("/sandbox/api/recipients")).status_code == 404

    async def test_turned_on_in_production_it_shows_only_the_demo_retailers(self, settings, ctx, plan):
        production = settings.model_copy(
            update={"environment": "production", "secret_key": "x" * 32, "sandbox_enabled": True}
        )
        app = create_app(production, ctx=ctx)
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
        ):
            assert (await http.get("/sandbox")).status_code == 200
            assert (await http.get("/sandbox/api/recipients")).json() == {"recipients": []}

    def test_session_ids_are_signed_with_the_secret_key(self, settings):
        session_id = new_session_id(settings, 42)
        assert session_recipient(settings, session_id) == 42
        other = settings.model_copy(update={"secret_key": SecretStr("another-secret")})
        assert session_recipient(other, session_id) is None
        assert session_recipient(settings, "sb_42_nonsense") is None


class TestEngineReplyShapes:
    def test_a_contact_request_renders_a_share_button_on_telegram_only(self):
        from channels.sandbox import renderings

        reply = OutboundMessage(
            "Share your number", (Option("Share my phone number", "share_contact"),), "ask.identity", True
        )
        out = renderings(reply, "en", {})
        assert out["telegram"]["contact_button"] == "Share my phone number"
        assert out["telegram"]["inline_keyboard"] == []


class TestWithTheRealEngine:
    async def test_a_recipient_asks_where_the_parcel_is_and_reschedules_with_a_button(self, client, plan):
        recipient = await first_recipient(client, "T001")
        session_id = await open_session(client, recipient["id"])
        url = f"/sandbox/api/sessions/{session_id}/messages"
        [status_reply] = (await client.post(url, json={"text": "Where is my parcel?"})).json()["replies"]
        assert "T001" in status_reply["text"]
        reschedule = next(o for o in status_reply["options"] if "resched" in o["payload"].lower())
        replies = (
            await client.post(url, json={"text": reschedule["label"], "payload": reschedule["payload"]})
        ).json()
        offered = replies["replies"][-1]["options"]
        assert offered, replies
        transcript = (await client.get(f"/sandbox/api/sessions/{session_id}")).json()["messages"]
        assert [m["direction"] for m in transcript][:2] == ["inbound", "outbound"]
        assert transcript[0]["text"] == "Where is my parcel?"


class TestAgentsAnswersReachTheSandbox:
    async def test_messages_after_an_id_include_what_an_agent_wrote(self, client, ctx, plan, engine):
        from core.models import Author, Conversation, Direction, Message

        session_id = await open_session(client, (await first_recipient(client))["id"])
        async with ctx.uow() as uow:
            conversation = Conversation(channel=Channel.web, address=session_id)
            uow.session.add(conversation)
            await uow.session.flush()
            for author, text in ((Author.recipient, "Talk to a person"), (Author.agent, "Hi, Sam here.")):
                direction = Direction.inbound if author == Author.recipient else Direction.outbound
                uow.session.add(
                    Message(
                        conversation_id=conversation.id,
                        channel=Channel.web,
                        direction=direction,
                        author=author,
                        text=text,
                    )
                )
            await uow.commit()
        everything = (await client.get(f"/sandbox/api/sessions/{session_id}")).json()["messages"]
        assert [(m["author"], m["text"]) for m in everything] == [
            ("recipient", "Talk to a person"),
            ("agent", "Hi, Sam here."),
        ]
        newer = (
            await client.get(f"/sandbox/api/sessions/{session_id}", params={"after": everything[0]["id"]})
        ).json()
        assert [m["text"] for m in newer["messages"]] == ["Hi, Sam here."]

    async def test_a_picture_an_agent_sent_comes_with_the_url_it_is_served_at(
        self, client, ctx, plan, engine
    ):
        from core.models import Author, Conversation, Direction, Message, OutgoingFile

        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
        session_id = await open_session(client, (await first_recipient(client))["id"])
        async with ctx.uow() as uow:
            conversation = Conversation(channel=Channel.web, address=session_id)
            uow.session.add(conversation)
            await uow.session.flush()
            uow.session.add(
                OutgoingFile(
                    token="t" * 43,
                    conversation_id=conversation.id,
                    content_type="image/png",
                    size=len(png),
                    content=png,
                )
            )
            uow.session.add(
                Message(
                    conversation_id=conversation.id,
                    channel=Channel.web,
                    direction=Direction.outbound,
                    author=Author.agent,
                    text="Like this",
                    attachments=[{"content_type": "image/png", "ref": "doorstep:" + "t" * 43}],
                )
            )
            await uow.commit()
        (said,) = (await client.get(f"/sandbox/api/sessions/{session_id}")).json()["messages"]
        assert said["files"] == [{"content_type": "image/png", "url": "/media/" + "t" * 43}]
        assert (await client.get(said["files"][0]["url"])).content == png


class TestTheHomePage:
    async def test_the_root_leads_a_newcomer_to_the_sandbox(self, client):
        response = await client.get("/")
        assert response.status_code in (302, 307) and response.headers["location"] == "/sandbox"


class TestSmsPreviewFollowsTheRetailersEncoding:
    REPLY = OutboundMessage(
        text="¿Cambiamos la dirección de entrega?",
        options=(Option("Sí", "yes"), Option("No", "no")),
    )

    def test_the_sms_preview_is_what_the_sender_sends_in_gsm7(self):
        sms = renderings(self.REPLY, "es", {})["sms"]
        assert sms["body"] == "¿Cambiamos la direccion de entrega?\nResponda 1 para Si\nResponda 2 para No"
        assert (sms["encoding"], sms["segments"]) == ("GSM-7", 1)

    def test_a_retailer_that_keeps_exact_accents_sees_them_in_ucs2(self):
        sms = renderings(self.REPLY, "es", {"sms_smart_encoding": False})["sms"]
        assert "dirección" in sms["body"] and "Responda 1 para Sí" in sms["body"]
        assert sms["encoding"] == "UCS-2"
