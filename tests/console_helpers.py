"""Helpers for the console tests: users of a retailer and signed-in HTTP clients."""

from __future__ import annotations

from dataclasses import dataclass

from httpx import AsyncClient

from console.auth import create_user
from core.context import AppContext
from core.models import Role


@dataclass
class SignedIn:
    email: str
    password: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}


async def add_user(
    ctx: AppContext, email: str, slugs: list[str], role: Role = Role.agent, password: str = "correct horse"
) -> str:
    async with ctx.uow() as uow:
        await create_user(uow.session, email, role, slugs, password=password)
        await uow.commit()
    return password


async def sign_in(client: AsyncClient, email: str, password: str = "correct horse") -> SignedIn:
    """Sign in through the form, as a browser does, and read the CSRF token from a page."""
    client.cookies.clear()
    response = await client.post("/console/login", data={"email": email, "password": password})
    assert response.status_code == 303, response.text
    me = await client.get("/console/me")
    assert me.status_code == 200, me.text
    return SignedIn(email, password, me.json()["csrf_token"])
