"""The sandbox as a newcomer uses it: headless Chromium against the app served on the demo day.

The app runs under uvicorn in a thread (port 0) on a SQLite file with the demo dataset, with the real
conversation engine. Skipped, with the reason printed, only when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app import build_context, create_app
from core.config import Settings
from scheduling.demo import load_demo
from tests.browser_support import CHROMIUM, chromium, png, serving

pytestmark = pytest.mark.browser


async def _register_engine(_app: Any, ctx: Any) -> None:
    """The real engine, unless the app's own starters registered it already."""
    if "engine" not in ctx.components:
        from bot.engine import ConversationEngine

        ctx.components["engine"] = ConversationEngine(ctx)


@pytest.fixture(scope="module")
def sandbox(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent: run `make browser` (Debian's chromium) for the browser tests"
        print(f"\nSKIP {reason}")
        pytest.skip(reason)
    path = tmp_path_factory.mktemp("sandbox") / "demo.db"
    shutil.copy(sqlite_template, path)
    settings = Settings(
        environment="development",
        database_url=f"sqlite:///{path}",
        scheduler_enabled=False,
        outbox_enabled=True,
        log_level="WARNING",
        _env_file=None,  # type: ignore[call-arg]
    )

    async def load() -> None:
        ctx = build_context(settings)
        try:
            await load_demo(ctx)
        finally:
            await ctx.engine.dispose()

    asyncio.run(load())
    app = create_app(settings)
    app.state.starters.append(_register_engine)
    with serving(app) as url:
        yield SimpleNamespace(url=url, database_url=settings.database_url)


@pytest.fixture(scope="module")
def browser(sandbox: SimpleNamespace) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def agent_writes(database_url: str, session_id: str, text: str, picture: bytes | None = None) -> None:
    """What the console does when an agent answers: a stored outbound message of the conversation,
    with the picture the agent attached kept as an OutgoingFile."""
    from sqlmodel import Session, select

    from core.db import make_sync_engine
    from core.models import Author, Channel, Conversation, Direction, Message, OutgoingFile

    engine = make_sync_engine(database_url)
    with Session(engine) as db:
        conversation = db.exec(
            select(Conversation).where(
                Conversation.channel == Channel.web, Conversation.address == session_id
            )
        ).one()
        attachments = []
        if picture is not None:
            kept = OutgoingFile(
                token=secrets.token_urlsafe(32),
                conversation_id=conversation.id,
                content_type="image/png",
                size=len(picture),
                content=picture,
            )
            db.add(kept)
            attachments.append({"content_type": "image/png", "ref": "doorstep:" + kept.token})
        db.add(
            Message(
                conversation_id=conversation.id,
                channel=Channel.web,
                direction=Direction.outbound,
                author=Author.agent,
                text=text,
                attachments=attachments,
            )
        )
        db.commit()
    engine.dispose()


def notify_by_sms(database_url: str, recipient_id: int, text: str) -> None:
    """What the notifications do: an outbox row on another channel, here one the provider refused."""
    from sqlmodel import Session

    from core.db import make_sync_engine
    from core.models import Channel, OutboxMessage, OutboxStatus

    engine = make_sync_engine(database_url)
    with Session(engine) as db:
        db.add(
            OutboxMessage(
                channel=Channel.sms,
                to_address="+15145550199",
                body=text,
                idempotency_key=f"browser-test:{recipient_id}",
                recipient_id=recipient_id,
                status=OutboxStatus.failed,
                last_error="21614: 'To' number is not a valid mobile number",
            )
        )
        db.commit()
    engine.dispose()


def bot_replies(page: Any) -> int:
    return int(page.locator(".msg.bot").count())


def wait_for_reply(page: Any, before: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('.msg.bot').length > {before}", timeout=20_000)
    page.wait_for_selector("#send:not([disabled])")  # the page is ready for the next message


class TestANewcomerInTheSandbox:
    def test_picks_camille_chats_by_keyboard_and_buttons_and_sees_each_channels_rendering(
        self, browser, sandbox, tmp_path
    ):
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{sandbox.url}/sandbox")

        # keyboard only: search, Tab to the first match, Enter to pick it
        page.fill("#search", "Camille")
        page.wait_for_function(
            "[...document.querySelectorAll('.recipient .name')].every(n => n.textContent.includes('Camille'))"
            " && document.querySelectorAll('.recipient').length > 0"
        )
        page.focus("#search")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.classList.contains('recipient')")
        page.keyboard.press("Enter")
        page.wait_for_selector("#text:not([disabled])")
        assert page.evaluate("document.activeElement.id") == "text"
        who = page.inner_text("#who")
        assert "Camille" in who and "fr_CA" in who
        tracking = page.get_attribute("#who .delivery", "data-tracking")

        page.keyboard.type("Où est mon colis ?")
        page.keyboard.press("Enter")
        wait_for_reply(page, 0)
        assert tracking in page.locator(".msg.bot .bubble").last.inner_text()

        # reschedule with the option buttons: the engine offers checked windows, one is chosen
        options = page.locator(".msg.bot").last.locator(".option:not([disabled])")
        assert options.count() >= 2
        before = bot_replies(page)
        options.first.click()
        wait_for_reply(page, before)
        windows = page.locator(".msg.bot").last.locator(".option:not([disabled])")
        assert windows.count() >= 1
        before = bot_replies(page)
        windows.first.click()
        wait_for_reply(page, before)

        # the same reply as SMS (numbered, encoding, segments), WhatsApp and Telegram (inline keyboard)
        page.locator("details.channels summary").first.click()
        previews = page.locator("details.channels").first
        assert "segment" in previews.locator(".preview.sms").inner_text()
        assert previews.locator(".preview.whatsapp").count() == 1
        assert previews.locator(".preview.telegram .kbd-row span").count() >= 2
        # what the recipient received on other channels shows up by itself, with its status
        session_id = page.evaluate("sessionStorage.getItem('doorstep.sandbox.session')")
        notify_by_sms(sandbox.database_url, int(session_id.split("_")[1]), "Votre colis arrive demain.")
        page.wait_for_selector("#notifications .note", timeout=15_000)
        note = page.inner_text("#notifications .note")
        assert "SMS" in note and "failed" in note and "Votre colis arrive demain." in note and "21614" in note
        page.screenshot(path=str(tmp_path / "sandbox-desktop.png"), full_page=True)
        print(f"\nscreenshot: {tmp_path / 'sandbox-desktop.png'}")
        assert page.locator("#status").is_hidden()
        assert errors == []
        page.close()

    def test_every_dialog_can_be_started_and_an_agents_answer_shows_up(self, browser, sandbox):
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{sandbox.url}/sandbox")
        page.fill("#search", "Alex")
        page.wait_for_function("document.querySelector('.recipient .name')?.textContent.includes('Alex')")
        page.locator(".recipient").first.click()
        page.wait_for_selector("#text:not([disabled])")
        suggestions = page.locator(".suggestion")
        assert suggestions.count() == 6  # parcel, reschedule, pickup, white-glove, instructions, a person
        for i in range(6):
            before = bot_replies(page)
            suggestions.nth(i).click()
            wait_for_reply(page, before)
            assert page.locator(".msg.bot .bubble").last.inner_text().strip()
            assert page.locator("#status").is_hidden(), page.inner_text("#status")
        # "talk to a person" was the last one: an agent answers from the console, the page shows it
        session_id = page.evaluate("sessionStorage.getItem('doorstep.sandbox.session')")
        agent_writes(sandbox.database_url, session_id, "Bonjour, ici Sam du service client.")
        page.wait_for_selector(".msg.agent", timeout=15_000)
        assert "Sam" in page.locator(".msg.agent .bubble").last.inner_text()
        agent_writes(sandbox.database_url, session_id, "Comme ceci :", picture=png(30, 12))
        picture = page.locator(".msg.agent .sent-file img").last
        picture.wait_for(timeout=15_000)
        page.wait_for_function("img => img.complete && img.naturalWidth === 30", arg=picture.element_handle())
        page.close()

    def test_on_a_phone_the_page_fits_the_screen_and_the_chat_replaces_the_list(
        self, browser, sandbox, tmp_path
    ):
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{sandbox.url}/sandbox")
        page.wait_for_selector(".recipient")
        page.locator(".recipient").first.click()
        page.wait_for_selector("#text:not([disabled])")
        assert page.locator("#picker").is_hidden()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(tmp_path / "sandbox-phone.png"), full_page=True)
        page.click("#change")
        assert page.locator("#picker").is_visible()
        page.close()
