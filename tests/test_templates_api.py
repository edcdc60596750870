"""The template API: read, save (validated), preview, versions and rollback, each retailer alone."""

from __future__ import annotations

import pytest

from channels.rendering import render_sms
from core.models import Retailer

BASE = "/api/v1/templates"
KEY = "window_assigned/en/sms"
GOOD = "{{ brand }}: {{ tracking }} comes {{ window|window }}. Reply STOP to opt out."


class TestReadingTemplates:
    async def test_the_list_names_every_event_locale_and_channel_with_its_variables(self, client, acme):
        response = await client.get(BASE, headers=acme.headers)
        assert response.status_code == 200
        data = response.json()
        assert len(data["templates"]) == 11 * 3 * 4
        assert {e["event"] for e in data["events"]} >= {"window_assigned", "attempt_failed", "delivered"}
        failed = next(e for e in data["events"] if e["event"] == "attempt_failed")
        assert [o["payload"] for o in failed["options"]][:2] == ["menu:reschedule", "menu:pickup"]
        assert "window" in data["filters"]

    async def test_a_template_starts_as_the_default_file(self, client, acme):
        response = await client.get(f"{BASE}/{KEY}", headers=acme.headers)
        assert response.status_code == 200
        body = response.json()
        assert body["source"] == "default" and body["version"] == 0
        assert "{{ brand }}" in body["body"] and "STOP" in body["body"]
        assert body["doc"]["variables"]["telegram_link"]

    @pytest.mark.parametrize("path", ["nope/en/sms", "delivered/de/sms", "delivered/en/fax"])
    async def test_an_unknown_event_locale_or_channel_is_a_404_that_says_which(self, client, acme, path):
        response = await client.get(f"{BASE}/{path}", headers=acme.headers)
        assert response.status_code == 404
        assert "unknown" in response.json()["detail"]

    async def test_without_a_key_nothing_is_shown(self, client):
        assert (await client.get(BASE)).status_code == 401
        assert (
            await client.get(f"{BASE}/{KEY}", headers={"Authorization": "Bearer dsk_wrong"})
        ).status_code == 401


class TestSavingTemplates:
    async def test_a_save_is_a_new_active_version(self, client, acme):
        first = await client.put(f"{BASE}/{KEY}", json={"body": GOOD}, headers=acme.headers)
        assert first.status_code == 200, first.text
        second = await client.put(f"{BASE}/{KEY}", json={"body": GOOD + " Thanks!"}, headers=acme.headers)
        assert (first.json()["version"], second.json()["version"]) == (1, 2)
        current = (await client.get(f"{BASE}/{KEY}", headers=acme.headers)).json()
        assert (
            current["source"] == "retailer"
            and current["version"] == 2
            and current["body"].endswith("Thanks!")
        )

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ("{{ brand }: STOP", "syntax error"),
            ("{{ brand }} {{ secret_key }} STOP", "unknown variable(s) secret_key"),
            ("{{ brand }} STOP {% for i in [1] %}x{% endfor %}", "loops are not allowed"),
            ("{{ brand }} STOP {{ tracking.upper() }}", "calls are not allowed"),
            ("{{ tracking }} {{ window|window }}", "names the brand"),
            ("{{ brand }}: {{ tracking }} {{ window|window }}", "include STOP"),
            ("{{ brand }} STOP " + "x" * 700, "SMS segments"),
            ("   ", "empty"),
        ],
    )
    async def test_a_bad_template_is_refused_with_the_reason(self, client, acme, body, expected):
        response = await client.put(f"{BASE}/{KEY}", json={"body": body}, headers=acme.headers)
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert any(expected in e["msg"] for e in detail["errors"]), detail
        assert (await client.get(f"{BASE}/{KEY}", headers=acme.headers)).json()["source"] == "default"

    async def test_a_syntax_error_says_its_line(self, client, acme):
        body = "{{ brand }} STOP\n{% if tracking %}\nno end"
        detail = (await client.put(f"{BASE}/{KEY}", json={"body": body}, headers=acme.headers)).json()[
            "detail"
        ]
        assert detail["errors"][0]["line"] == 3

    async def test_whatsapp_rules_apply_to_whatsapp_templates(self, client, acme):
        path = f"{BASE}/window_assigned/en/whatsapp"
        too_long = "{{ brand }} STOP " + "é" * 1100
        response = await client.put(path, json={"body": too_long}, headers=acme.headers)
        assert any("WhatsApp allows 1024" in e["msg"] for e in response.json()["detail"]["errors"])
        bad_sid = await client.put(path, json={"body": GOOD, "content_sid": "HX12"}, headers=acme.headers)
        assert any("content SID" in e["msg"] for e in bad_sid.json()["detail"]["errors"])
        good = await client.put(
            path, json={"body": GOOD, "content_sid": "HX" + "0a" * 16}, headers=acme.headers
        )
        assert good.status_code == 200 and good.json()["content_sid"] == "HX" + "0a" * 16


class TestPreview:
    async def test_a_preview_renders_sample_data_with_options_and_segments(self, client, acme):
        response = await client.post(
            f"{BASE}/attempt_failed/fr_CA/sms/preview", json={"body": None}, headers=acme.headers
        )
        data = response.json()
        assert data["valid"] and "TOR-000123" in data["text"]
        assert [o["payload"] for o in data["options"]] == ["menu:reschedule", "menu:pickup", "menu:person"]
        assert data["sms"]["segments"] >= 1 and data["sms"]["encoding"] in ("GSM-7", "UCS-2")

    async def test_an_emoji_switches_the_count_to_ucs2(self, client, acme):
        body = "{{ brand }} 🚚 {{ tracking }} {{ window|window }} STOP"
        data = (await client.post(f"{BASE}/{KEY}/preview", json={"body": body}, headers=acme.headers)).json()
        assert data["sms"]["encoding"] == "UCS-2"
        assert any("UCS-2" in w for w in data["warnings"])

    async def test_typographic_characters_are_made_plain_on_sms(self, client, acme):
        body = "{{ brand }} – it’s “here” STOP {{ window|window }}"
        data = (await client.post(f"{BASE}/{KEY}/preview", json={"body": body}, headers=acme.headers)).json()
        assert '- it\'s "here"' in data["text"] and data["sms"]["encoding"] == "GSM-7"

    async def test_a_spanish_preview_counts_the_sms_the_sender_will_send(self, client, acme):
        data = (
            await client.post(
                f"{BASE}/attempt_failed/es/sms/preview", json={"body": None}, headers=acme.headers
            )
        ).json()
        sent = render_sms(data["text"], data["options"], "es", {})
        assert data["sms"]["body"] == sent.body and data["sms"]["characters"] == len(sent.body)
        assert (data["sms"]["segments"], data["sms"]["encoding"]) == (sent.segments, sent.encoding)
        assert sent.encoding == "GSM-7" and "Responda 1 para" in sent.body
        assert not any("UCS-2" in w for w in data["warnings"])

    async def test_a_retailer_that_keeps_exact_accents_sees_ucs2_in_the_preview(self, ctx, client, acme):
        async with ctx.uow() as uow:
            retailer = await uow.session.get(Retailer, acme.retailer_id)
            assert retailer is not None
            retailer.settings = {**retailer.settings, "sms_smart_encoding": {"es": False}}
            uow.session.add(retailer)
            await uow.commit()
        body = "{{ brand }}: ¿cambió la dirección de {{ tracking }}? {{ window|window }} STOP"
        data = (
            await client.post(
                f"{BASE}/window_assigned/es/sms/preview", json={"body": body}, headers=acme.headers
            )
        ).json()
        assert "cambió la dirección" in data["text"] and data["sms"]["encoding"] == "UCS-2"
        assert any("because of: ó" in w for w in data["warnings"])
        fr = (
            await client.post(
                f"{BASE}/window_assigned/fr_CA/sms/preview", json={"body": body}, headers=acme.headers
            )
        ).json()
        assert "cambio la direccion" in fr["text"] and fr["sms"]["encoding"] == "GSM-7"

    async def test_windows_are_localised(self, client, acme):
        body = "{{ window|window }} {{ brand }} STOP"
        fr = (
            await client.post(
                f"{BASE}/window_assigned/fr_CA/telegram/preview", json={"body": body}, headers=acme.headers
            )
        ).json()
        es = (
            await client.post(
                f"{BASE}/window_assigned/es/telegram/preview", json={"body": body}, headers=acme.headers
            )
        ).json()
        en = (
            await client.post(
                f"{BASE}/window_assigned/en/telegram/preview", json={"body": body}, headers=acme.headers
            )
        ).json()
        assert fr["text"].startswith("jeu. 3 déc., 14 h à 16 h")
        assert es["text"].startswith("jue 3 dic, 14:00–16:00")
        assert en["text"].startswith("Thu Dec 3, 2:00–4:00") and "PM" in en["text"]


class TestVersionsAndRollback:
    async def test_rolling_back_reactivates_an_old_body_as_a_new_version(self, client, acme):
        for suffix in ("", " v2", " v3"):
            await client.put(f"{BASE}/{KEY}", json={"body": GOOD + suffix}, headers=acme.headers)
        response = await client.post(f"{BASE}/{KEY}/rollback", json={"version": 1}, headers=acme.headers)
        assert response.status_code == 200
        assert response.json()["body"] == GOOD and response.json()["version"] == 4
        history = (await client.get(f"{BASE}/{KEY}/versions", headers=acme.headers)).json()["versions"]
        assert [v["version"] for v in history] == [4, 3, 2, 1]
        assert [v["active"] for v in history] == [True, False, False, False]

    async def test_version_zero_returns_to_the_default(self, client, acme):
        await client.put(f"{BASE}/{KEY}", json={"body": GOOD}, headers=acme.headers)
        back = await client.post(f"{BASE}/{KEY}/rollback", json={"version": 0}, headers=acme.headers)
        assert back.json()["source"] == "default"

    async def test_an_unknown_version_is_a_404(self, client, acme):
        response = await client.post(f"{BASE}/{KEY}/rollback", json={"version": 7}, headers=acme.headers)
        assert response.status_code == 404


class TestTenantIsolation:
    async def test_every_template_route_with_another_retailers_key_sees_only_its_own(
        self, client, acme, globex
    ):
        saved = await client.put(f"{BASE}/{KEY}", json={"body": GOOD + " ACME"}, headers=acme.headers)
        assert saved.status_code == 200
        other = globex.headers
        listing = (await client.get(BASE, headers=other)).json()
        assert all(t["source"] == "default" for t in listing["templates"])
        read = (await client.get(f"{BASE}/{KEY}", headers=other)).json()
        assert read["source"] == "default" and "ACME" not in read["body"]
        assert (await client.get(f"{BASE}/{KEY}/versions", headers=other)).json()["versions"] == []
        preview = (await client.post(f"{BASE}/{KEY}/preview", json={}, headers=other)).json()
        assert "ACME" not in preview["text"] and "Globex" in preview["text"]
        rollback = await client.post(f"{BASE}/{KEY}/rollback", json={"version": 1}, headers=other)
        assert rollback.status_code == 404
        await client.put(f"{BASE}/{KEY}", json={"body": GOOD + " GLOBEX"}, headers=other)
        mine = (await client.get(f"{BASE}/{KEY}", headers=acme.headers)).json()
        assert mine["body"].endswith("ACME") and mine["version"] == 1
        notes = await client.get("/api/v1/deliveries/T001/notifications", headers=other)
        assert notes.status_code == 404
