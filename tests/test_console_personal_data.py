"""A recipient's request about their personal data, handled from the console by a retailer admin:
export it as JSON for them, or erase it (bot/privacy.py does the work, as for the API)."""

from __future__ import annotations

import json

from sqlmodel import col, select

from core.models import ChangeLog, Conversation, Delivery, DeliveryStatus, Recipient
from tests.console_helpers import (
    cheap_password_hashing,  # noqa: F401 - autouse fixture
    seed_conversation,
    sign_in,
)
from tests.test_privacy import set_status


async def delivered(ctx, tracking: str) -> None:
    await set_status(ctx, tracking, DeliveryStatus.delivered)


class TestPersonalDataInTheConsole:
    async def test_an_admin_exports_the_recipients_data_as_a_json_download(self, client, ctx, teams):
        acme, _ = teams
        conversation_id = await seed_conversation(
            ctx, acme.retailer_id, "A001", texts=("Please tell me what data you keep on me",)
        )
        rita = await sign_in(client, "rita@acme.test")
        page = await client.get(f"/console/conversations/{conversation_id}")
        assert 'id="export-personal-data"' in page.text and 'id="erase-personal-data"' in page.text
        exported = await client.post(
            f"/console/conversations/{conversation_id}/personal-data/export", data={"csrf_token": rita.csrf}
        )
        assert exported.status_code == 200
        assert exported.headers["content-disposition"].startswith("attachment;")
        data = json.loads(exported.text)
        assert [d["tracking"] for d in data["deliveries"]] == ["A001"]
        assert data["conversations"][0]["messages"][0]["text"] == "Please tell me what data you keep on me"

    async def test_an_agent_is_not_offered_either_and_is_refused_both(self, client, ctx, teams):
        acme, _ = teams
        conversation_id = await seed_conversation(ctx, acme.retailer_id, "A001")
        ana = await sign_in(client, "ana@acme.test")
        page = await client.get(f"/console/conversations/{conversation_id}")
        assert "personal-data" not in page.text
        for action in ("export", "erase"):
            refused = await client.post(
                f"/console/conversations/{conversation_id}/personal-data/{action}",
                data={"csrf_token": ana.csrf, "confirm": "yes"},
            )
            assert refused.status_code == 403 and "Only an admin" in refused.text

    async def test_erasing_waits_for_the_deliveries_then_deletes_the_conversation(self, client, ctx, teams):
        acme, _ = teams
        conversation_id = await seed_conversation(ctx, acme.retailer_id, "A001")
        rita = await sign_in(client, "rita@acme.test")
        path = f"/console/conversations/{conversation_id}/personal-data/erase"
        unconfirmed = await client.post(path, data={"csrf_token": rita.csrf})
        assert unconfirmed.status_code == 422 and "Tick the box" in unconfirmed.text
        early = await client.post(path, data={"csrf_token": rita.csrf, "confirm": "yes"})
        assert early.status_code == 409 and "A001 still under way" in early.text
        await delivered(ctx, "A001")
        done = await client.post(path, data={"csrf_token": rita.csrf, "confirm": "yes"})
        assert done.status_code == 303 and done.headers["location"] == "/console?done=erased"
        inbox = await client.get(done.headers["location"])
        assert "personal data was erased" in inbox.text
        assert (await client.get(f"/console/conversations/{conversation_id}")).status_code == 404
        async with ctx.uow() as uow:
            assert await uow.session.get(Conversation, conversation_id) is None
            recipient = (
                await uow.session.exec(
                    select(Recipient)
                    .join(Delivery, col(Delivery.recipient_id) == col(Recipient.id))
                    .where(Delivery.tracking == "A001")
                )
            ).one()
            assert (recipient.name, recipient.phone) == ("", None)
            recorded = (
                await uow.session.exec(select(ChangeLog).where(ChangeLog.kind == "personal_data_erased"))
            ).one()
            assert (recorded.actor_id, recorded.channel) == ("rita@acme.test", "console")

    async def test_another_retailers_admin_cannot_reach_the_conversation(self, client, ctx, teams):
        acme, _ = teams
        conversation_id = await seed_conversation(ctx, acme.retailer_id, "A001")
        await delivered(ctx, "A001")
        gail = await sign_in(client, "gail@globex.test")
        for action in ("export", "erase"):
            response = await client.post(
                f"/console/conversations/{conversation_id}/personal-data/{action}",
                data={"csrf_token": gail.csrf, "confirm": "yes"},
            )
            assert response.status_code == 404
        async with ctx.uow() as uow:
            assert await uow.session.get(Conversation, conversation_id) is not None
