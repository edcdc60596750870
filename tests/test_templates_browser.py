"""The template editor in headless Chromium: pick an event, edit with a live preview and inline errors,
save a version, roll back. SQLite only (the routes are covered on both databases in test_templates_editor)."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import build_context, create_app
from core.config import Settings
from core.models import Role
from tests.browser_support import CHROMIUM, PASSWORD, chromium, serving, sign_in
from tests.console_helpers import add_user, load_small_plan

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    print(f"\nSKIP browser tests: {CHROMIUM} is not installed (make browser installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)


async def _seed(settings: Settings) -> None:
    from tests.conftest import make_tenant

    ctx = build_context(settings)
    try:
        acme = await make_tenant(ctx, "acme")
        await load_small_plan(ctx, acme.retailer_id, "A")
        await add_user(ctx, "ada@acme.test", ["acme"], role=Role.retailer_admin, password=PASSWORD)
    finally:
        await ctx.engine.dispose()


@pytest.fixture
def served(tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    database = tmp_path / "doorstep.db"
    shutil.copy(sqlite_template, database)
    settings = Settings(
        environment="test",
        database_url=f"sqlite:///{database}",
        public_url="http://doorstep.test",
        scheduler_enabled=False,
        outbox_enabled=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    asyncio.run(_seed(settings))
    with serving(create_app(settings), lifespan="on") as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def test_a_retailer_admin_edits_previews_saves_and_rolls_back_a_template(served, browser):
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    sign_in(page, served + "/console/templates", "ada@acme.test")

    page.get_by_role("button", name="Failed attempt").click()
    body = page.locator("#tpl-body")
    expect(body).to_have_value(re.compile(r"could not deliver"))
    expect(page.locator("#tpl-preview-text")).to_contain_text("could not deliver TOR-000123")
    expect(page.locator("#tpl-preview-options li").first).to_have_text("Change the time")
    expect(page.locator("#tpl-segments")).to_contain_text("SMS segment")

    body.fill("{{ brand }}: {{ tracking }} {{ secret }}")
    expect(page.locator("#tpl-errors")).to_contain_text("unknown variable(s) secret")
    expect(body).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("button", name="Save as a new version")).to_be_disabled()

    body.fill("{{ brand }}: {{ tracking }} missed you 🚪")
    expect(page.locator("#tpl-errors li")).to_have_count(0)
    expect(page.locator("#tpl-preview-text")).to_have_text("Acme: TOR-000123 missed you 🚪")
    expect(page.locator("#tpl-segments")).to_contain_text("UCS-2")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator("#tpl-status")).to_have_text("Saved as version 1")
    expect(page.locator("#tpl-versions li")).to_have_count(1)

    page.get_by_role("button", name="Back to Doorstep's default").click()
    expect(page.locator("#tpl-source")).to_have_text("Doorstep default")
    expect(body).to_have_value(re.compile(r"could not deliver"))

    page.locator("#tpl-channel").select_option("whatsapp")
    expect(page.locator("#tpl-sid-row")).to_be_visible()
    expect(body).to_have_value(re.compile(r"What would you like to do"))
    page.locator("#tpl-sid").fill("HX123")
    expect(page.locator("#tpl-errors")).to_contain_text("content SID")


def test_a_test_send_appears_in_the_sandbox_window_the_editor_opened(served, browser):
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    sign_in(page, served + "/console/templates", "ada@acme.test")
    page.get_by_role("button", name="Failed attempt").click()
    expect(page.locator("#tpl-preview-text")).to_contain_text("could not deliver")

    with page.expect_popup() as opened:
        page.get_by_role("button", name="Open the sandbox").click()
    sandbox = opened.value
    sandbox.locator("#recipients li").first.locator("button").first.click()
    expect(sandbox.locator("#text")).to_be_enabled()

    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#tpl-test-status")).to_have_text("Sent to the sandbox.")
    assert page.locator("#tpl-session").input_value().startswith("sb_")
    sandbox.reload()
    expect(sandbox.locator("#log")).to_contain_text("could not deliver TOR-000123")
