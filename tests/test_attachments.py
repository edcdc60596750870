"""Pictures and files recipients send: kept as the channel's reference, answered by a person, shown
to the retailer's agents through the console (which fetches them from the channel's fake API)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from httpx import AsyncClient, Response
from sqlmodel import select
from twilio.request_validator import RequestValidator

from channels.outbox_worker import drain
from channels.twilio import MESSAGES_PATH
from core.config import Settings
from core.context import AppContext
from core.models import Channel, Conversation, ConversationStatus, Message, OutboxMessage, OutgoingFile
from tests.conftest import make_tenant
from tests.console_helpers import add_user, load_small_plan, seed_conversation, sign_in
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.twilio_api import FakeTwilioApi
from tests.telegram_support import BOT_TOKEN, WEBHOOK_SECRET
from tests.twilio_support import ACCOUNT_SID, AUTH_TOKEN, inbound_form, twilio_settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the signature is enough for a content check
PDF = b"%PDF-1.4\n%%EOF\n"
OGG = b"OggS" + b"\x00" * 60
PUBLIC_URL = "http://testserver"


async def post_signed(client: AsyncClient, path: str, form: dict[str, str]) -> Response:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, form)
    return await client.post(path, data=form, headers={"X-Twilio-Signature": signature})


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilioApi]:
    fake = FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegramAPI]:
    fake = await FakeTelegramAPI(token=BOT_TOKEN).start()
    yield fake
    await fake.stop()


@pytest.fixture
def settings(database_url: str, fake_twilio: FakeTwilioApi, fake_telegram: FakeTelegramAPI) -> Settings:
    return twilio_settings(
        database_url,
        api_url=fake_twilio.base_url,
        telegram_api_url=fake_telegram.base_url,
        telegram_bot_token=BOT_TOKEN,
        telegram_webhook_secret=WEBHOOK_SECRET,
        public_url=PUBLIC_URL,  # http, so the console's session cookie is kept by the test client
    )


@pytest.fixture
async def acme(ctx: AppContext, client: AsyncClient) -> int:
    tenant = await make_tenant(ctx, "acme")
    await load_small_plan(ctx, tenant.retailer_id, prefix="A")
    await add_user(ctx, "ana@acme.test", ["acme"])
    return tenant.retailer_id


async def ada_sends(
    client: AsyncClient, body: str, *media: tuple[str, str], sid: str = "SM" + "c" * 32
) -> None:
    fields = {f"MediaUrl{i}": url for i, (url, _) in enumerate(media)}
    fields |= {f"MediaContentType{i}": kind for i, (_, kind) in enumerate(media)}
    form = inbound_form(body=body, sid=sid, sender="+14165550401", NumMedia=str(len(media)), **fields)
    response = await post_signed(client, MESSAGES_PATH, form)
    assert response.status_code == 200, response.text


async def the_conversation(ctx: AppContext) -> tuple[Conversation, list[Message], list[str]]:
    async with ctx.uow() as uow:
        conversation = (await uow.session.exec(select(Conversation))).one()
        messages = list((await uow.session.exec(select(Message).order_by(Message.id))).all())
        replies = [o.body for o in (await uow.session.exec(select(OutboxMessage))).all()]
    return conversation, messages, replies


class TestAPictureBySms:
    async def test_a_picture_without_words_goes_to_a_person_and_is_kept_as_twilios_url(
        self, client, ctx, acme, fake_twilio
    ):
        url = fake_twilio.add_media("image/png", PNG)
        await ada_sends(client, "", (url, "image/png"))
        conversation, messages, replies = await the_conversation(ctx)
        assert conversation.status == ConversationStatus.needs_person
        inbound = next(m for m in messages if m.provider_id)
        assert inbound.attachments == [{"content_type": "image/png", "ref": url}]
        assert replies == [
            "Thanks, I've got your picture. I can't look at pictures myself, so I'm passing it to a person"
            " on our team. They'll answer here as soon as they can."
        ]
        assert fake_twilio.requests == []  # nothing is downloaded until an agent opens it

    async def test_the_answer_is_in_the_recipients_language_and_a_second_picture_is_added(
        self, client, ctx, acme, fake_twilio
    ):
        first, second = fake_twilio.add_media("image/jpeg", PNG), fake_twilio.add_media("image/jpeg", PNG)
        form = inbound_form(body="", sid="SM" + "d" * 32, sender="+14165550402", NumMedia="1")
        await post_signed(
            client, MESSAGES_PATH, form | {"MediaUrl0": first, "MediaContentType0": "image/jpeg"}
        )
        form = inbound_form(body="", sid="SM" + "e" * 32, sender="+14165550402", NumMedia="1")
        await post_signed(
            client, MESSAGES_PATH, form | {"MediaUrl0": second, "MediaContentType0": "image/jpeg"}
        )
        _, _, replies = await the_conversation(ctx)
        assert replies[0].startswith("Merci, j'ai bien reçu votre photo.")
        assert (
            replies[1]
            == "Merci, c'est bien reçu. Une personne de notre équipe a déjà été prévenue et le verra ici."
        )

    async def test_a_picture_with_words_is_answered_as_the_words_ask(self, client, ctx, acme, fake_twilio):
        url = fake_twilio.add_media("image/jpeg", PNG)
        await ada_sends(client, "where is my parcel?", (url, "image/jpeg"))
        conversation, messages, replies = await the_conversation(ctx)
        assert conversation.status != ConversationStatus.needs_person
        assert replies[0].startswith("Your parcel A001 is planned for")
        assert next(m for m in messages if m.provider_id).attachments[0]["ref"] == url

    async def test_a_url_that_is_not_twilios_media_is_left_out(self, client, ctx, acme, fake_twilio):
        good = fake_twilio.add_media("image/png", PNG)
        await ada_sends(client, "", ("https://evil.example/x.png", "image/png"), (good, "IMAGE/PNG"))
        _, messages, _ = await the_conversation(ctx)
        assert next(m for m in messages if m.provider_id).attachments == [
            {"content_type": "image/png", "ref": good}
        ]

    @pytest.mark.parametrize("count", ["lots", "-1", "11"])
    async def test_a_malformed_media_count_is_a_bad_request(self, client, acme, count):
        form = inbound_form(body="", NumMedia=count)
        response = await post_signed(client, MESSAGES_PATH, form)
        assert response.status_code == 400 and "NumMedia" in response.text


class TestTheConsole:
    async def test_the_agent_sees_the_picture_fetched_from_twilio_with_the_accounts_credentials(
        self, client, ctx, acme, fake_twilio
    ):
        url = fake_twilio.add_media("image/png", PNG)
        await ada_sends(client, "", (url, "image/png"))
        conversation, messages, _ = await the_conversation(ctx)
        await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{conversation.id}")
        (src,) = re.findall(r'<img src="([^"]+/attachments/[^"]+)"', page.text)
        inbound = next(m for m in messages if m.provider_id)
        assert src == f"/console/conversations/{conversation.id}/messages/{inbound.id}/attachments/0"
        picture = await client.get(src)
        assert picture.status_code == 200 and picture.content == PNG
        assert picture.headers["content-type"] == "image/png"
        assert "sandbox" in picture.headers["content-security-policy"]
        assert "content-disposition" not in picture.headers
        assert AUTH_TOKEN not in page.text and url not in page.text  # the browser sees our URL only

    async def test_a_file_that_is_not_a_picture_is_a_download(self, client, ctx, acme, fake_twilio):
        url = fake_twilio.add_media("application/pdf", PDF)
        await ada_sends(client, "", (url, "application/pdf"))
        conversation, _, replies = await the_conversation(ctx)
        assert replies[0].startswith("Thanks, I've got your file.")
        await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{conversation.id}")
        assert '/attachments/0" alt' not in page.text and "File 1 (application/pdf)" in page.text
        (href,) = re.findall(r'<a href="([^"]+/attachments/0)" class="file" download>', page.text)
        file = await client.get(href)
        assert file.status_code == 200 and file.content == PDF
        assert file.headers["content-disposition"].startswith("attachment;")

    async def test_a_voice_message_is_played_in_the_thread(self, client, ctx, acme, fake_twilio):
        url = fake_twilio.add_media("audio/ogg", OGG)
        await ada_sends(client, "", (url, "audio/ogg"))
        conversation, _, replies = await the_conversation(ctx)
        assert replies[0].startswith("Thanks, I've got your voice message. I can't listen to it myself")
        await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{conversation.id}")
        (src,) = re.findall(r'<audio controls preload="none" src="([^"]+/attachments/0)"', page.text)
        played = await client.get(src)
        assert played.status_code == 200 and played.content == OGG
        assert played.headers["content-type"] == "audio/ogg" and "content-disposition" not in played.headers

    async def test_another_retailers_agent_and_a_wrong_index_get_404(self, client, ctx, acme, fake_twilio):
        await make_tenant(ctx, "globex")
        await add_user(ctx, "gus@globex.test", ["globex"])
        url = fake_twilio.add_media("image/png", PNG)
        await ada_sends(client, "", (url, "image/png"))
        conversation, messages, _ = await the_conversation(ctx)
        inbound = next(m for m in messages if m.provider_id)
        base = f"/console/conversations/{conversation.id}/messages/{inbound.id}/attachments"
        await sign_in(client, "ana@acme.test")
        assert (await client.get(f"{base}/1")).status_code == 404
        reply = next(m for m in messages if not m.provider_id)
        assert (
            await client.get(f"/console/conversations/{conversation.id}/messages/{reply.id}/attachments/0")
        ).status_code == 404
        await sign_in(client, "gus@globex.test")
        assert (await client.get(f"{base}/0")).status_code == 404
        assert fake_twilio.requests == []

    async def test_twilio_failing_gives_a_502_with_the_reason(self, client, ctx, acme, fake_twilio):
        url = fake_twilio.add_media("image/png", PNG)
        await ada_sends(client, "", (url, "image/png"))
        conversation, messages, _ = await the_conversation(ctx)
        inbound = next(m for m in messages if m.provider_id)
        await sign_in(client, "ana@acme.test")
        fake_twilio.fail_next()
        src = f"/console/conversations/{conversation.id}/messages/{inbound.id}/attachments/0"
        failed = await client.get(src)
        assert failed.status_code == 502 and "Twilio answered 500" in failed.json()["detail"]
        assert (await client.get(src)).content == PNG  # and it comes once Twilio is back


class TestTelegram:
    async def test_a_photo_comes_in_by_its_largest_size_and_the_agent_sees_it_through_get_file(
        self, client, ctx, acme, fake_telegram
    ):
        small, large = (
            fake_telegram.add_file(b"small", "photos/s.jpg"),
            fake_telegram.add_file(PNG, "photos/l.jpg"),
        )
        conversation_id = await seed_conversation(ctx, acme, "A001", channel="telegram", texts=())
        async with ctx.uow() as uow:
            conversation = await uow.session.get(Conversation, conversation_id)
            address = conversation.address
        update = {
            "update_id": 910_001,
            "message": {
                "message_id": 77,
                "date": 1_764_000_000,
                "chat": {"id": int(address), "type": "private"},
                "from": {"id": int(address), "is_bot": False, "first_name": "Ada"},
                "caption": "the box is like this",
                "photo": [
                    {"file_id": small, "file_unique_id": "s", "width": 90, "height": 60},
                    {"file_id": large, "file_unique_id": "l", "width": 1280, "height": 960},
                ],
            },
        }
        response = await client.post(
            "/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        )
        assert response.status_code == 200, response.text
        async with ctx.uow() as uow:
            inbound = (await uow.session.exec(select(Message).where(Message.provider_id == "910001"))).one()
        assert inbound.text == "the box is like this"
        assert inbound.attachments == [{"content_type": "image/jpeg", "ref": large}]
        await sign_in(client, "ana@acme.test")
        picture = await client.get(
            f"/console/conversations/{conversation_id}/messages/{inbound.id}/attachments/0"
        )
        assert picture.status_code == 200 and picture.content == PNG
        assert [c.params["file_id"] for c in fake_telegram.calls_to("getFile")] == [large]

    async def test_a_voice_message_comes_in_as_ogg_audio(self, client, ctx, acme, fake_telegram):
        voice = fake_telegram.add_file(OGG, "voice/file_1.oga")
        conversation_id = await seed_conversation(ctx, acme, "A001", channel="telegram", texts=())
        async with ctx.uow() as uow:
            conversation = await uow.session.get(Conversation, conversation_id)
            chat = int(conversation.address)
        update = {
            "update_id": 910_002,
            "message": {
                "message_id": 78,
                "date": 1_764_000_000,
                "chat": {"id": chat, "type": "private"},
                "from": {"id": chat, "is_bot": False, "first_name": "Ada"},
                "voice": {"file_id": voice, "file_unique_id": "v", "duration": 4, "mime_type": "audio/ogg"},
            },
        }
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        assert (await client.post("/webhooks/telegram", json=update, headers=headers)).status_code == 200
        async with ctx.uow() as uow:
            inbound = (await uow.session.exec(select(Message).where(Message.provider_id == "910002"))).one()
        assert inbound.attachments == [{"content_type": "audio/ogg", "ref": voice}]

    async def test_a_file_telegram_no_longer_has_gives_a_502(self, client, ctx, acme, fake_telegram):
        conversation_id = await seed_conversation(ctx, acme, "A001", channel="telegram", texts=())
        async with ctx.uow() as uow:
            message = Message(
                conversation_id=conversation_id,
                channel=Channel.telegram,
                direction="inbound",
                author="recipient",
                attachments=[{"content_type": "image/jpeg", "ref": "AgAC-gone"}],
            )
            uow.session.add(message)
            await uow.commit()
        await sign_in(client, "ana@acme.test")
        gone = await client.get(
            f"/console/conversations/{conversation_id}/messages/{message.id}/attachments/0"
        )
        assert gone.status_code == 502


async def taken_over(
    client: AsyncClient, ctx: AppContext, acme: int, channel: str = "sms"
) -> tuple[int, str]:
    """A conversation Ana (acme's agent) took over: its id and the reply form's token."""
    conversation_id = await seed_conversation(
        ctx, acme, "A002", channel=channel, status="needs_person", texts=("where do I leave it?",)
    )
    signed = await sign_in(client, "ana@acme.test")
    taken = await client.post(
        f"/console/conversations/{conversation_id}/take-over", data={"csrf_token": signed.csrf}
    )
    assert taken.status_code == 303
    page = await client.get(f"/console/conversations/{conversation_id}")
    assert 'type="file" id="reply-file" name="file"' in page.text
    token = re.search(r'name="reply_token" value="([^"]+)"', page.text).group(1)
    return conversation_id, token


async def agent_sends(
    client: AsyncClient, conversation_id: int, token: str, text: str, file: tuple[str, bytes, str]
) -> Response:
    signed_csrf = re.search(
        r'name="csrf_token" value="([^"]+)"',
        (await client.get(f"/console/conversations/{conversation_id}")).text,
    ).group(1)
    return await client.post(
        f"/console/conversations/{conversation_id}/reply",
        data={"text": text, "reply_token": token, "csrf_token": signed_csrf},
        files={"file": file},
    )


async def outbox_statuses(ctx: AppContext) -> list[tuple[str, int, str]]:
    async with ctx.uow() as uow:
        rows = (await uow.session.exec(select(OutboxMessage))).all()
        return [(row.status, row.attempts, row.last_error) for row in rows]


class TestAgentsSendPictures:
    async def test_a_picture_goes_by_mms_and_twilio_fetches_it_from_the_public_url(
        self, client, ctx, acme, fake_twilio
    ):
        conversation_id, token = await taken_over(client, ctx, acme)
        sent = await agent_sends(
            client, conversation_id, token, "Leave it here, please", ("door.png", PNG, "image/png")
        )
        assert sent.status_code == 303, sent.text
        again = await agent_sends(
            client, conversation_id, token, "Leave it here, please", ("door.png", PNG, "image/png")
        )
        assert again.status_code == 303  # the same form twice sends once
        await drain(ctx)
        (mms,) = fake_twilio.messages
        assert mms.body == "Leave it here, please" and mms.to == "+14165550402"
        assert await outbox_statuses(ctx) == [("queued", 1, "")]  # the provider took it at once
        (url,) = mms.form["MediaUrl"]
        assert url.startswith(PUBLIC_URL + "/media/") and len(url.rsplit("/", 1)[1]) >= 40
        page = await client.get(f"/console/conversations/{conversation_id}")
        (src,) = re.findall(r'<img src="([^"]+/attachments/0)" alt="Picture 1 sent"', page.text)
        shown = await client.get(src)
        assert shown.status_code == 200 and shown.content == PNG
        client.cookies.clear()  # as Twilio fetches it: no session
        fetched = await client.get(url.removeprefix(PUBLIC_URL))
        assert fetched.status_code == 200 and fetched.content == PNG
        assert fetched.headers["content-type"] == "image/png"
        assert "sandbox" in fetched.headers["content-security-policy"]
        assert (await client.get("/media/" + "x" * 43)).status_code == 404

    @pytest.mark.parametrize("channel", ["sms", "whatsapp"])
    async def test_a_pdf_alone_goes_without_words_and_is_a_download(
        self, client, ctx, acme, fake_twilio, channel
    ):
        conversation_id, token = await taken_over(client, ctx, acme, channel=channel)
        sent = await agent_sends(client, conversation_id, token, "", ("slip.pdf", PDF, "application/pdf"))
        assert sent.status_code == 303, sent.text
        await drain(ctx)
        (mms,) = fake_twilio.messages
        assert "Body" not in mms.form and len(mms.form["MediaUrl"]) == 1
        assert mms.to == ("whatsapp:+14165550402" if channel == "whatsapp" else "+14165550402")
        fetched = await client.get(mms.form["MediaUrl"][0].removeprefix(PUBLIC_URL))
        assert fetched.content == PDF and fetched.headers["content-disposition"].startswith("attachment;")

    @pytest.mark.parametrize(
        ("file", "reason"),
        [
            (("notes.png", b"just text, named .png", "image/png"), "Only JPEG, PNG or GIF pictures and PDF"),
            (("page.html", b"<html><script>alert(1)</script>", "text/html"), "Only JPEG, PNG or GIF"),
            (("huge.png", PNG + b"\x00" * (5 * 1024 * 1024), "image/png"), "5 MB at most"),
        ],
    )
    async def test_a_file_no_channel_takes_is_refused_with_the_reason(
        self, client, ctx, acme, fake_twilio, file, reason
    ):
        conversation_id, token = await taken_over(client, ctx, acme)
        refused = await agent_sends(client, conversation_id, token, "see this", file)
        assert refused.status_code == 422 and reason in refused.text
        async with ctx.uow() as uow:
            assert (await uow.session.exec(select(OutboxMessage))).all() == []
            assert (await uow.session.exec(select(OutgoingFile))).all() == []

    async def test_after_30_days_the_public_url_is_gone_and_the_agents_still_see_the_file(
        self, client, ctx, acme, fake_twilio
    ):
        conversation_id, token = await taken_over(client, ctx, acme)
        await agent_sends(client, conversation_id, token, "here", ("door.png", PNG, "image/png"))
        async with ctx.uow() as uow:
            kept = (await uow.session.exec(select(OutgoingFile))).one()
            kept.created_at = ctx.clock() - timedelta(days=30, seconds=1)
            uow.session.add(kept)
            message = (await uow.session.exec(select(Message).where(Message.author == "agent"))).one()
            await uow.commit()
        src = f"/console/conversations/{conversation_id}/messages/{message.id}/attachments/0"
        assert (await client.get(src)).content == PNG
        assert (await client.get(f"/media/{kept.token}")).status_code == 404

    async def test_a_note_cannot_carry_a_file(self, client, ctx, acme, fake_twilio):
        conversation_id, token = await taken_over(client, ctx, acme)
        page = await client.get(f"/console/conversations/{conversation_id}")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        refused = await client.post(
            f"/console/conversations/{conversation_id}/reply",
            data={"text": "for the team", "reply_token": token, "csrf_token": csrf, "mode": "note"},
            files={"file": ("door.png", PNG, "image/png")},
        )
        assert refused.status_code == 422 and "A note cannot carry a file" in refused.text
        async with ctx.uow() as uow:
            assert (await uow.session.exec(select(OutgoingFile))).all() == []

    async def test_another_retailers_agent_cannot_see_the_file(self, client, ctx, acme, fake_twilio):
        await make_tenant(ctx, "globex")
        await add_user(ctx, "gus@globex.test", ["globex"])
        conversation_id, token = await taken_over(client, ctx, acme)
        await agent_sends(client, conversation_id, token, "here", ("door.png", PNG, "image/png"))
        async with ctx.uow() as uow:
            message = (await uow.session.exec(select(Message).where(Message.author == "agent"))).one()
        src = f"/console/conversations/{conversation_id}/messages/{message.id}/attachments/0"
        await sign_in(client, "gus@globex.test")
        assert (await client.get(src)).status_code == 404

    async def test_on_telegram_a_picture_goes_by_send_photo_with_the_reply_as_caption(
        self, client, ctx, acme, fake_telegram
    ):
        conversation_id, token = await taken_over(client, ctx, acme, channel="telegram")
        door = ("door.png", PNG, "image/png")
        sent = await agent_sends(client, conversation_id, token, "Your parcel **here**", door)
        assert sent.status_code == 303, sent.text
        await drain(ctx)
        assert not fake_telegram.rejected, fake_telegram.rejected
        (photo,) = fake_telegram.calls_to("sendPhoto")
        assert photo.params["caption"] == "Your parcel <b>here</b>" and photo.params["parse_mode"] == "HTML"
        assert photo.params["photo"].startswith(PUBLIC_URL + "/media/")
        assert (await client.get(photo.params["photo"].removeprefix(PUBLIC_URL))).content == PNG
        assert fake_telegram.calls_to("sendMessage") == []
        assert await outbox_statuses(ctx) == [("queued", 1, "")]  # the provider took it at once

    async def test_on_telegram_a_pdf_goes_by_send_document_and_its_words_must_fit_a_caption(
        self, client, ctx, acme, fake_telegram
    ):
        conversation_id, token = await taken_over(client, ctx, acme, channel="telegram")
        slip = ("slip.pdf", PDF, "application/pdf")
        too_long = await agent_sends(client, conversation_id, token, "x" * 1025, slip)
        assert too_long.status_code == 422
        assert "Too long for a Telegram file&#39;s caption: 1025 characters of 1024." in too_long.text
        sent = await agent_sends(client, conversation_id, token, "The delivery slip", slip)
        assert sent.status_code == 303, sent.text
        await drain(ctx)
        assert not fake_telegram.rejected, fake_telegram.rejected
        (document,) = fake_telegram.calls_to("sendDocument")
        assert document.params["caption"] == "The delivery slip"
        assert (await client.get(document.params["document"].removeprefix(PUBLIC_URL))).content == PDF
        assert fake_telegram.calls_to("sendMessage") == []
        assert await outbox_statuses(ctx) == [("queued", 1, "")]  # the provider took it at once
