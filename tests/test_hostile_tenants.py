"""Every API route walked with another retailer's key: nothing of the first retailer leaks or changes.

The walk reads the app's own OpenAPI document, so a route added later is walked too. Path
parameters and request bodies are filled with the identifiers of ACME's data (plan ids, tracking
numbers, delivery ids, pickup points...); the caller is GLOBEX, which owns nothing. A control pass
with ACME's own key proves that the read routes' parameters are real (it gets 2xx), so a 404 for
GLOBEX means "not yours", not "malformed".
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from core.models import (
    ChangeLog,
    Conversation,
    Delivery,
    Notification,
    OutboxMessage,
    PickupPoint,
    Recipient,
    RoutePlan,
    Stop,
    Template,
    Vehicle,
)
from tests.plans import small_plan

METHODS = ("get", "post", "put", "patch", "delete")
# Path parameters that name something a retailer owns: a foreign caller must get a 4xx.
OWNED = {
    "plan_id",
    "tracking",
    "delivery_id",
    "route_id",
    "vehicle_id",
    "pickup_point_id",
    "recipient_id",
    "conversation_id",
    "notification_id",
    "outbox_id",
    "template_id",
    "change_id",
    "id",
}
# Path parameters that pick among the caller's own things (templates by event/locale/channel):
# a foreign caller gets its own data, which must not be ACME's.
KEYED = {"event": "window_assigned", "locale": "en", "channel": "sms"}
TEMPLATE_MARKER = "{{ brand }}: ACMEZ private wording {{ tracking }}. Reply STOP to opt out."
# What identifies ACME's data in a response: tracking numbers, streets, recipients' names and phones.
ACME_PREFIX = "ACMEZ"


@dataclass
class Seeded:
    values: dict[str, list[Any]] = field(default_factory=dict)
    markers: list[str] = field(default_factory=list)

    def candidates(self, name: str, schema: dict[str, Any]) -> list[Any]:
        key = name.lower()
        if self.values.get(key):
            return self.values[key]
        for suffix, source in (
            ("tracking", "tracking"),
            ("plan_id", "plan_id"),
            ("delivery_id", "delivery_id"),
        ):
            if key.endswith(suffix):
                return self.values[source]
        if "enum" in schema:
            return list(schema["enum"])[:1]
        if schema.get("type") == "integer":
            return self.values["delivery_id"]
        return self.values["tracking"]


async def seed_acme(ctx, client, acme) -> Seeded:
    plan = small_plan(prefix=ACME_PREFIX)
    response = await client.post("/api/v1/plans", json=plan, headers=acme.headers)
    assert response.status_code == 201, response.text
    if any(p.startswith("/api/v1/templates/") for p in (await client.get("/openapi.json")).json()["paths"]):
        path = "/api/v1/templates/{event}/{locale}/{channel}".format(**KEYED)
        response = await client.put(path, json={"body": TEMPLATE_MARKER}, headers=acme.headers)
        assert response.status_code == 200, response.text
    seeded = Seeded()
    rid = acme.retailer_id
    async with ctx.uow() as uow:
        s = uow.session

        async def ids(model, *where) -> list[Any]:
            return [row.id for row in (await s.exec(select(model).where(*where))).all()]

        deliveries = (await s.exec(select(Delivery).where(Delivery.retailer_id == rid))).all()
        points = (await s.exec(select(PickupPoint).where(PickupPoint.retailer_id == rid))).all()
        recipients = (await s.exec(select(Recipient).where(Recipient.retailer_id == rid))).all()
        seeded.values = {
            "plan_id": await ids(RoutePlan, RoutePlan.retailer_id == rid),
            "route_id": [
                v.id
                for v in (
                    await s.exec(
                        select(Vehicle)
                        .join(RoutePlan, Vehicle.plan_id == RoutePlan.id)
                        .where(RoutePlan.retailer_id == rid)
                    )
                ).all()
            ],
            "tracking": [d.tracking for d in deliveries],
            "delivery_id": [d.id for d in deliveries],
            "pickup_point_id": [p.id for p in points],
            "pickup_point": [p.external_id for p in points],
            "external_id": [p.external_id for p in points],
            "recipient_id": [r.id for r in recipients],
            "conversation_id": await ids(Conversation, Conversation.retailer_id == rid),
            "notification_id": await ids(Notification, Notification.retailer_id == rid),
            "outbox_id": await ids(OutboxMessage, OutboxMessage.retailer_id == rid),
            "template_id": await ids(Template, Template.retailer_id == rid),
            "change_id": await ids(ChangeLog, ChangeLog.retailer_id == rid),
            "postal_code": [d.postal_code for d in deliveries],
            "phone": [r.phone for r in recipients if r.phone],
            "day": [plan["date"]],
            "date": [plan["date"]],
        }
        seeded.values["id"] = seeded.values["delivery_id"]
        seeded.values["vehicle_id"] = seeded.values["route_id"]
        seeded.values.update({name: [value] for name, value in KEYED.items()})
        seeded.markers = [
            *(d.tracking for d in deliveries),
            *(d.address for d in deliveries),
            *(r.name for r in recipients),
            *((r.phone or "")[2:] for r in recipients),
            *(p.name for p in points),
            "ACMEZ private wording",
        ]
    return seeded


async def acme_fingerprint(ctx, retailer_id: int) -> str:
    """A digest of everything ACME owns that a foreign call could change."""
    rows: list[str] = []
    async with ctx.uow() as uow:
        s = uow.session
        for model in (Delivery, RoutePlan, PickupPoint, Recipient, Template, Notification, OutboxMessage):
            for row in (await s.exec(select(model).where(model.retailer_id == retailer_id))).all():
                rows.append(row.model_dump_json())
        plan_ids = [
            p.id for p in (await s.exec(select(RoutePlan).where(RoutePlan.retailer_id == retailer_id)))
        ]
        delivery_ids = {
            d.id for d in (await s.exec(select(Delivery).where(Delivery.retailer_id == retailer_id)))
        }
        for stop in (await s.exec(select(Stop))).all():
            if stop.delivery_id in delivery_ids:
                rows.append(stop.model_dump_json())
        rows.append(json.dumps(plan_ids))
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()


def resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 20:
        path = schema["$ref"].removeprefix("#/").split("/")
        node: Any = spec
        for part in path:
            node = node[part]
        schema = node
        seen += 1
    return schema


def sample(
    schema: dict[str, Any], spec: dict[str, Any], seeded: Seeded, name: str = "", depth: int = 0
) -> Any:
    """A body that satisfies the schema, with ACME's identifiers wherever a field names one."""
    schema = resolve(schema, spec)
    if schema.get("examples"):
        return schema["examples"][0]
    if "example" in schema:
        return schema["example"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            options = [resolve(s, spec) for s in schema[combinator]]
            options = [o for o in options if o.get("type") != "null"] or options
            return sample(options[0], spec, seeded, name, depth)
    kind = schema.get("type")
    if name and kind in ("integer", "string", None) and depth < 6:
        wanted = int if kind == "integer" else str if kind == "string" else object
        for candidate in (name.lower(), f"{name.lower()}_id"):
            known = [v for v in seeded.values.get(candidate, []) if isinstance(v, wanted)]
            if known:
                return known[0]
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {
            key: sample(props[key], spec, seeded, key, depth + 1)
            for key in schema.get("required", list(props)[:0])
            if key in props
        } | {key: sample(props[key], spec, seeded, key, depth + 1) for key in props if key in seeded.values}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    fmt = schema.get("format")
    if fmt == "date":
        return seeded.values["day"][0]
    if fmt == "date-time":
        return seeded.values["day"][0] + ("T14:00:00-05:00" if name == "end" else "T12:00:00-05:00")
    return "x" * max(1, int(schema.get("minLength", 1)))


@dataclass
class Call:
    method: str
    template: str
    path: str
    params: dict[str, Any]
    query: dict[str, Any]
    body: Any


def calls_for(spec: dict[str, Any], seeded: Seeded) -> list[Call]:
    calls = []
    for template, operations in spec["paths"].items():
        for method, op in operations.items():
            if method not in METHODS or not op.get("security"):
                continue
            parameters = [resolve(p, spec) for p in op.get("parameters", [])]
            path_params = [p for p in parameters if p["in"] == "path"]
            query = {
                p["name"]: seeded.candidates(p["name"], resolve(p.get("schema", {}), spec))[0]
                for p in parameters
                if p["in"] == "query" and (p.get("required") or p["name"].lower() in seeded.values)
            }
            body = None
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body = sample(content["application/json"].get("schema", {}), spec, seeded)
            choices = [seeded.candidates(p["name"], resolve(p.get("schema", {}), spec)) for p in path_params]
            # every ACME value of the first path parameter, the first of the others
            first = choices[0] if choices else [None]
            for value in first:
                params = {p["name"]: (value if i == 0 else choices[i][0]) for i, p in enumerate(path_params)}
                path = re.sub(r"\{(\w+)\}", lambda m, params=params: str(params[m.group(1)]), template)
                calls.append(Call(method, template, path, params, query, body))
    return calls


class TestTenantIsolation:
    async def test_every_api_route_walked_with_another_retailers_key_leaks_and_changes_nothing(
        self, ctx, client, acme, globex
    ):
        seeded = await seed_acme(ctx, client, acme)
        spec = (await client.get("/openapi.json")).json()
        api_operations = {
            (m, p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/api/") and m in METHODS
        }
        calls = calls_for(spec, seeded)
        assert api_operations and api_operations <= {(c.method, c.template) for c in calls}, (
            "every /api/ route takes a Bearer key and is walked"
        )

        # control: ACME reads its own data through every read route
        for call in calls:
            if call.method == "get" and set(call.params) & OWNED:
                own = await client.get(call.path, params=call.query, headers=acme.headers)
                assert own.status_code == 200, f"control {call.path}: {own.status_code} {own.text[:200]}"

        before = await acme_fingerprint(ctx, acme.retailer_id)
        for call in calls:
            response = await client.request(
                call.method.upper(),
                call.path,
                params=call.query,
                json=call.body,
                headers=globex.headers,
            )
            text = response.text
            leaked = [m for m in seeded.markers if m and m in text]
            assert not leaked, f"{call.method.upper()} {call.path} showed ACME's {leaked} to GLOBEX"
            assert response.status_code < 500, f"{call.method.upper()} {call.path}: {response.status_code}"
            if set(call.params) & OWNED:
                assert response.status_code in (400, 403, 404, 409, 422), (
                    f"{call.method.upper()} {call.path} answered {response.status_code} to another retailer"
                )
        assert await acme_fingerprint(ctx, acme.retailer_id) == before, "a foreign call changed ACME's data"

        # the same walk without any key, and with a revoked-looking key, is refused outright
        for call in calls:
            for headers in ({}, {"Authorization": "Bearer dsk_not-a-key"}):
                response = await client.request(
                    call.method.upper(), call.path, json=call.body, headers=headers
                )
                assert response.status_code == 401, f"{call.method.upper()} {call.path} without a key"
