"""Console accounts: sign-in, sessions stored hashed, CSRF, rate limits, roles."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from console.auth import SESSION_COOKIE, hash_token, verify_password
from core.models import Role, User, WebSession
from tests.console_helpers import (
    add_user,
    cheap_password_hashing,  # noqa: F401 - autouse fixture
    sign_in,
)


class TestSignIn:
    async def test_a_user_signs_in_and_the_session_cookie_is_http_only_and_same_site_lax(
        self, client, ctx, acme
    ):
        await add_user(ctx, "ana@acme.test", ["acme"])
        response = await client.post(
            "/console/login", data={"email": "Ana@Acme.test", "password": "correct horse", "next": "/console"}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/console"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
        assert "Secure" not in cookie  # PUBLIC_URL is http in tests
        me = await client.get("/console/me")
        assert me.json()["email"] == "ana@acme.test"
        assert me.json()["retailer_ids"] == [acme.retailer_id]

    async def test_only_a_hash_of_the_session_token_and_of_the_password_is_stored(self, client, ctx, acme):
        await add_user(ctx, "ana@acme.test", ["acme"])
        await sign_in(client, "ana@acme.test")
        token = client.cookies[SESSION_COOKIE]
        async with ctx.uow() as uow:
            sessions = (await uow.session.exec(select(WebSession))).all()
            user = (await uow.session.exec(select(User))).one()
            assert [s.token_hash for s in sessions] == [hash_token(token)]
            assert "correct horse" not in user.password_hash
            assert user.password_hash.startswith("$argon2")
            assert verify_password(user.password_hash, "correct horse")

    async def test_a_wrong_password_is_refused_with_the_same_answer_as_an_unknown_address(
        self, client, ctx, acme
    ):
        await add_user(ctx, "ana@acme.test", ["acme"])
        wrong = await client.post("/console/login", data={"email": "ana@acme.test", "password": "nope nope"})
        unknown = await client.post(
            "/console/login", data={"email": "who@acme.test", "password": "nope nope"}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert "Wrong e-mail address or password." in wrong.text
        assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
        assert (await client.get("/console/me")).status_code == 401

    async def test_repeated_failures_lock_the_address_out_even_with_the_right_password(
        self, client, ctx, acme
    ):
        await add_user(ctx, "ana@acme.test", ["acme"])
        for _ in range(5):
            response = await client.post(
                "/console/login", data={"email": "ana@acme.test", "password": "guess1234"}
            )
            assert response.status_code == 401
        locked = await client.post(
            "/console/login", data={"email": "ana@acme.test", "password": "correct horse"}
        )
        assert locked.status_code == 429
        assert "Too many failed sign-ins" in locked.text

    async def test_a_sign_in_form_posted_from_another_site_is_refused(self, client, ctx, acme):
        await add_user(ctx, "ana@acme.test", ["acme"])
        response = await client.post(
            "/console/login",
            data={"email": "ana@acme.test", "password": "correct horse"},
            headers={"Origin": "https://evil.example"},
        )
        assert response.status_code == 403

    async def test_the_next_page_after_sign_in_is_never_another_site(self, client, ctx, acme):
        await add_user(ctx, "ana@acme.test", ["acme"])
        response = await client.post(
            "/console/login",
            data={"email": "ana@acme.test", "password": "correct horse", "next": "//evil.example/console"},
        )
        assert response.headers["location"] == "/console"

    async def test_console_pages_forbid_framing_and_foreign_scripts(self, client):
        page = await client.get("/console/login")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" not in (await client.get("/healthz")).headers

    async def test_a_browser_that_is_not_signed_in_is_sent_to_the_sign_in_page(self, client):
        response = await client.get("/console/me", headers={"Accept": "text/html"})
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login?next=/console/me")
        page = await client.get("/console/login")
        assert page.status_code == 200 and 'name="password"' in page.text


class TestSessions:
    async def test_sign_out_ends_the_session_on_the_server(self, client, ctx, acme):
        await add_user(ctx, "ana@acme.test", ["acme"])
        signed = await sign_in(client, "ana@acme.test")
        token = client.cookies[SESSION_COOKIE]
        response = await client.post("/console/logout", data={"csrf_token": signed.csrf})
        assert response.status_code == 303
        client.cookies.set(SESSION_COOKIE, token)  # a copied cookie no longer opens anything
        assert (await client.get("/console/me")).status_code == 401

    async def test_an_expired_session_is_refused(self, client, ctx, acme):
        await add_user(ctx, "ana@acme.test", ["acme"])
        await sign_in(client, "ana@acme.test")
        async with ctx.uow() as uow:
            web_session = (await uow.session.exec(select(WebSession))).one()
            web_session.expires_at = web_session.created_at
            uow.session.add(web_session)
            await uow.commit()
        assert (await client.get("/console/me")).status_code == 401
        await sign_in(client, "ana@acme.test")  # signing in again sweeps the expired session away
        async with ctx.uow() as uow:
            assert len((await uow.session.exec(select(WebSession))).all()) == 1


class TestCsrf:
    async def test_a_state_changing_request_without_the_csrf_token_is_refused(self, client, ctx, acme):
        await add_user(ctx, "ana@acme.test", ["acme"])
        await sign_in(client, "ana@acme.test")
        assert (await client.post("/console/logout")).status_code == 403
        assert (await client.post("/console/logout", data={"csrf_token": "forged"})).status_code == 403
        assert (await client.post("/console/logout", headers={"X-CSRF-Token": "forged"})).status_code == 403
        assert (await client.get("/console/me")).status_code == 200  # still signed in

    async def test_each_session_has_its_own_csrf_token(self, client, ctx, acme):
        await add_user(ctx, "ana@acme.test", ["acme"])
        first = await sign_in(client, "ana@acme.test")
        second = await sign_in(client, "ana@acme.test")
        assert first.csrf != second.csrf
        assert (await client.post("/console/logout", data={"csrf_token": first.csrf})).status_code == 403


class TestUsers:
    async def test_an_admin_sees_every_retailer_and_an_agent_only_their_own(self, client, ctx, acme, globex):
        await add_user(ctx, "root@ops.test", [], role=Role.admin)
        await add_user(ctx, "ana@acme.test", ["acme"])
        await sign_in(client, "root@ops.test")
        assert (await client.get("/console/me")).json()["retailer_ids"] == sorted(
            [acme.retailer_id, globex.retailer_id]
        )
        await sign_in(client, "ana@acme.test")
        assert (await client.get("/console/me")).json()["retailer_ids"] == [acme.retailer_id]


class TestUserCommand:
    def test_user_create_prints_a_generated_password_once_and_refuses_an_unknown_retailer(
        self, tmp_path, sqlite_template, monkeypatch, capsys
    ):
        import asyncio
        import json
        import shutil

        from app import build_context, main
        from core.config import Settings
        from tests.conftest import make_tenant

        database = tmp_path / "cli.db"
        shutil.copy(sqlite_template, database)
        url = f"sqlite:///{database}"
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("LOG_LEVEL", "WARNING")

        async def seed():
            ctx = build_context(Settings(database_url=url, _env_file=None))
            await make_tenant(ctx, "acme")
            await ctx.engine.dispose()

        asyncio.run(seed())
        assert main(["user", "create", "Ana@Acme.test", "--role", "agent", "--retailer", "acme"]) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed["user"] == "ana@acme.test" and printed["retailers"] == ["acme"]
        assert len(printed["password"]) >= 16
        assert main(["user", "create", "bob@acme.test", "--role", "agent", "--retailer", "nope"]) == 1
        assert "UnknownRetailer" in capsys.readouterr().err
        assert main(["user", "create", "ana@acme.test", "--role", "agent", "--retailer", "acme"]) == 1
        assert "UserExists" in capsys.readouterr().err
        given = ["user", "create", "cy@acme.test", "--role", "retailer_admin", "--retailer", "acme"]
        assert main([*given, "--password", "long enough secret"]) == 0
        assert "password" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


class TestSharedLimits:
    async def test_failed_sign_ins_are_counted_in_redis_so_every_process_sees_them(self):
        import redis.asyncio as aioredis

        from console.auth import SharedFailureCounter
        from core.redis import COMPONENT, SharedRedis

        url = "redis://127.0.0.1:6379/0"
        probe = aioredis.from_url(url, socket_connect_timeout=0.5)
        try:
            await probe.ping()
        except Exception:
            print(f"\nSKIP shared sign-in limits: no Redis at {url}")
            pytest.skip(f"no Redis at {url}")
        finally:
            await probe.aclose()

        class Process:
            def __init__(self):
                self.components = {COMPONENT: SharedRedis(url)}

        first, second = Process(), Process()
        for process in (first, second):
            await process.components[COMPONENT].start()
        key = f"email:test-{uuid.uuid4().hex}@acme.test"
        try:
            await SharedFailureCounter(first).record_failure(key)
            await SharedFailureCounter(first).record_failure(key)
            assert await SharedFailureCounter(second).failures(key) == 2
            await SharedFailureCounter(second).clear(key)
            assert await SharedFailureCounter(first).failures(key) == 0
        finally:
            for process in (first, second):
                await process.components[COMPONENT].stop()

    def test_the_session_cookie_is_secure_when_the_public_url_is_https(self):
        from fastapi.responses import Response

        from console.auth import set_session_cookie
        from core.config import Settings

        class Context:
            settings = Settings(public_url="https://doorstep.example", _env_file=None)

        response = Response()
        set_session_cookie(response, Context(), "token")
        cookie = response.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
