"""Retailers and their API keys."""

from __future__ import annotations

import re

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import ApiKey, Retailer
from core.security import hash_api_key, new_api_key

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class RetailerExists(Exception):
    pass


class InvalidSlug(ValueError):
    pass


async def create_retailer(
    session: AsyncSession, slug: str, name: str, **settings: object
) -> tuple[Retailer, str]:
    """Create a retailer and its first API key; the key is returned once and stored only hashed."""
    if not SLUG.match(slug):
        raise InvalidSlug("a slug is 2-63 lowercase letters, digits and dashes")
    if (await session.exec(select(Retailer).where(Retailer.slug == slug))).first():
        raise RetailerExists(slug)
    retailer = Retailer(slug=slug, name=name, brand_name=name, **settings)  # type: ignore[arg-type]
    session.add(retailer)
    await session.flush()
    key = await issue_api_key(session, retailer)
    return retailer, key


async def issue_api_key(session: AsyncSession, retailer: Retailer) -> str:
    assert retailer.id is not None
    key = new_api_key()
    session.add(ApiKey(retailer_id=retailer.id, key_hash=hash_api_key(key), prefix=key[:8]))
    await session.flush()
    return key


async def retailer_for_key(session: AsyncSession, key: str) -> Retailer | None:
    row = (
        await session.exec(
            select(Retailer)
            .join(ApiKey, ApiKey.retailer_id == Retailer.id)  # type: ignore[arg-type]
            .where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at == None)  # noqa: E711
        )
    ).first()
    return row
