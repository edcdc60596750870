"""The HTTP edge: request ids, Prometheus metrics, body size limits, health."""

from __future__ import annotations

from core.models import KeptEvent


class TestTheEdge:
    async def test_every_response_carries_a_request_id_and_keeps_a_given_one(self, client):
        response = await client.get("/healthz")
        assert response.status_code == 200 and len(response.headers["x-request-id"]) == 32
        response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"

    async def test_metrics_are_served_in_prometheus_format_with_the_queue_depth(self, client):
        await client.get("/healthz")
        body = (await client.get("/metrics")).text
        assert 'doorstep_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in body
        assert 'doorstep_outbox_queue_depth{status="pending"} 0.0' in body
        assert "doorstep_kept_events 0.0" in body

    async def test_metrics_count_the_scheduling_events_waiting_for_the_sweeper(self, client, ctx):
        async with ctx.uow() as uow:
            uow.session.add(KeptEvent(name="Arrived", data={"retailer_id": 1, "delivery_id": 2}))
            await uow.commit()
        assert "doorstep_kept_events 1.0" in (await client.get("/metrics")).text

    async def test_an_oversized_body_gets_413_before_it_is_read(self, client, acme):
        big = b"x" * (1_048_576 + 1)
        response = await client.post("/api/v1/plans", content=big, headers=acme.headers)
        assert response.status_code == 413

    async def test_only_a_console_reply_may_carry_a_picture_of_up_to_5_mb(self, client, acme):
        """The reply form takes the 5 MB a picture may weigh (and its form around it), no more; the
        limit of every other path stays MAX_BODY_BYTES."""
        picture_sized = b"x" * (5 * 1_048_576)
        response = await client.post("/console/conversations/1/reply", content=picture_sized)
        assert response.status_code == 401  # past the edge: the console wants its session first
        response = await client.post("/console/conversations/1/reply", content=picture_sized + b"x" * 70_000)
        assert response.status_code == 413
        response = await client.post("/console/conversations/1/note", content=picture_sized)
        assert response.status_code == 413

    async def test_a_malformed_json_body_gets_422_with_a_reason(self, client, acme):
        response = await client.post(
            "/api/v1/plans",
            content=b"{not json",
            headers={**acme.headers, "content-type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["type"] == "json_invalid"
