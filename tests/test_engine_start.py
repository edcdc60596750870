"""The engine's starter: the parsers warm in a thread; in production the start-up heap is then frozen
out of the garbage collector's sight, so a full collection no longer walks it (80-120 ms each)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from bot.engine import start_engine


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process keeps collecting what it frees


async def started_and_warmed(ctx) -> None:
    stop = await start_engine(None, ctx)
    await stop()  # waits for the warm-up
    await asyncio.sleep(0)  # the warm-up's done callbacks run


async def test_in_production_the_warmed_heap_is_frozen(ctx, unfrozen):
    ctx.settings = ctx.settings.model_copy(update={"environment": "production"})
    await started_and_warmed(ctx)
    assert gc.get_freeze_count() > 10_000  # the word lists, parsers and models at least


async def test_elsewhere_nothing_is_frozen(ctx, unfrozen):
    assert ctx.settings.environment != "production"
    await started_and_warmed(ctx)
    assert gc.get_freeze_count() == 0
