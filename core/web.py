"""FastAPI dependencies shared by every router: the app context, units of work, the retailer of a key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.context import AppContext
from core.db import UnitOfWork
from core.models import Retailer
from core.tenants import retailer_for_key

bearer = HTTPBearer(auto_error=False, description="A retailer's API key")


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_uow(ctx: Annotated[AppContext, Depends(get_ctx)]) -> AsyncIterator[UnitOfWork]:
    async with ctx.uow() as uow:
        yield uow


async def current_retailer(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Retailer:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a Bearer API key is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    async with ctx.sessionmaker() as session:
        retailer = await retailer_for_key(session, credentials.credentials)
    if retailer is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return retailer


Ctx = Annotated[AppContext, Depends(get_ctx)]
# "function" scope: the unit of work ends before the response is sent, so whatever its rollback
# raises becomes this request's answer instead of a dropped keep-alive connection after it
Uow = Annotated[UnitOfWork, Depends(get_uow, scope="function")]
CurrentRetailer = Annotated[Retailer, Depends(current_retailer)]
