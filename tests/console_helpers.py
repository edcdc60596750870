"""Helpers for the console tests: users of a retailer and signed-in HTTP clients."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from argon2 import PasswordHasher
from httpx import AsyncClient

from console.auth import create_user, use_password_hasher
from core.context import AppContext, system_clock
from core.models import Role
from tests.scheduling_support import NOW


def running_from(start: datetime) -> Callable[[], datetime]:
    """A clock that reads `start` now and runs with real time from there."""
    began = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - began)


@pytest.fixture(autouse=True)
def cheap_password_hashing():
    """Argon2 with minimal cost: the real parameters take ~0.4 s per hash on these machines."""
    previous = use_password_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    use_password_hasher(previous)


@dataclass
class SignedIn:
    email: str
    password: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}


async def add_user(
    ctx: AppContext, email: str, slugs: list[str], role: Role = Role.agent, password: str = "correct horse"
) -> str:
    async with ctx.uow() as uow:
        await create_user(uow.session, email, role, slugs, password=password)
        await uow.commit()
    return password


async def sign_in(client: AsyncClient, email: str, password: str = "correct horse") -> SignedIn:
    """Sign in through the form, as a browser does, and read the CSRF token from a page."""
    client.cookies.clear()
    response = await client.post("/console/login", data={"email": email, "password": password})
    assert response.status_code == 303, response.text
    me = await client.get("/console/me")
    assert me.status_code == 200, me.text
    return SignedIn(email, password, me.json()["csrf_token"])


async def load_small_plan(ctx: AppContext, tenant_id: int, prefix: str = "T") -> None:
    """Import tests/plans.py's small plan for a retailer (trackings `{prefix}001`...).

    The plan is for a fixed day, so the context's clock is set running from the afternoon before it:
    what the console offers (windows, crew slots) must not depend on the hour the suite runs.
    """
    from core.models import Retailer
    from scheduling.plans import import_plan
    from tests.plans import small_plan

    if ctx.clock is system_clock:
        ctx.clock = running_from(NOW)
    async with ctx.uow() as uow:
        retailer = await uow.session.get(Retailer, tenant_id)
        plan = small_plan(prefix=prefix)
        digit = str(ord(prefix[0]) % 7 + 2)  # distinct phone numbers per retailer: A -> 4, G -> 3
        for job in plan["jobs"]:
            phone = job["recipient"]["phone"]
            job["recipient"]["phone"] = phone[:-3] + digit + phone[-2:]
        await import_plan(uow, retailer, plan)


async def seed_conversation(
    ctx: AppContext,
    retailer_id: int,
    tracking: str,
    *,
    channel: str = "sms",
    status: str = "open",
    owner: str = "bot",
    texts: tuple[str, ...] = ("Hello",),
    minutes_ago: int = 5,
    address: str | None = None,
) -> int:
    """A conversation of the delivery's recipient with inbound messages, as the engine would store it."""
    from datetime import timedelta

    from sqlmodel import select

    from core.models import Channel, Conversation, Delivery, Direction, Message, Recipient

    async with ctx.uow() as uow:
        delivery = (
            await uow.session.exec(
                select(Delivery).where(Delivery.retailer_id == retailer_id, Delivery.tracking == tracking)
            )
        ).one()
        recipient = await uow.session.get(Recipient, delivery.recipient_id)
        at = ctx.clock() - timedelta(minutes=minutes_ago)
        conversation = Conversation(
            channel=Channel(channel),
            address=address or (recipient.phone if channel in ("sms", "whatsapp") else f"{recipient.id}0042"),
            retailer_id=retailer_id,
            recipient_id=recipient.id,
            delivery_id=delivery.id,
            status=status,
            owner=owner,
            last_inbound_at=at,
            updated_at=at,
        )
        uow.session.add(conversation)
        await uow.session.flush()
        for i, text in enumerate(texts):
            uow.session.add(
                Message(
                    conversation_id=conversation.id,
                    channel=Channel(channel),
                    direction=Direction.inbound,
                    author="recipient",
                    text=text,
                    created_at=at + timedelta(seconds=i),
                )
            )
        await uow.commit()
        return conversation.id
