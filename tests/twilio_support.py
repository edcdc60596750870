"""Shared pieces of the Twilio tests: credentials, settings pointed at the fake, signed posts."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient, Response
from twilio.request_validator import RequestValidator

from core.config import Settings

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-twilio-auth-token-0123456789"
PUBLIC_URL = "https://doorstep.example"
SHARED_SMS = "+15145550100"
SHARED_WHATSAPP = "+15145550101"
RECIPIENT = "+14165550101"


def twilio_settings(database_url: str, api_url: str = "http://127.0.0.1:9", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "public_url": PUBLIC_URL,
        "scheduler_enabled": False,
        "outbox_enabled": False,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_api_url": api_url,
        "twilio_sms_from": SHARED_SMS,
        "twilio_whatsapp_from": SHARED_WHATSAPP,
        "twilio_messages_per_second": 1000.0,
        "twilio_timeout_seconds": 2.0,
        "outbox_backoff_seconds": 0.0,
        "telegram_api_url": "http://127.0.0.1:9",
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


def sign(path: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature as Twilio computes it for a POST to PUBLIC_URL + path."""
    return RequestValidator(token).compute_signature(PUBLIC_URL + path, form)


async def post_signed(client: AsyncClient, path: str, form: dict[str, str], **kwargs: Any) -> Response:
    headers = {"X-Twilio-Signature": sign(path, form, **kwargs)}
    return await client.post(path, data=form, headers=headers)


def inbound_form(
    body: str = "hello",
    sid: str = "SM" + "a" * 32,
    sender: str = RECIPIENT,
    to: str = SHARED_SMS,
    **extra: str,
) -> dict[str, str]:
    form = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form
