"""The console's template editor: retailer admins only, their own retailers only, CSRF on every change."""

from __future__ import annotations

from sqlmodel import select

from channels.sandbox import new_session_id
from core.models import Recipient, Role
from tests.conftest import make_tenant
from tests.console_helpers import add_user, load_small_plan, sign_in

KEY = "attempt_failed/en/sms"


async def admins(ctx, client):
    acme = await make_tenant(ctx, "acme")
    globex = await make_tenant(ctx, "globex")
    await add_user(ctx, "ada@acme.test", ["acme"], role=Role.retailer_admin)
    await add_user(ctx, "ann@acme.test", ["acme"], role=Role.agent)
    return acme, globex


class TestEditorAccess:
    async def test_the_page_lists_the_events_for_a_retailer_admin(self, ctx, client):
        await admins(ctx, client)
        await sign_in(client, "ada@acme.test")
        page = await client.get("/console/templates", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "Failed attempt" in page.text and "/console/templates/static/editor.js" in page.text
        script = await client.get("/console/templates/static/editor.js")
        assert script.status_code == 200 and "preview" in script.text

    async def test_an_agent_cannot_edit_templates(self, ctx, client):
        acme, _ = await admins(ctx, client)
        who = await sign_in(client, "ann@acme.test")
        response = await client.get(f"/console/templates/api/{acme.retailer_id}/{KEY}", headers=who.headers)
        assert response.status_code == 403

    async def test_a_signed_out_browser_is_sent_to_sign_in(self, client):
        response = await client.get("/console/templates", headers={"Accept": "text/html"})
        assert response.status_code == 303 and "/console/login" in response.headers["location"]

    async def test_another_retailers_templates_answer_404_on_every_route(self, ctx, client):
        _, globex = await admins(ctx, client)
        who = await sign_in(client, "ada@acme.test")
        base = f"/console/templates/api/{globex.retailer_id}"
        calls = [
            ("GET", base, None),
            ("GET", f"{base}/{KEY}", None),
            ("PUT", f"{base}/{KEY}", {"body": "{{ brand }}"}),
            ("POST", f"{base}/{KEY}/preview", {"body": "{{ brand }}"}),
            ("GET", f"{base}/{KEY}/versions", None),
            ("POST", f"{base}/{KEY}/rollback", {"version": 0}),
            ("POST", f"{base}/{KEY}/test", {"session_id": "sb_1_0000000000000000_00000000000000000000"}),
        ]
        for method, url, body in calls:
            response = await client.request(method, url, json=body, headers=who.headers)
            assert response.status_code == 404, (method, url, response.status_code)

    async def test_a_change_without_the_csrf_token_is_refused(self, ctx, client):
        acme, _ = await admins(ctx, client)
        await sign_in(client, "ada@acme.test")
        url = f"/console/templates/api/{acme.retailer_id}/{KEY}"
        response = await client.put(url, json={"body": "{{ brand }}: {{ tracking }}"})
        assert response.status_code == 403


class TestEditing:
    async def test_save_preview_versions_and_rollback_through_the_console(self, ctx, client):
        acme, _ = await admins(ctx, client)
        who = await sign_in(client, "ada@acme.test")
        base = f"/console/templates/api/{acme.retailer_id}/{KEY}"
        bad = await client.post(
            base + "/preview", json={"body": "{{ brand }} {{ oops }}"}, headers=who.headers
        )
        assert bad.json()["errors"][0]["msg"].startswith("unknown variable(s) oops")
        saved = await client.put(
            base, json={"body": "{{ brand }}: {{ tracking }} failed."}, headers=who.headers
        )
        assert saved.status_code == 200 and saved.json()["created_by"] == "ada@acme.test"
        versions = (await client.get(base + "/versions", headers=who.headers)).json()["versions"]
        assert [v["version"] for v in versions] == [1]
        back = await client.post(base + "/rollback", json={"version": 0}, headers=who.headers)
        assert back.json()["source"] == "default"

    async def test_a_test_send_lands_in_the_sandbox_session_of_the_retailers_recipient(
        self, ctx, client, settings
    ):
        acme, globex = await admins(ctx, client)
        await load_small_plan(ctx, acme.retailer_id, "A")
        await load_small_plan(ctx, globex.retailer_id, "G")
        async with ctx.uow() as uow:
            mine = (
                await uow.session.exec(select(Recipient).where(Recipient.retailer_id == acme.retailer_id))
            ).first()
            theirs = (
                await uow.session.exec(select(Recipient).where(Recipient.retailer_id == globex.retailer_id))
            ).first()
        who = await sign_in(client, "ada@acme.test")
        base = f"/console/templates/api/{acme.retailer_id}/{KEY}"
        foreign = await client.post(
            base + "/test", json={"session_id": new_session_id(settings, theirs.id)}, headers=who.headers
        )
        assert foreign.status_code == 404
        session_id = new_session_id(settings, mine.id)
        sent = await client.post(base + "/test", json={"session_id": session_id}, headers=who.headers)
        assert sent.status_code == 200, sent.text
        transcript = (await client.get(f"/sandbox/api/sessions/{session_id}")).json()["messages"]
        assert "could not deliver TOR-000123" in transcript[-1]["text"]
        assert transcript[-1]["options"][0]["payload"] == "menu:reschedule"
