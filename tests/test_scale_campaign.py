"""Two app processes on PostgreSQL send a 20,000-notification campaign; one is SIGKILLed mid-way.

The fake Twilio API runs in the test process and records every accepted message with the outbox
row it came from (the StatusCallback URL carries `?outbox=<id>`, a provider-side key). The
scheduler leader fires the notifications in batches; both processes' outbox workers claim rows with
`FOR UPDATE SKIP LOCKED`. When a third of the campaign has reached the fake, the leader is killed:
the survivor takes the scheduler lock, finishes firing, reclaims the dead process's leased rows
(marked uncertain, so it asks Twilio before re-sending) and delivers the rest.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time

import psycopg
import pytest

from tests.fakes.twilio_api import FakeTwilioApi
from tests.scale_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    AppProcess,
    app_environment,
    free_port,
    fresh_database,
    outbox_id_of,
    postgres_reachable,
    seed_campaign,
    wait_for,
)

pytestmark = [
    pytest.mark.scale,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not postgres_reachable(), reason="PostgreSQL is not reachable"),
]

CAMPAIGN = int(os.environ.get("DOORSTEP_SCALE_CAMPAIGN", "20000"))  # smaller only while iterating


class TestCampaign:
    async def test_a_campaign_reaches_the_provider_exactly_once_each_though_a_process_is_killed(
        self, tmp_path
    ):
        fake = FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN)
        fake_url = await fake.start()
        processes: list[AppProcess] = []
        try:
            with fresh_database() as database_url:
                seeded = await asyncio.to_thread(seed_campaign, database_url, CAMPAIGN)
                assert seeded["deliveries"] == CAMPAIGN
                for name in ("app-a", "app-b"):
                    port = free_port()
                    env = app_environment(
                        database_url,
                        port,
                        twilio_api_url=fake_url,
                        twilio_messages_per_second=100_000,  # a short code / messaging service pool
                        outbox_lease_seconds=20,  # a dead process's rows are taken over after this
                        twilio_timeout_seconds=5,
                        leader_retry_seconds=1,
                    )
                    processes.append(AppProcess(name, env, port, tmp_path))
                for process in processes:
                    process.start()
                await asyncio.gather(*(p.wait_ready() for p in processes))
                started = time.monotonic()

                async def one_leader() -> AppProcess | None:
                    leaders = [p for p in processes if await p.is_leader()]
                    return leaders[0] if len(leaders) == 1 else None

                leader = await wait_for(one_leader, 30, what="one scheduler leader")
                survivor = next(p for p in processes if p is not leader)

                async def a_third_sent() -> bool:
                    return len(fake.messages) >= CAMPAIGN // 3

                await wait_for(a_third_sent, 300, 0.05, what="a third of the campaign at the provider")
                sent_before = len(fake.messages)
                print(f"\n{sent_before} sent after {time.monotonic() - started:.1f}s, killing {leader.name}")
                leader.kill()
                at_kill = len(fake.messages)

                await wait_for(survivor.is_leader, 30, what="the survivor elected")
                print(f"{survivor.name} leads after {time.monotonic() - started:.1f}s")

                async def all_sent() -> bool:
                    return len({outbox_id_of(m) for m in fake.messages}) >= CAMPAIGN

                await wait_for(all_sent, 420, 1.0, what="every message at the provider")
                elapsed = time.monotonic() - started
                await asyncio.sleep(2)  # anything still in flight would show up as a duplicate now

                with psycopg.connect(database_url) as conn:
                    statuses = dict(
                        conn.execute("SELECT status, count(*) FROM notification GROUP BY status").fetchall()
                    )
                    outbox = dict(
                        conn.execute("SELECT status, count(*) FROM outboxmessage GROUP BY status").fetchall()
                    )
                    provider_ids = dict(conn.execute("SELECT id, provider_id FROM outboxmessage").fetchall())
                for process in processes:
                    process.stop()  # before the database is dropped
                print(
                    f"\n{CAMPAIGN} notifications, 2 processes, one SIGKILLed after {at_kill} sends:"
                    f" {elapsed:.1f}s, {CAMPAIGN / elapsed:.0f} messages/s end to end; outbox {outbox}"
                )
        finally:
            for process in processes:
                process.stop()
            await fake.stop()

        per_row = collections.Counter(outbox_id_of(m) for m in fake.messages)
        duplicates = {k: v for k, v in per_row.items() if v > 1}
        assert not duplicates, f"{len(duplicates)} outbox rows reached the provider twice"
        assert None not in per_row
        assert len(per_row) == CAMPAIGN
        assert len({m.to for m in fake.messages}) == CAMPAIGN, "every recipient got exactly one message"
        assert statuses == {"sent": CAMPAIGN}
        assert set(provider_ids) == set(per_row), "every outbox row reached the provider, no other did"
        sids = {outbox_id_of(m): m.sid for m in fake.messages}
        unsettled = [k for k, sid in provider_ids.items() if sid is not None and sids[k] != sid]
        assert not unsettled, "a row recorded a provider id the provider never gave it"
        assert (
            outbox.get("pending", 0) == 0 and outbox.get("sending", 0) == 0 and outbox.get("failed", 0) == 0
        )
