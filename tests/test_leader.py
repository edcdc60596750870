"""One active scheduler: the leader lock on PostgreSQL, the lone process on SQLite."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap

import psycopg
import pytest

from core.leader import Leadership, asyncpg_dsn, lock_key
from core.observability import Metrics


class RecordingDuty:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")


def fast(url: str, duty: RecordingDuty, **kwargs) -> Leadership:
    return Leadership(url, duty, retry_seconds=0.1, check_seconds=0.1, **kwargs)


class TestElection:
    async def test_on_sqlite_the_one_process_leads_at_once(self, tmp_path):
        duty = RecordingDuty()
        leadership = fast(f"sqlite:///{tmp_path / 'x.db'}", duty)
        await leadership.start()
        assert leadership.is_leader and duty.calls == ["start"]
        await leadership.stop()
        assert not leadership.is_leader and duty.calls == ["start", "stop"]

    async def test_of_two_processes_on_postgresql_exactly_one_leads_and_the_other_takes_over(self, pg_url):
        first, second = RecordingDuty(), RecordingDuty()
        metrics = Metrics()
        a = fast(pg_url, first, metrics=metrics)
        b = fast(pg_url, second)
        await a.start()
        await asyncio.wait_for(a.elected.wait(), 5)
        await b.start()
        await asyncio.sleep(0.5)
        assert (a.is_leader, b.is_leader) == (True, False)
        assert second.calls == []
        assert "doorstep_scheduler_leader 1.0" in metrics.render()[0].decode()

        await a.stop()
        await asyncio.wait_for(b.elected.wait(), 5)
        assert first.calls == ["start", "stop"] and second.calls == ["start"]
        assert "doorstep_scheduler_leader 0.0" in metrics.render()[0].decode()
        await b.stop()

    async def test_a_leader_whose_session_is_ended_steps_down_and_is_elected_again(self, pg_url):
        duty = RecordingDuty()
        leadership = fast(pg_url, duty, name="doorstep.test-terminate")
        await leadership.start()
        await asyncio.wait_for(leadership.elected.wait(), 5)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                ("doorstep-leader:doorstep.test-terminate",),
            )
        for _ in range(100):
            if duty.calls[-2:] == ["stop", "start"]:
                break
            await asyncio.sleep(0.05)
        assert duty.calls == ["start", "stop", "start"] and leadership.is_leader
        await leadership.stop()

    async def test_a_killed_leader_process_releases_the_lock_to_a_survivor(self, pg_url):
        script = textwrap.dedent(
            f"""
            import asyncio
            from core.leader import Leadership
            class Duty:
                async def start(self): print("leading", flush=True)
                async def stop(self): pass
            async def main():
                await Leadership({pg_url!r}, Duty(), name="doorstep.test-kill").start()
                await asyncio.sleep(60)
            asyncio.run(main())
            """
        )
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, env=dict(os.environ)
        )
        try:
            assert holder.stdout is not None

            async def wait_until_leading() -> bool:
                while line := await holder.stdout.readline():
                    if line.startswith(b"leading"):
                        return True
                return False

            assert await asyncio.wait_for(wait_until_leading(), 15)
            duty = RecordingDuty()
            survivor = fast(pg_url, duty, name="doorstep.test-kill")
            await survivor.start()
            await asyncio.sleep(0.5)
            assert not survivor.is_leader
            holder.send_signal(signal.SIGKILL)
            await asyncio.wait_for(survivor.elected.wait(), 10)
            assert duty.calls == ["start"]
            await survivor.stop()
        finally:
            if holder.returncode is None:
                holder.kill()
            await holder.wait()


class TestLockKeys:
    def test_lock_keys_are_stable_signed_64_bit_integers(self):
        assert lock_key("doorstep.scheduler") == lock_key("doorstep.scheduler")
        assert lock_key("a") != lock_key("b")
        assert -(2**63) <= lock_key("doorstep.scheduler") < 2**63

    def test_the_driver_suffix_is_dropped_for_asyncpg(self):
        assert asyncpg_dsn("postgresql+asyncpg://u:p@h:5432/d") == "postgresql://u:p@h:5432/d"


@pytest.fixture
def pg_url(request):
    if "postgresql" not in os.environ.get("DOORSTEP_TEST_DATABASES", "sqlite,postgresql"):
        pytest.skip("PostgreSQL tests disabled by DOORSTEP_TEST_DATABASES")
    url: str = request.getfixturevalue("postgres_database")
    return url
