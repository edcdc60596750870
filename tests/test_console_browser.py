"""End to end in headless Chromium: a recipient asks for a person over SMS (the signed Twilio webhook),
an agent signs in, takes over, replies (the fake Twilio API receives it), reschedules the delivery,
hands back; a new message appears live; an agent of another retailer sees none of it.

The app runs in uvicorn in a thread (port 0) with its outbox worker sending to the loopback fake of
Twilio's API, which runs in its own event loop thread. SQLite only: the database paths are covered on
both databases by the other console tests.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from app import build_context, create_app
from channels.twilio import MESSAGES_PATH
from core.config import Settings
from core.models import Role
from tests.browser_support import CHROMIUM, PASSWORD, chromium, png, serving, sign_in
from tests.console_helpers import add_user, load_small_plan
from tests.fakes.twilio_api import FakeTwilioApi
from tests.twilio_support import ACCOUNT_SID, AUTH_TOKEN, SHARED_SMS, inbound_form, twilio_settings

RECIPIENT_PHONE = "+14165550401"  # A001's recipient in tests/console_helpers.load_small_plan

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    print(f"\nSKIP browser tests: {CHROMIUM} is not installed (make browser installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)


class LoopThread:
    """An event loop in a thread, for the fake Twilio API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@dataclass
class Served:
    url: str
    settings: Settings
    twilio: FakeTwilioApi

    def post_sms(self, body: str, sid: str, **media: str) -> httpx.Response:
        form = inbound_form(body=body, sid=sid, sender=RECIPIENT_PHONE, to=SHARED_SMS, **media)
        url = self.settings.public_url + MESSAGES_PATH  # Twilio signs the public URL it called
        headers = {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, form)}
        return httpx.post(self.url + MESSAGES_PATH, data=form, headers=headers, timeout=30)


async def _seed(settings: Settings) -> None:
    from tests.conftest import make_tenant

    ctx = build_context(settings)
    try:
        acme = await make_tenant(ctx, "acme")
        globex = await make_tenant(ctx, "globex")
        await load_small_plan(ctx, acme.retailer_id, "A")
        await load_small_plan(ctx, globex.retailer_id, "G")
        await add_user(ctx, "ana@acme.test", ["acme"], password=PASSWORD)
        await add_user(ctx, "amy@acme.test", ["acme"], password=PASSWORD)
        await add_user(ctx, "gus@globex.test", ["globex"], password=PASSWORD)
        await add_user(ctx, "rita@acme.test", ["acme"], password=PASSWORD, role=Role.retailer_admin)
    finally:
        await ctx.engine.dispose()


@pytest.fixture
def served(tmp_path: Path, sqlite_template: Path) -> Iterator[Served]:
    database = tmp_path / "doorstep.db"
    shutil.copy(sqlite_template, database)
    loop = LoopThread()
    twilio = FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN)
    api_url = loop.run(twilio.start())
    settings = twilio_settings(
        f"sqlite:///{database}",
        api_url=api_url,
        public_url="http://doorstep.test",
        outbox_enabled=True,
        outbox_poll_seconds=0.2,
    )
    asyncio.run(_seed(settings))
    try:
        with serving(create_app(settings), lifespan="on", timeout_graceful_shutdown=2) as url:
            yield Served(url, settings, twilio)
    finally:
        loop.run(twilio.stop())
        loop.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def wait_for(predicate: Any, what: str, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_agent_takes_over_an_sms_conversation_replies_reschedules_and_hands_back(served, browser):
    from playwright.sync_api import expect

    asked = served.post_sms("I want to talk to a person please", "SM" + "1" * 32)
    assert asked.status_code == 200, asked.text

    agent = browser.new_context(viewport={"width": 1440, "height": 900})
    page = agent.new_page()
    sign_in(page, served.url + "/console", "ana@acme.test")

    expect(page).to_have_title(re.compile(r"^\(1\) Inbox"))  # one conversation waits for a person
    first = page.locator("#conv-list li").first
    expect(first).to_contain_text("needs a person")
    expect(first).to_contain_text("Recipient 1")
    first.locator("a").click()
    expect(page.locator("#thread")).to_contain_text("I want to talk to a person please")
    expect(page.locator("#conversation-status")).to_have_text("needs person")

    page.get_by_role("button", name="Take over").click()
    expect(page.locator(".alert.ok")).to_contain_text("You own this conversation")
    expect(page.locator("#conversation-owner")).to_have_text("you")

    page.keyboard.press("r")  # the shortcut focuses the reply box
    expect(page.locator("#reply-text")).to_be_focused()
    page.keyboard.type("Hi, this is Ana from Acme. Let me move your delivery.")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".alert.ok")).to_contain_text("Reply queued")
    sent = wait_for(
        lambda: [m for m in served.twilio.sent_to(RECIPIENT_PHONE) if "this is Ana" in m.body],
        "the fake Twilio API to receive the agent's reply",
    )
    assert sent[0].from_ == SHARED_SMS
    page.reload()
    expect(page.locator("#thread .msg.agent").last).to_contain_text("this is Ana")

    # Twilio reports the delivery: the receipt on the agent's message moves forward without a reload
    callback = sent[0].status_callback
    assert callback and callback.startswith(served.settings.public_url)
    form = served.twilio.callback_form(sent[0], "delivered")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(callback, form)
    local = served.url + callback.removeprefix(served.settings.public_url)
    assert httpx.post(local, data=form, headers={"X-Twilio-Signature": signature}).status_code == 204
    expect(page.locator("#thread .msg.agent .chip.delivered")).to_be_visible(timeout=15_000)

    # a new message from the recipient appears without reloading
    page.evaluate("window.__marker = 'same page'")
    assert served.post_sms("Thanks, Thursday afternoon would be better", "SM" + "2" * 32).status_code == 200
    expect(page.locator("#thread")).to_contain_text("Thursday afternoon would be better", timeout=15_000)
    assert page.evaluate("window.__marker") == "same page"

    page.locator("#act-reschedule summary").click()
    options = page.locator('#act-reschedule input[name="window"]')
    assert options.count() > 0
    chosen = options.last
    chosen_label = chosen.evaluate("el => el.parentElement.textContent").strip()
    chosen.check()
    page.get_by_role("button", name="Reschedule").click()
    expect(page.locator(".alert.ok")).to_contain_text("Delivery rescheduled")
    expect(page.locator(".changelog")).to_contain_text("ana@acme.test")
    expect(page.locator("#thread")).to_contain_text("ana rescheduled A001")
    assert chosen_label.split(" ETA")[0].strip().split(",")[-1].strip() in page.locator(".facts").inner_text()

    page.get_by_role("button", name="Hand back to bot").click()
    expect(page.locator(".alert.ok")).to_contain_text("Handed back")
    expect(page.locator("#conversation-owner")).to_have_text("bot answers")
    conversation_url = page.url.split("?")[0]
    agent.close()

    other = browser.new_context(viewport={"width": 1440, "height": 900})
    page = other.new_page()
    sign_in(page, served.url + "/console", "gus@globex.test")
    expect(page.locator("#conv-list")).not_to_contain_text("A001")
    expect(page.locator("#conv-list")).not_to_contain_text("Recipient 1")
    page.get_by_label("Search by tracking number, name or phone").fill("A001")
    page.keyboard.press("Enter")
    expect(page.locator("#conv-list")).to_contain_text("No conversation matches.")
    response = page.goto(conversation_url)
    assert response is not None and response.status == 404
    assert "this is Ana" not in page.content()
    other.close()


def test_a_picture_the_recipient_sends_shows_in_the_agents_thread(served, browser):
    from playwright.sync_api import expect

    url = served.twilio.add_media("image/png", png(40, 30))
    sent = served.post_sms("", "SM" + "3" * 32, NumMedia="1", MediaUrl0=url, MediaContentType0="image/png")
    assert sent.status_code == 200, sent.text
    agent = browser.new_context(viewport={"width": 1440, "height": 900})
    page = agent.new_page()
    sign_in(page, served.url + "/console", "ana@acme.test")
    page.locator("#conv-list li a").first.click()
    expect(page.locator("#conversation-status")).to_have_text("needs person")
    picture = page.get_by_alt_text("Picture 1 from the recipient")
    expect(picture).to_be_visible()
    wait_for(lambda: picture.evaluate("img => img.complete && img.naturalWidth") == 40, "the picture to load")
    expect(page.locator("#thread")).to_contain_text("Thanks, I've got your picture.")

    # and the agent answers with a picture of their own, which Twilio fetches from the public URL
    page.get_by_role("button", name="Take over").click()
    expect(page.locator("#conversation-owner")).to_have_text("you")
    page.locator("#reply-file").set_input_files(
        files=[{"name": "where.png", "mimeType": "image/png", "buffer": png(50, 20)}]
    )
    page.locator("#reply-text").fill("Leave it by the blue door, like this")
    page.locator("#send").click()
    expect(page.locator(".alert.ok")).to_contain_text("Reply queued")
    sent = wait_for(
        lambda: [m for m in served.twilio.sent_to(RECIPIENT_PHONE) if "blue door" in m.body],
        "the fake Twilio API to receive the agent's picture",
    )
    (media_url,) = sent[0].form["MediaUrl"]
    assert media_url.startswith(served.settings.public_url + "/media/")
    fetched = httpx.get(served.url + media_url.removeprefix(served.settings.public_url), timeout=10)
    assert fetched.status_code == 200 and fetched.content == png(50, 20)
    mine = page.get_by_alt_text("Picture 1 sent")
    expect(mine).to_be_visible()
    wait_for(lambda: mine.evaluate("img => img.complete && img.naturalWidth") == 50, "the agent's picture")
    agent.close()


def test_the_event_stream_of_an_agent_carries_only_their_retailers_notices(served):
    """Two agents listen on /console/events; a recipient of the first retailer writes over SMS."""
    import queue

    def listen(email: str, out: queue.Queue) -> httpx.Client:
        client = httpx.Client(base_url=served.url, timeout=httpx.Timeout(30, read=None))
        signed = client.post("/console/login", data={"email": email, "password": PASSWORD})
        assert signed.status_code == 303

        def read() -> None:
            try:
                with client.stream("GET", "/console/events") as stream:
                    for line in stream.iter_lines():
                        out.put(line)
            except (httpx.HTTPError, RuntimeError):
                pass  # the client closed at the end of the test

        threading.Thread(target=read, daemon=True).start()
        return client

    acme_lines: queue.Queue = queue.Queue()
    globex_lines: queue.Queue = queue.Queue()
    clients = [listen("ana@acme.test", acme_lines), listen("gus@globex.test", globex_lines)]
    for lines in (acme_lines, globex_lines):
        assert wait_for(lambda lines=lines: not lines.empty(), "the stream to open")
    assert served.post_sms("Where is my parcel?", "SM" + "3" * 32).status_code == 200

    def events(lines: queue.Queue) -> list[str]:
        found = []
        while not lines.empty():
            line = lines.get()
            if line.startswith("data: "):
                found.append(line)
        return found

    received: list[str] = []
    wait_for(lambda: received.extend(events(acme_lines)) or received, "the acme agent's notice")
    assert any('"MessageReceived"' in line for line in received)
    assert all("Where is my parcel" not in line for line in received)  # ids only, never the text
    time.sleep(1.0)
    assert events(globex_lines) == []
    for client in clients:
        client.close()


async def _save_reply(settings: Settings, title: str, body: str) -> None:
    from sqlmodel import select

    from core.models import Retailer, SavedReply

    ctx = build_context(settings)
    try:
        async with ctx.uow() as uow:
            acme = (await uow.session.exec(select(Retailer).where(Retailer.slug == "acme"))).one()
            uow.session.add(SavedReply(retailer_id=acme.id, title=title, body=body))
            await uow.commit()
    finally:
        await ctx.engine.dispose()


def test_a_saved_reply_goes_into_the_reply_box_filled_in_and_is_sent(served, browser):
    from playwright.sync_api import expect

    saving = _save_reply(served.settings, "Greeting", "Hi {{ first_name }}, your parcel {{ tracking }}:")
    with ThreadPoolExecutor(1) as aside:  # Playwright's sync API holds this thread's event loop
        aside.submit(asyncio.run, saving).result(timeout=30)
    sent = served.post_sms("I want to talk to a person please", "SM" + "4" * 32)
    assert sent.status_code == 200, sent.text
    agent = browser.new_context(viewport={"width": 1440, "height": 900})
    page = agent.new_page()
    sign_in(page, served.url + "/console", "ana@acme.test")
    page.locator("#conv-list li a").first.click()
    page.get_by_role("button", name="Take over").click()
    expect(page.locator("#conversation-owner")).to_have_text("you")
    page.locator("#reply-text").fill("Hello!")
    page.locator("#saved-reply").select_option(label="Greeting")
    expect(page.locator("#reply-text")).to_have_value("Hello! Hi Recipient, your parcel A001:")
    expect(page.locator("#reply-text")).to_be_focused()
    page.keyboard.type(" it is on its way.")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".alert.ok")).to_contain_text("Reply queued")
    wait_for(
        lambda: [
            m
            for m in served.twilio.sent_to(RECIPIENT_PHONE)
            if m.body == "Hello! Hi Recipient, your parcel A001: it is on its way."
        ],
        "the fake Twilio API to receive the reply with the saved text",
    )
    # going home: Ana gives the conversation to Amy, who owns it now
    page.locator("#assignee").select_option(label="amy@acme.test")
    page.locator("#assign").click()
    expect(page.locator(".alert.ok")).to_contain_text("Given to your colleague")
    expect(page.locator("#conversation-owner")).to_have_text("amy@acme.test")
    expect(page.locator("#thread")).to_contain_text("ana gave it to amy")
    agent.close()


async def _delivered(settings: Settings, tracking: str) -> None:
    from core.models import DeliveryStatus
    from tests.test_privacy import set_status

    ctx = build_context(settings)
    try:
        await set_status(ctx, tracking, DeliveryStatus.delivered)
    finally:
        await ctx.engine.dispose()


def test_a_recipient_asks_to_have_their_data_erased_and_an_admin_exports_then_erases_it(served, browser):
    from playwright.sync_api import expect

    sent = served.post_sms("Please delete my personal data", "SM" + "5" * 32)
    assert sent.status_code == 200, sent.text
    wait_for(
        lambda: [
            m for m in served.twilio.sent_to(RECIPIENT_PHONE) if "personal data goes to a person" in m.body
        ],
        "the bot's answer that a person will handle it",
    )
    admin = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = admin.new_page()
    sign_in(page, served.url + "/console", "rita@acme.test")
    page.locator("#conv-list li a").first.click()
    expect(page.locator("#thread")).to_contain_text("asked about their personal data")
    page.locator("#personal-data summary").click()
    with page.expect_download() as download:
        page.locator("#export-personal-data").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert [d["tracking"] for d in exported["deliveries"]] == ["A001"]
    assert exported["conversations"][0]["messages"][0]["text"] == "Please delete my personal data"
    # the browser will not send the erasure unticked; ticked, A001 on its way makes it wait
    page.locator("#erase-personal-data").click()
    assert page.locator("#confirm-erase").evaluate("box => box.validity.valueMissing")
    assert "/conversations/" in page.url and not page.locator("#action-error").count()
    page.locator("#confirm-erase").check()
    page.locator("#erase-personal-data").click()
    expect(page.locator("#action-error")).to_contain_text("A001 still under way")
    with ThreadPoolExecutor(1) as aside:
        aside.submit(asyncio.run, _delivered(served.settings, "A001")).result(timeout=30)
    page.locator("#personal-data summary").click()
    page.locator("#confirm-erase").check()
    page.locator("#erase-personal-data").click()
    expect(page.locator("#inbox-done")).to_contain_text("personal data was erased")
    expect(page.locator("#conv-list")).not_to_contain_text(RECIPIENT_PHONE)
    admin.close()
