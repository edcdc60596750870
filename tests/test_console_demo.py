"""The console's demo data: agents who can sign in, conversations to work on, a dashboard with history."""

from __future__ import annotations

import re

from sqlmodel import col, select

from console.demo import DEMO_PASSWORD, load_demo_console
from core.models import Conversation, ConversationStatus, Retailer
from scheduling.demo import load_demo
from tests.console_helpers import cheap_password_hashing, sign_in  # noqa: F401 - autouse fixture


async def test_the_demo_agents_sign_in_and_see_only_their_retailers_conversations(client, ctx):
    await load_demo(ctx)
    first = await load_demo_console(ctx)
    again = await load_demo_console(ctx)
    assert (
        first["console"]["conversations_created"] == 8
        and first["console"]["history_notifications_created"] > 100
    )
    assert (
        again["console"]["conversations_created"] == 0
        and again["console"]["history_notifications_created"] == 0
    )
    async with ctx.uow() as uow:
        maple = (await uow.session.exec(select(Retailer).where(Retailer.slug == "maple-home"))).one()
        open_ids = set(
            (
                await uow.session.exec(
                    select(Conversation.id).where(
                        Conversation.retailer_id == maple.id,
                        col(Conversation.status) != ConversationStatus.closed,
                    )
                )
            ).all()
        )
    await sign_in(client, "agent@maple-home.demo", DEMO_PASSWORD)
    page = await client.get("/console")
    shown = {int(i) for i in re.findall(r'data-id="(\d+)"', page.text)}
    assert shown == open_ids and len(shown) == 4
    assert "needs a person" in page.text and "send failed" in page.text
    await sign_in(client, "admin@maple-home.demo", DEMO_PASSWORD)
    dashboard = await client.get("/console/dashboard")
    assert dashboard.status_code == 200 and "Notifications: sent" in dashboard.text
    saved = await client.get("/console/saved-replies")  # three each, not twice for two loads
    assert saved.status_code == 200 and saved.text.count("Planned window") == 1
