"""Fixtures and update builders shared by the Telegram tests (import the fixtures into the test module)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.config import Settings
from tests.fakes.telegram_api import FakeTelegramAPI

WEBHOOK_SECRET = "telegram-test-secret"
BOT_TOKEN = "987654:test-token-for-the-fake"
CHAT_ID = 700100200
_update_ids = itertools.count(500_000)
_message_ids = itertools.count(1)


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeTelegramAPI]:
    fake = await FakeTelegramAPI(token=BOT_TOKEN).start()
    yield fake
    await fake.stop()


@pytest.fixture
def settings(database_url: str, fake_api: FakeTelegramAPI) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        public_url="http://testserver",
        scheduler_enabled=False,
        outbox_enabled=False,
        log_json=True,
        telegram_api_url=fake_api.base_url,
        telegram_bot_token=BOT_TOKEN,  # type: ignore[arg-type]
        telegram_webhook_secret=WEBHOOK_SECRET,  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )


def user(user_id: int = CHAT_ID, first_name: str = "Camille", last_name: str = "Tremblay") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, "last_name": last_name}


def message_update(
    text: str | None = "where is my parcel",
    *,
    chat_id: int = CHAT_ID,
    update_id: int | None = None,
    chat_type: str = "private",
    **extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": next(_message_ids),
        "date": 1_764_000_000,
        "chat": {"id": chat_id, "type": chat_type},
        "from": user(chat_id),
        **extra,
    }
    if text is not None:
        message["text"] = text
    return {"update_id": update_id if update_id is not None else next(_update_ids), "message": message}


def contact_update(phone: str, contact_user_id: int | None, chat_id: int = CHAT_ID) -> dict[str, Any]:
    contact: dict[str, Any] = {"phone_number": phone, "first_name": "Camille"}
    if contact_user_id is not None:
        contact["user_id"] = contact_user_id
    return message_update(None, chat_id=chat_id, contact=contact)


def callback_update(data: str, *, chat_id: int = CHAT_ID, update_id: int | None = None) -> dict[str, Any]:
    return {
        "update_id": update_id if update_id is not None else next(_update_ids),
        "callback_query": {
            "id": f"cbq-{next(_message_ids)}",
            "from": user(chat_id),
            "chat_instance": "ci-1",
            "data": data,
            "message": {
                "message_id": next(_message_ids),
                "date": 1_764_000_000,
                "chat": {"id": chat_id, "type": "private"},
                "text": "Your parcel arrives Thursday.",
            },
        },
    }


def signed(secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {"X-Telegram-Bot-Api-Secret-Token": secret}
