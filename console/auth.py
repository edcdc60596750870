"""Console accounts: argon2 password hashes, server-side sessions, CSRF tokens, sign-in rate limits.

The session cookie holds a random token; the database keeps only its SHA-256 (a stolen database
opens no session). Every session has its own CSRF token, which every state-changing request must
echo in the `csrf_token` form field or the `X-CSRF-Token` header.

Other routers use the dependencies `current_user` (any signed-in user) and `require_role(...)`;
both give a `ConsoleUser` whose `retailer_ids` every query must filter by.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from console.rendering import templates
from core.context import AppContext
from core.logging import get_logger
from core.models import Membership, Retailer, Role, User, WebSession
from core.redis import REDIS_ERRORS, shared_redis
from core.web import get_ctx

log = get_logger("doorstep.console.auth")

SESSION_COOKIE = "doorstep_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_TTL = timedelta(hours=12)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# failed sign-ins allowed per window, per e-mail address and per client address
SIGNIN_WINDOW_SECONDS = 15 * 60
SIGNIN_MAX_PER_EMAIL = 5
SIGNIN_MAX_PER_CLIENT = 20

_hasher = PasswordHasher()  # argon2id with RFC 9106's low-memory parameters (64 MiB, 3 passes)
# verified against when the e-mail is unknown, so timing does not tell which addresses exist
_dummy_hash: str | None = None


def use_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Swap the hasher's cost parameters (tests use cheap ones); returns the previous hasher."""
    global _hasher, _dummy_hash
    previous, _hasher, _dummy_hash = _hasher, hasher, None
    return previous


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hash


class UserExists(Exception):
    pass


class UnknownRetailer(Exception):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in user of one request, with the retailers they may see."""

    id: int
    email: str
    name: str
    role: Role
    retailer_ids: frozenset[int]
    csrf_token: str
    session_id: int

    @property
    def display_name(self) -> str:
        return self.name or self.email.split("@", 1)[0]

    def can_see(self, retailer_id: int | None) -> bool:
        return retailer_id is not None and retailer_id in self.retailer_ids


# --- users ---------------------------------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    email: str,
    role: Role,
    retailer_slugs: list[str],
    *,
    password: str | None = None,
    name: str = "",
) -> tuple[User, str]:
    """Create a user who belongs to the given retailers; returns the user and the password (generated
    when none is given)."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 200:
        raise ValueError("an e-mail address is required")
    if password is not None and len(password) < 8:
        raise ValueError("a password has at least 8 characters")
    if (await session.exec(select(User).where(User.email == email))).first() is not None:
        raise UserExists(email)
    retailers = list(
        (await session.exec(select(Retailer).where(col(Retailer.slug).in_(retailer_slugs)))).all()
    )
    missing = set(retailer_slugs) - {r.slug for r in retailers}
    if missing:
        raise UnknownRetailer(", ".join(sorted(missing)))
    if role != Role.admin and not retailers:
        raise ValueError("an agent or retailer admin belongs to at least one retailer")
    password = password or new_password()
    user = User(email=email, name=name, password_hash=hash_password(password), role=role)
    session.add(user)
    await session.flush()
    assert user.id is not None
    for retailer in retailers:
        assert retailer.id is not None
        session.add(Membership(user_id=user.id, retailer_id=retailer.id))
    await session.flush()
    return user, password


async def retailer_ids_of(session: AsyncSession, user: User) -> frozenset[int]:
    """An admin sees every retailer; anyone else only the retailers they belong to."""
    if user.role == Role.admin:
        return frozenset(r for r in (await session.exec(select(Retailer.id))).all() if r is not None)
    rows = (await session.exec(select(Membership.retailer_id).where(Membership.user_id == user.id))).all()
    return frozenset(rows)


# --- sessions ------------------------------------------------------------------------------------


async def open_session(session: AsyncSession, user_id: int, now: datetime) -> tuple[str, str]:
    """Start a session; returns the cookie token (stored only hashed) and the session's CSRF token."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=hash_token(token),
            user_id=user_id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
    )
    await session.flush()
    return token, csrf


async def user_for_token(session: AsyncSession, token: str, now: datetime) -> ConsoleUser | None:
    row = (
        await session.exec(
            select(WebSession, User)
            .join(User, col(User.id) == col(WebSession.user_id))
            .where(WebSession.token_hash == hash_token(token))
        )
    ).first()
    if row is None:
        return None
    web_session, user = row
    if web_session.expires_at <= now:
        return None
    assert user.id is not None and web_session.id is not None
    return ConsoleUser(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        retailer_ids=await retailer_ids_of(session, user),
        csrf_token=web_session.csrf_token,
        session_id=web_session.id,
    )


async def close_session(session: AsyncSession, token: str) -> None:
    await session.exec(delete(WebSession).where(col(WebSession.token_hash) == hash_token(token)))


# --- sign-in rate limiting -----------------------------------------------------------------------


class FailureCounter(Protocol):
    async def failures(self, key: str) -> int: ...
    async def record_failure(self, key: str) -> None: ...
    async def clear(self, key: str) -> None: ...


class MemoryFailureCounter:
    """Failed sign-ins per key in a sliding window, in this process only."""

    def __init__(self, window_seconds: float = SIGNIN_WINDOW_SECONDS) -> None:
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = {}

    def _live(self, key: str) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        limit = time.monotonic() - self.window
        while hits and hits[0] < limit:
            hits.popleft()
        return hits

    async def failures(self, key: str) -> int:
        return len(self._live(key))

    async def record_failure(self, key: str) -> None:
        self._live(key).append(time.monotonic())

    async def clear(self, key: str) -> None:
        self._hits.pop(key, None)


class RedisFailureCounter:
    """Failed sign-ins per key in a fixed window shared by every app process."""

    def __init__(self, redis: Any, window_seconds: int = SIGNIN_WINDOW_SECONDS) -> None:
        self.redis = redis
        self.window = window_seconds

    def _key(self, key: str) -> str:
        return "doorstep:signin:" + hashlib.sha256(key.encode()).hexdigest()

    async def failures(self, key: str) -> int:
        value = await self.redis.get(self._key(key))
        return int(value or 0)

    async def record_failure(self, key: str) -> None:
        name = self._key(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, self.window, nx=True)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        await self.redis.delete(self._key(key))


class SharedFailureCounter:
    """Redis when it answers (limits hold across app processes), this process's memory otherwise."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.memory = MemoryFailureCounter()

    async def _call(self, method: str, key: str) -> Any:
        redis = shared_redis(self.ctx)
        if redis.available and redis.client is not None:
            try:
                return await getattr(RedisFailureCounter(redis.client), method)(key)
            except REDIS_ERRORS as exc:
                redis.mark_down(exc)
        return await getattr(self.memory, method)(key)

    async def failures(self, key: str) -> int:
        count: int = await self._call("failures", key)
        return count

    async def record_failure(self, key: str) -> None:
        await self._call("record_failure", key)

    async def clear(self, key: str) -> None:
        await self._call("clear", key)


def failure_counter(ctx: AppContext) -> FailureCounter:
    counter: FailureCounter | None = ctx.components.get("console.signin_failures")
    if counter is None:
        counter = SharedFailureCounter(ctx)
        ctx.components["console.signin_failures"] = counter
    return counter


class SignInRefused(Exception):
    def __init__(self, reason: str, status_code: int) -> None:
        super().__init__(reason)
        self.status_code = status_code


async def sign_in(ctx: AppContext, email: str, password: str, client: str) -> tuple[str, str]:
    """Check the password and open a session. Raises SignInRefused (401 wrong, 429 too many tries)."""
    email = email.strip().lower()
    counter = failure_counter(ctx)
    email_key, client_key = f"email:{email}", f"client:{client}"
    if (
        await counter.failures(email_key) >= SIGNIN_MAX_PER_EMAIL
        or await counter.failures(client_key) >= SIGNIN_MAX_PER_CLIENT
    ):
        log.warning("console_signin_throttled")
        raise SignInRefused("Too many failed sign-ins. Wait 15 minutes and try again.", 429)
    async with ctx.uow() as uow:
        user = (await uow.session.exec(select(User).where(User.email == email))).first()
        valid = verify_password(user.password_hash if user else _dummy(), password) and user is not None
        if not valid or user is None or user.id is None:
            await counter.record_failure(email_key)
            await counter.record_failure(client_key)
            log.info("console_signin_failed")
            raise SignInRefused("Wrong e-mail address or password.", 401)
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
            uow.session.add(user)
        await uow.session.exec(
            delete(WebSession).where(
                col(WebSession.user_id) == user.id, col(WebSession.expires_at) <= ctx.clock()
            )
        )
        token, csrf = await open_session(uow.session, user.id, ctx.clock())
        await uow.commit()
        log.info("console_signed_in", user_id=user.id)
    await counter.clear(email_key)
    return token, csrf


def set_session_cookie(response: Response, ctx: AppContext, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=ctx.settings.public_url.startswith("https://"),
        path="/",
    )


# --- dependencies --------------------------------------------------------------------------------


def _wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached by Starlette: the endpoint's Form() fields still work
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def current_user(request: Request, ctx: Annotated[AppContext, Depends(get_ctx)]) -> ConsoleUser:
    """The signed-in user; 401 (or a redirect to the sign-in page for a browser's GET) otherwise,
    403 when a state-changing request does not carry the session's CSRF token."""
    token = request.cookies.get(SESSION_COOKIE)
    user = None
    if token:
        async with ctx.uow() as uow:
            user = await user_for_token(uow.session, token, ctx.clock())
    if user is None:
        if _wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise HTTPException(
                status.HTTP_303_SEE_OTHER,
                "sign in first",
                headers={"Location": f"/console/login?next={_quote(target)}"},
            )
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")
    if request.method in UNSAFE_METHODS:
        submitted = await _submitted_csrf(request)
        if not submitted or not secrets.compare_digest(submitted, user.csrf_token):
            log.warning("console_csrf_refused", user_id=user.id)
            raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    request.state.console_user = user
    return user


def require_role(*roles: Role) -> Callable[..., Awaitable[ConsoleUser]]:
    """A dependency that admits only users with one of `roles` (admin is always admitted)."""
    allowed = frozenset(roles) | {Role.admin}

    async def dependency(user: Annotated[ConsoleUser, Depends(current_user)]) -> ConsoleUser:
        if user.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "your role cannot do this")
        return user

    return dependency


CurrentUser = Annotated[ConsoleUser, Depends(current_user)]
AdminUser = Annotated[ConsoleUser, Depends(require_role(Role.retailer_admin))]  # and admins


def _quote(path: str) -> str:
    return quote(path, safe="/")


def same_origin(request: Request, ctx: AppContext) -> bool:
    """Refuse a sign-in form posted from another site (login CSRF); browsers send Origin on POST."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    allowed = {ctx.settings.public_url.rstrip("/"), f"{request.url.scheme}://{request.url.netloc}"}
    return origin.rstrip("/") in allowed


def safe_next(target: str | None) -> str:
    """Only local console paths: never an open redirect to another site."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console"


# --- routes --------------------------------------------------------------------------------------


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/login")
    async def login_page(request: Request, next: str | None = None) -> Response:
        return templates.TemplateResponse(request, "login.html", {"next": safe_next(next), "error": None})

    @router.post("/login")
    async def login(
        request: Request,
        ctx: Annotated[AppContext, Depends(get_ctx)],
        email: Annotated[str, Form(max_length=200)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=500)] = "/console",
    ) -> Response:
        if not same_origin(request, ctx):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site sign-in refused")
        client = request.client.host if request.client else "unknown"
        try:
            token, _csrf = await sign_in(ctx, email, password, client)
        except SignInRefused as exc:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"next": safe_next(next), "error": str(exc), "email": email},
                status_code=exc.status_code,
            )
        response = RedirectResponse(safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
        set_session_cookie(response, ctx, token)
        return response

    @router.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        """Who is signed in, the retailers they see, and the CSRF token scripts send back."""
        return {
            "id": user.id,
            "email": user.email,
            "name": user.display_name,
            "role": user.role,
            "retailer_ids": sorted(user.retailer_ids),
            "csrf_token": user.csrf_token,
        }

    @router.post("/logout")
    async def logout(
        request: Request, ctx: Annotated[AppContext, Depends(get_ctx)], user: CurrentUser
    ) -> Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        async with ctx.uow() as uow:
            await close_session(uow.session, token)
            await uow.commit()
        log.info("console_signed_out", user_id=user.id)
        response = RedirectResponse("/console/login", status_code=status.HTTP_303_SEE_OTHER)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router
