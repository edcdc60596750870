"""The pictures the console draws itself: the route timeline, the map, the dashboard's figures."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from bot.handoff import request_person
from console.dashboard import daily_figures
from console.pictures import MapPoint, Series, bar_chart_svg, map_svg, timeline_from_plan, timeline_svg
from core.models import (
    Author,
    ChangeLog,
    Channel,
    Conversation,
    Delivery,
    Direction,
    Message,
    Notification,
    OutboxMessage,
    OutboxStatus,
)
from tests.console_helpers import load_small_plan

DAY = date(2026, 12, 3)
TZ = "America/Toronto"


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 3, hour + 5, minute, tzinfo=UTC)  # Toronto is UTC-5 in December


class TestTimeline:
    def svg(self, now: datetime) -> str:
        stops = [
            ("T001", (32400, 39600), 30000, 300, True, False),
            ("T002", (36000, 43200), 36500, 300, False, True),
            ("T003", (36000, 39000), 40000, 300, False, False),  # arrives after its window: late
        ]
        offers = [
            (at(12), at(14)),
            (at(14), at(16)),
            (at(12) + timedelta(days=1), at(14) + timedelta(days=1)),
        ]
        timeline = timeline_from_plan(
            day=DAY,
            timezone=TZ,
            vehicle_name="Van <1>",
            shift=(28800, 64800),
            stops=stops,
            offers=offers,
            now=now,
        )
        return str(timeline_svg(timeline))

    def test_each_stop_is_a_block_and_this_stop_is_highlighted(self):
        svg = self.svg(at(10, 30))
        assert svg.count('class="this-stop"') == 1
        assert "2. T002: window 10:00–12:00, arrival 10:08 (planned)" in svg
        assert "1. T001: window 09:00–11:00, arrival 08:20 (visited)" in svg
        assert "3. T003: window 10:00–10:50, arrival 11:06 (late)" in svg

    def test_only_the_windows_still_offered_on_the_plans_day_are_shaded(self):
        svg = self.svg(at(10, 30))
        assert re.findall(r"<title>Can offer ([^<]+)</title>", svg) == ["12:00–14:00", "14:00–16:00"]
        assert "Windows that can be offered: 12:00–14:00, 14:00–16:00." in svg

    def test_the_vehicles_progress_is_shaded_up_to_now_on_the_day_itself(self):
        assert "Vehicle progress so far" in self.svg(at(10, 30))
        assert ">now</text>" in self.svg(at(10, 30))
        earlier = self.svg(datetime(2026, 12, 1, 15, tzinfo=UTC))
        assert ">now</text>" not in earlier
        assert "Vehicle progress so far" in earlier  # through the visited stop

    def test_names_are_escaped(self):
        assert "Van &lt;1&gt;" in self.svg(at(10))


class TestMapAndCharts:
    def test_the_map_draws_the_address_and_numbered_pickup_points_with_a_scale(self):
        svg = str(
            map_svg(
                [
                    MapPoint(-79.40, 43.66, "1 Queen <St>", "address"),
                    MapPoint(-79.41, 43.65, "Lockers", "pickup"),
                    MapPoint(-79.39, 43.67, "Books", "chosen"),
                ]
            )
        )
        assert svg.count('class="pickup"') == 2 and svg.count('class="address"') == 1
        assert "1 Queen &lt;St&gt;" in svg and "<St>" not in svg
        assert re.search(r">\d+(\.\d+)? k?m</text>", svg)

    def test_a_chart_has_one_bar_per_day_and_series(self):
        svg = str(
            bar_chart_svg(
                "Changes", ["Mon", "Tue"], [Series("a", "#000", [1, 3]), Series("b", "#111", [0, 2])]
            )
        )
        assert len(re.findall(r"<rect [^>]*><title>", svg)) == 4
        assert "Tue · a: 3" in svg and 'aria-label="Changes: a 4, b 2"' in svg


class TestDashboardFigures:
    async def test_notifications_changes_and_hand_offs_are_counted_per_local_day(self, ctx, acme, globex):
        await load_small_plan(ctx, acme.retailer_id, "A")
        now = datetime(2026, 12, 2, 17, tzinfo=UTC)  # noon in Toronto
        async with ctx.uow() as uow:
            from sqlmodel import select

            delivery = (await uow.session.exec(select(Delivery).where(Delivery.tracking == "A001"))).one()
            conversation = Conversation(
                channel=Channel.sms,
                address="+14165550401",
                retailer_id=acme.retailer_id,
                recipient_id=delivery.recipient_id,
            )
            uow.session.add(conversation)
            await uow.session.flush()
            for i, state in enumerate([OutboxStatus.delivered, OutboxStatus.sent, OutboxStatus.failed]):
                outbox = OutboxMessage(
                    retailer_id=acme.retailer_id,
                    recipient_id=delivery.recipient_id,
                    channel=Channel.sms,
                    to_address="+14165550401",
                    body="notice",
                    idempotency_key=f"n{i}",
                    status=state,
                    created_at=now - timedelta(hours=2),
                )
                uow.session.add(outbox)
                await uow.session.flush()
                uow.session.add(
                    Notification(
                        retailer_id=acme.retailer_id,
                        delivery_id=delivery.id,
                        event="scheduled",
                        dedupe_key=f"k{i}",
                        due_at=now,
                        status="sent",
                        outbox_id=outbox.id,
                    )
                )
            uow.session.add(  # the recipient answered an hour later
                Message(
                    conversation_id=conversation.id,
                    channel=Channel.sms,
                    direction=Direction.inbound,
                    author=Author.recipient,
                    text="ok",
                    created_at=now - timedelta(hours=1),
                )
            )
            request_person(uow, conversation, "asked", now - timedelta(days=1, minutes=5))
            uow.session.add(
                Message(
                    conversation_id=conversation.id,
                    channel=Channel.sms,
                    direction=Direction.outbound,
                    author=Author.system,
                    text="ana took over",
                    payload="console:taken_over",
                    internal_note=True,
                    created_at=now - timedelta(days=1),
                )
            )
            for actor, when in ((Author.recipient, now), (Author.agent, now), (Author.system, now)):
                uow.session.add(
                    ChangeLog(
                        retailer_id=acme.retailer_id,
                        delivery_id=delivery.id,
                        kind="rescheduled",
                        actor=actor,
                        created_at=when,
                    )
                )
            uow.session.add(  # another retailer's change is never counted
                ChangeLog(
                    retailer_id=globex.retailer_id, kind="rescheduled", actor=Author.agent, created_at=now
                )
            )
            await uow.commit()
        async with ctx.uow() as uow:
            figures = await daily_figures(uow.session, {acme.retailer_id}, days=3, now=now)
        assert [f.day.isoformat() for f in figures] == ["2026-11-30", "2026-12-01", "2026-12-02"]
        today, yesterday = figures[-1], figures[-2]
        assert (today.sent, today.delivered, today.answered, today.failed) == (2, 1, 2, 1)
        assert (today.recipient_changes, today.agent_changes) == (1, 1)
        assert (today.handoffs, yesterday.handoffs) == (0, 1)
        assert (today.handoff_requests, yesterday.handoff_requests) == (0, 1)
