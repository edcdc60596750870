"""A conversation engine that records what the channels handed it and answers with canned replies.

It implements the engine's port (`handle(InboundMessage) -> list[OutboundMessage]`) the way the real one
does at the edges: a provider id seen before is ignored, and replies are written to the outbox in the
same transaction, addressed back to the sender on the same channel.
"""

from __future__ import annotations

from sqlmodel import select

from bot.messages import InboundMessage, Option, OutboundMessage
from core.context import AppContext
from core.models import InboundReceipt
from core.outbox import enqueue

DEFAULT_REPLY = OutboundMessage(
    text="Your parcel MH2611250007 arrives **Thu 2–4 PM** <between> A & B.",
    options=(
        Option("Reschedule", "reschedule"),
        Option("Pickup point", "pickup"),
        Option("Talk to a person", "agent"),
    ),
    template_key="status",
)


class RecordingEngine:
    def __init__(self, ctx: AppContext, replies: list[OutboundMessage] | None = None) -> None:
        self.ctx = ctx
        self.received: list[InboundMessage] = []
        self.replies = [DEFAULT_REPLY] if replies is None else replies
        self.linked: dict[str, int] = {}

    async def link_web_session(self, session_id: str, recipient_id: int) -> None:
        self.linked[session_id] = recipient_id

    async def handle(self, message: InboundMessage) -> list[OutboundMessage]:
        async with self.ctx.uow() as uow:
            if message.provider_id is not None:
                provider = str(message.channel)
                seen = (
                    await uow.session.exec(
                        select(InboundReceipt).where(
                            InboundReceipt.provider == provider,
                            InboundReceipt.external_id == message.provider_id,
                        )
                    )
                ).first()
                if seen is not None:
                    return []
                uow.session.add(InboundReceipt(provider=provider, external_id=message.provider_id))
            self.received.append(message)
            key = f"n{len(self.received)}"
            for i, reply in enumerate(self.replies):
                await enqueue(
                    uow.session,
                    channel=message.channel,
                    to_address=message.sender,
                    body=reply.text,
                    options=[{"label": o.label, "payload": o.payload} for o in reply.options],
                    idempotency_key=f"reply:{message.channel}:{message.provider_id or key}:{i}",
                    recipient_id=self.linked.get(message.sender),
                )
            await uow.commit()
        return list(self.replies)
