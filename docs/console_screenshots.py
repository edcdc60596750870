"""Take the console screenshots under docs/ with Playwright, from a running app on the demo dataset.

    python app.py demo && python app.py serve --port 8000 &
    python docs/console_screenshots.py http://127.0.0.1:8000

It signs in as the demo agent of North Outfitters, opens the conversation that asks for a person,
takes it over, answers, and opens the reschedule panel. Uses Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main(base: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(base + "/console")
        page.get_by_label("E-mail").fill("agent@north-outfitters.demo")
        page.get_by_label("Password").fill("doorstep-demo")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console")
        page.locator("#conv-list li a").first.click()
        page.wait_for_load_state()
        page.screenshot(path=str(DOCS / "console-inbox.png"))
        if page.locator("#take-over").count():
            page.locator("#take-over").click()
            page.wait_for_load_state()
            page.locator("#reply-text").fill(
                "Hi, this is Jordan from North Outfitters. I can move it to the afternoon."
            )
            page.locator("#send").click()
            page.wait_for_load_state()
        page.locator("#act-reschedule summary").click()
        page.screenshot(path=str(DOCS / "console-conversation.png"))
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
