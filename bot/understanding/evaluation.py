"""Scoring `understand` answers against the labelled evaluation set (bench/data/understanding_eval.jsonl).

Each line holds a message (text, locale, now, timezone) and what a person expects: the intent, the
option or target language where one is meant, the language it is written in (null when nothing in the
text tells), and for time phrases the window start and end (ISO 8601, null for an open end).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

EVAL_SET = Path(__file__).resolve().parents[2] / "bench" / "data" / "understanding_eval.jsonl"
INTENT_TARGET = 0.95
WINDOW_TARGET = 0.90


def load(path: Path = EVAL_SET) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def request_of(case: dict[str, Any]) -> dict[str, Any]:
    return {k: case[k] for k in ("text", "locale", "now", "timezone")}


def _same_instant(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    first, second = datetime.fromisoformat(a), datetime.fromisoformat(b)
    return first == second and first.utcoffset() == second.utcoffset()


@dataclass
class Score:
    cases: int = 0
    intents_right: int = 0
    windows: int = 0
    windows_right: int = 0
    languages_right: int = 0
    by_locale: dict[str, list[int]] = field(default_factory=dict)  # locale -> [right, total]
    misses: list[str] = field(default_factory=list)

    @property
    def intent_accuracy(self) -> float:
        return self.intents_right / self.cases if self.cases else 0.0

    @property
    def window_accuracy(self) -> float:
        return self.windows_right / self.windows if self.windows else 0.0

    @property
    def language_accuracy(self) -> float:
        return self.languages_right / self.cases if self.cases else 0.0

    def add(self, case: dict[str, Any], answer: dict[str, Any]) -> None:
        expected = case["expected"]
        self.cases += 1
        tally = self.by_locale.setdefault(case["locale"], [0, 0])
        tally[1] += 1
        intent_ok = answer.get("intent") == expected["intent"] and all(
            answer.get(key) == expected[key]
            for key in ("option", "target_language", "instructions", "not_on")
            if key in expected
        )
        if intent_ok:
            self.intents_right += 1
            tally[0] += 1
        else:
            got = answer.get("intent"), answer.get("option"), answer.get("target_language")
            self.misses.append(f"intent   {case['text']!r}: expected {expected['intent']}, got {got}")
        if answer.get("language") == expected.get("language"):
            self.languages_right += 1
        if "window" in expected:
            self.windows += 1
            window = answer.get("window") or {}
            want = expected["window"]
            if _same_instant(window.get("start"), want["start"]) and _same_instant(
                window.get("end"), want["end"]
            ):
                self.windows_right += 1
            else:
                self.misses.append(
                    f"window   {case['text']!r} (now {case['now']} {case['timezone']}): expected "
                    f"{want['start']} .. {want['end']}, got {window.get('start')} .. {window.get('end')}"
                )

    def language_misses(
        self, cases: Iterable[dict[str, Any]], answers: Iterable[dict[str, Any]]
    ) -> list[str]:
        return [
            f"language {c['text']!r}: expected {c['expected'].get('language')}, got {a.get('language')}"
            for c, a in zip(cases, answers, strict=True)
            if a.get("language") != c["expected"].get("language")
        ]
