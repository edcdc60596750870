"""Schemathesis over the app's OpenAPI schema: generated valid and invalid requests never get a 5xx.

The app runs in-process (schemathesis's ASGI client runs its lifespan) on seeded SQLite and PostgreSQL, so
the generated requests reach real data: ACME's plan, deliveries and tracking numbers. Examples are
bounded per operation to keep the suite fast.
"""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from app import build_context, create_app
from core.config import Settings
from scheduling.plans import import_plan
from tests.conftest import make_tenant
from tests.plans import small_plan

MAX_EXAMPLES = 15


async def _seed(url: str) -> dict[str, str]:
    ctx = build_context(Settings(environment="test", database_url=url, _env_file=None))  # type: ignore[call-arg]
    try:
        acme = await make_tenant(ctx, "acme")
        await make_tenant(ctx, "globex")
        async with ctx.uow() as uow:
            from core.models import Retailer

            retailer = await uow.session.get(Retailer, acme.retailer_id)
            await import_plan(uow, retailer, small_plan(prefix="ACME"), speed_kmh=30.0)
        return acme.headers
    finally:
        await ctx.engine.dispose()


@pytest.fixture
def seeded_app(database_url):
    url = database_url  # a migrated SQLite copy, or the emptied PostgreSQL test database
    headers = asyncio.run(_seed(url))
    app = create_app(
        Settings(
            environment="test",
            database_url=url,
            public_url="http://testserver",
            scheduler_enabled=False,
            outbox_enabled=False,
            _env_file=None,  # type: ignore[call-arg]
        )
    )
    app.state.test_headers = headers
    return app


def fuzz(operation, mode: GenerationMode, headers: dict[str, str], failures: list[str]) -> bool:
    """Run one operation in one generation mode; False when the mode has nothing to generate."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def call(case) -> None:
        response = case.call(headers=headers)
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} ({mode}) -> {response.status_code}:"
                f" {response.text[:200]}"
            )

    try:
        call()
    except Unsatisfiable:
        return False  # e.g. no invalid request exists for an operation without inputs
    return True


def test_no_generated_request_gets_a_server_error(seeded_app):
    headers = dict(seeded_app.state.test_headers)
    api = schemathesis.openapi.from_asgi("/openapi.json", seeded_app)
    failures: list[str] = []
    walked = 0
    for result in api.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            walked += fuzz(operation, mode, headers, failures)
    assert walked >= 8, f"only {walked} operation/mode pairs walked"
    assert not failures, "\n".join(failures[:20])
