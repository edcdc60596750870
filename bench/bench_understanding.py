"""Understanding benchmark: intent and window accuracy on the labelled set, and latency per message.

Runs the evaluation set through the real command-line path: one `python app.py understand --timings`
process, every line piped in. Latency is measured inside that process around each `understand()`
call, after `warm_up()` (the tool warms up before reading). Exits 1 when a target is missed.

    .venv/bin/python bench/bench_understanding.py [--module] [--languages]

--module runs `python -m bot.understanding` instead of app.py (same code, no web stack to import).
The set has two parts: "dev" messages, written first and used while building the reader, and
"holdout" messages, written afterwards and scored as they came; both are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.understanding.evaluation import INTENT_TARGET, WINDOW_TARGET, Score, load, request_of  # noqa: E402

P99_TARGET_MS = 20.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(title: str, cases: list[dict[str, Any]], answers: list[dict[str, Any]], languages: bool) -> Score:
    score = Score()
    for case, answer in zip(cases, answers, strict=True):
        score.add(case, answer)
    per_locale = ", ".join(f"{k} {v[1]}" for k, v in score.by_locale.items())
    print(f"{title}: {score.cases} messages ({per_locale})")
    print(f"  intent accuracy      {score.intent_accuracy:6.1%}  (target >= {INTENT_TARGET:.0%})")
    for locale, (right, total) in score.by_locale.items():
        print(f"    {locale:6} {right}/{total} = {right / total:6.1%}")
    print(
        f"  window accuracy      {score.window_accuracy:6.1%}  ({score.windows_right}/{score.windows}"
        f" time phrases, target >= {WINDOW_TARGET:.0%})"
    )
    print(
        f"  language accuracy    {score.language_accuracy:6.1%}  (null expected when the text gives no clue)"
    )
    misses = score.misses + (score.language_misses(cases, answers) if languages else [])
    if misses:
        print(f"  misses ({len(misses)}):")
        for miss in misses:
            print(f"    {miss}")
    return score


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--module", action="store_true", help="run python -m bot.understanding")
    parser.add_argument("--languages", action="store_true", help="also list language misses")
    args = parser.parse_args()

    cases = load()
    command = [sys.executable, "-m", "bot.understanding"]
    if not args.module:
        command = [sys.executable, "app.py", "understand"]
    payload = "".join(json.dumps(request_of(c), ensure_ascii=False) + "\n" for c in cases)
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--timings"],
        input=payload,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 2
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if len(answers) != len(cases):
        print(f"expected {len(cases)} answers, got {len(answers)}", file=sys.stderr)
        return 2

    for split in (
        "dev",
        "holdout",
        "holdout2",
        "holdout3",
        "holdout4",
        "holdout5",
        "holdout6",
        "holdout7",
        "holdout8",
    ):
        pairs = [(c, a) for c, a in zip(cases, answers, strict=True) if c.get("split", "dev") == split]
        if pairs:
            report(f"{split} part", [c for c, _ in pairs], [a for _, a in pairs], args.languages)
    score = Score()
    for case, answer in zip(cases, answers, strict=True):
        score.add(case, answer)
    latencies = [a["elapsed_ms"] for a in answers]
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(f"whole set: {score.cases} messages")
    print(f"  intent accuracy      {score.intent_accuracy:6.1%}  (target >= {INTENT_TARGET:.0%})")
    print(f"  window accuracy      {score.window_accuracy:6.1%}  ({score.windows_right}/{score.windows})")
    print(
        f"  latency per message  p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {max(latencies):.3f} ms,"
        f" mean {statistics.fmean(latencies):.3f} ms"
    )
    print(
        f"                       (wall time in process, after warm_up; target p99 < {P99_TARGET_MS:.0f} ms)"
    )
    cpu = [a["cpu_ms"] for a in answers]
    print(
        f"  CPU time per message p50 {percentile(cpu, 0.50):.3f} ms, p99 {percentile(cpu, 0.99):.3f} ms,"
        f" max {max(cpu):.3f} ms (the work itself, without waiting for a core)"
    )
    print(
        f"  whole run            {wall:.2f} s wall for {len(cases)} lines, process start and warm-up included"
    )
    met = (
        score.intent_accuracy >= INTENT_TARGET
        and score.window_accuracy >= WINDOW_TARGET
        and p99 < P99_TARGET_MS
    )
    print("  targets met" if met else "  TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
