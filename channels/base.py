"""The port every channel sender implements, and the errors that tell the outbox what to do next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.models import OutboxMessage


@dataclass(frozen=True)
class SendResult:
    provider_id: str
    segments: int = 1
    encoding: str = ""


class SendError(Exception):
    """Base of sending failures; raised only by adapters, after catching the provider's own errors."""


class TransientSendError(SendError):
    """Try again later (429, 5xx, timeout); `retry_after` seconds when the provider said so."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class OutcomeUnknownError(TransientSendError):
    """The request may have reached the provider (timeout, dropped connection): before sending again,
    the sender asks the provider whether it already has the message, so a retry is not a duplicate."""


class PermanentSendError(SendError):
    """Never going to work (invalid number, outside the WhatsApp window without a template...)."""


class Sender(Protocol):
    async def send(self, message: OutboxMessage) -> SendResult: ...
