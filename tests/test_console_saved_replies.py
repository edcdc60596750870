"""Saved replies: a retailer admin writes them, agents find them in the reply box filled in for the
conversation; checked as message templates; each retailer sees only its own."""

from __future__ import annotations

import html
import re

from sqlmodel import select

from core.models import SavedReply
from tests.console_helpers import (
    cheap_password_hashing,  # noqa: F401 - autouse fixture
    seed_conversation,
    sign_in,
)

GREETING = "Hi {{ first_name }}, {{ agent_name }} here. Your parcel {{ tracking }} comes {{ window }}."


async def save(client, csrf: str, retailer_id: int, title: str, body: str):
    return await client.post(
        "/console/saved-replies",
        data={"csrf_token": csrf, "retailer_id": str(retailer_id), "title": title, "body": body},
    )


async def options_in_reply_box(client, conversation_id: int) -> dict[str, str]:
    page = await client.get(f"/console/conversations/{conversation_id}")
    if 'id="saved-reply"' not in page.text:
        return {}
    select = page.text.split('id="saved-reply"', 1)[1].split("</select>", 1)[0]
    found = re.findall(r'<option value="([^"]*)">([^<]+)</option>', select)
    return {html.unescape(title): html.unescape(text) for text, title in found if text}


class TestSavedReplies:
    async def test_an_admin_saves_one_and_the_agent_finds_it_filled_in_for_the_conversation(
        self, client, ctx, teams
    ):
        acme, _ = teams
        rita = await sign_in(client, "rita@acme.test")
        assert (await save(client, rita.csrf, acme.retailer_id, "Greeting", GREETING)).status_code == 303
        listing = await client.get("/console/saved-replies")
        assert "Greeting" in listing.text and "{{ first_name }}" in html.unescape(listing.text)
        conversation_id = await seed_conversation(ctx, acme.retailer_id, "A001", status="needs_person")
        signed = await sign_in(client, "ana@acme.test")
        await client.post(
            f"/console/conversations/{conversation_id}/take-over", data={"csrf_token": signed.csrf}
        )
        offered = await options_in_reply_box(client, conversation_id)
        assert offered == {
            "Greeting": "Hi Recipient, ana here. Your parcel A001 comes Thu Dec 3, 9:00-11:00 AM."
        }

    async def test_the_text_is_a_sandboxed_template_and_a_bad_one_is_refused_with_the_reason(
        self, client, ctx, teams
    ):
        acme, _ = teams
        rita = await sign_in(client, "rita@acme.test")
        for body, reason in (
            ("{{ tracking.__class__ }}", "cannot be used"),
            ("Hi {{ first_name", "syntax error"),
            ("{% include 'x' %}", "cannot be used"),
        ):
            refused = await save(client, rita.csrf, acme.retailer_id, "Bad", body)
            assert refused.status_code == 422 and reason in refused.text, refused.text
        async with ctx.uow() as uow:
            assert (await uow.session.exec(select(SavedReply))).all() == []

    async def test_each_retailer_sees_and_offers_only_its_own(self, client, ctx, teams):
        acme, globex = teams
        gail = await sign_in(client, "gail@globex.test")
        assert (
            await save(client, gail.csrf, globex.retailer_id, "Globex hello", "Hello!")
        ).status_code == 303
        assert (await save(client, gail.csrf, acme.retailer_id, "Sneaky", "x")).status_code == 404
        rita = await sign_in(client, "rita@acme.test")
        assert "Globex hello" not in (await client.get("/console/saved-replies")).text
        async with ctx.uow() as uow:
            globex_reply = (await uow.session.exec(select(SavedReply))).one()
        deleted = await client.post(
            f"/console/saved-replies/{globex_reply.id}/delete", data={"csrf_token": rita.csrf}
        )
        assert deleted.status_code == 404
        conversation_id = await seed_conversation(ctx, acme.retailer_id, "A001", status="needs_person")
        signed = await sign_in(client, "ana@acme.test")
        await client.post(
            f"/console/conversations/{conversation_id}/take-over", data={"csrf_token": signed.csrf}
        )
        assert await options_in_reply_box(client, conversation_id) == {}

    async def test_agents_use_them_but_only_admins_write_them_and_markup_stays_text(self, client, ctx, teams):
        acme, _ = teams
        ana = await sign_in(client, "ana@acme.test")
        assert (await client.get("/console/saved-replies")).status_code == 403
        assert (await save(client, ana.csrf, acme.retailer_id, "Mine", "x")).status_code == 403
        rita = await sign_in(client, "rita@acme.test")
        await save(
            client, rita.csrf, acme.retailer_id, "<b>Bold</b>", "<script>alert(1)</script> {{ first_name }}"
        )
        listing = await client.get("/console/saved-replies")
        assert "<script>alert(1)</script>" not in listing.text and "&lt;script&gt;" in listing.text
        async with ctx.uow() as uow:
            saved = (await uow.session.exec(select(SavedReply))).one()
        deleted = await client.post(
            f"/console/saved-replies/{saved.id}/delete", data={"csrf_token": rita.csrf}
        )
        assert deleted.status_code == 303
        async with ctx.uow() as uow:
            assert (await uow.session.exec(select(SavedReply))).all() == []
