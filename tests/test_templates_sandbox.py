"""Retailer templates are untrusted code: every escape from the sandbox is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.models import Channel, Retailer
from notifications.templates import TemplateProblem, Window, render_source, validate

CONTEXT = {
    "brand": "Acme",
    "tracking": "T1",
    "window": Window(datetime(2026, 12, 3, 19, tzinfo=UTC), datetime(2026, 12, 3, 21, tzinfo=UTC)),
    "locale": "en",
    "timezone": "America/Toronto",
}
RETAILER = Retailer(
    id=1, slug="acme", name="Acme", brand_name="Acme", timezone="America/Toronto", settings={}
)

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ window.__dict__ }}",
    "{{ window._private }}",
    "{{ tracking.__class__.__base__ }}",
    "{{ brand|attr('__class__') }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
    "{% extends '../../core/config.py' %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{{ 'x' * 100000000 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ '%999999999s' % 1 }}",
    "{{ 'ab'|replace('', 'x' * 3000) }}",
    "{{ config }}",
    "{{ request.application }}",
    "{{ [].append(1) }}",
    "{{ {}.update(a=1) }}",
]


class TestSandboxEscapes:
    @pytest.mark.parametrize("source", ESCAPES)
    def test_an_escape_is_refused_at_render_time(self, source):
        with pytest.raises(TemplateProblem):
            render_source(source, CONTEXT, Channel.telegram)

    @pytest.mark.parametrize("source", ESCAPES)
    def test_an_escape_cannot_be_saved(self, source):
        report = validate(RETAILER, "delivered", "en", Channel.telegram, source)
        assert report.errors, source

    def test_output_is_capped_even_without_loops(self):
        source = "{{ (tracking ~ 'y' * 4000) ~ (tracking ~ 'y' * 4000) }}"
        with pytest.raises(TemplateProblem):
            render_source(source, CONTEXT, Channel.telegram)

    def test_an_overlong_template_is_refused(self):
        with pytest.raises(TemplateProblem, match="at most 2000"):
            render_source("x" * 2001, CONTEXT, Channel.telegram)

    def test_ordinary_templates_still_work(self):
        text = render_source(
            "{{ brand|upper }} {{ tracking|lower }}: {% if window %}{{ window|window('time') }}{% endif %}",
            CONTEXT,
            Channel.sms,
        )
        assert text == "ACME t1: 2:00-4:00 PM"
