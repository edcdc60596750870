"""Writing outbound messages to the outbox, inside the caller's transaction.

Everything sent (bot replies, notifications, agents' replies) is a row here first; channel workers
claim and send rows after the commit. The idempotency key makes a retried job or webhook enqueue
the same message once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Channel, OutboxMessage, OutboxStatus, utcnow


async def enqueue(session: AsyncSession, *, idempotency_key: str, **fields: Any) -> OutboxMessage:
    """Add a message to the outbox unless one with this idempotency key is already there.

    `fields` are those of `outbox_values`.
    """
    existing = (
        await session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key))
    ).first()
    if existing is not None:
        return existing
    message = OutboxMessage(**outbox_values(idempotency_key=idempotency_key, **fields))
    session.add(message)
    await session.flush()
    return message


def outbox_values(
    *,
    channel: Channel,
    to_address: str,
    body: str,
    idempotency_key: str,
    options: Sequence[dict[str, str]] = (),
    retailer_id: int | None = None,
    conversation_id: int | None = None,
    recipient_id: int | None = None,
    from_address: str = "",
    content_sid: str | None = None,
    content_variables: dict[str, str] | None = None,
    not_before: datetime | None = None,
    now: datetime | None = None,
    template_key: str | None = None,
    attachments: Sequence[dict[str, str]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A new pending outbox row as column values, for batched Core inserts (every row the same keys)."""
    created = now or utcnow()
    return {
        "channel": channel,
        "to_address": to_address,
        "from_address": from_address,
        "body": body,
        "options": list(options),
        "idempotency_key": idempotency_key,
        "retailer_id": retailer_id,
        "conversation_id": conversation_id,
        "recipient_id": recipient_id,
        "content_sid": content_sid,
        "content_variables": content_variables or {},
        "template_key": template_key,
        "attachments": list(attachments),
        "status": OutboxStatus.pending,
        "attempts": 0,
        "next_attempt_at": not_before or created,
        "last_error": "",
        "segments": 1,
        "encoding": "",
        "created_at": created,
        **extra,
    }
