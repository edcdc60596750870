"""Pictures drawn by the app itself as SVG: a route's timeline, a small map, the dashboard's charts.

No tile server and no chart library: the machines and many customer networks have no internet.
Every text that comes from data goes through `escape`; the SVG is returned as `Markup`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from markupsafe import Markup, escape

from scheduling import clock

COLOURS = {
    "window": "#cfe0fb",
    "planned": "#1f6feb",
    "done": "#8c959f",
    "late": "#cf222e",
    "this": "#e16f24",
    "feasible": "#2da44e",
    "progress": "#eaeef2",
    "grid": "#e1e4e8",
    "text": "#57606a",
}


def _fmt_seconds(seconds: int) -> str:
    seconds = max(0, seconds)
    return f"{seconds // 3600 % 24:02d}:{seconds % 3600 // 60:02d}"


# --- route timeline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineStop:
    label: str
    window: tuple[int, int]
    arrival: int
    service: int
    done: bool
    is_this: bool


@dataclass(frozen=True)
class Timeline:
    vehicle: str
    shift: tuple[int, int]
    stops: list[TimelineStop]
    feasible: list[tuple[int, int]]  # windows that can still be offered on the plan's day
    now: int | None  # seconds since local midnight when the plan's day is today


def timeline_from_plan(
    *,
    day: date,
    timezone: str,
    vehicle_name: str,
    shift: tuple[int, int],
    stops: Sequence[tuple[str, tuple[int, int], int, int, bool, bool]],
    offers: Sequence[tuple[datetime, datetime]],
    now: datetime,
) -> Timeline:
    feasible = []
    for start, end in offers:
        if start.astimezone(clock.local_midnight(day, timezone).tzinfo).date() == day:
            feasible.append(
                (
                    clock.seconds_since_midnight(day, timezone, start),
                    clock.seconds_since_midnight(day, timezone, end),
                )
            )
    now_seconds = clock.seconds_since_midnight(day, timezone, now)
    return Timeline(
        vehicle=vehicle_name,
        shift=shift,
        stops=[TimelineStop(*stop) for stop in stops],
        feasible=feasible,
        now=now_seconds if 0 <= now_seconds <= 86_400 else None,
    )


def timeline_svg(timeline: Timeline) -> Markup:
    """Each stop a row: its window as a pale bar, its planned visit as a block; the vehicle's progress
    shaded, this stop highlighted, and the windows that can still be offered shaded green on top."""
    width, left, right = 420, 58, 8
    row, gap, top = 11, 3, 44
    times = [timeline.shift[0], timeline.shift[1]]
    for stop in timeline.stops:
        times += [stop.window[0], min(stop.window[1], 86_400), stop.arrival + stop.service]
    start = max(0, min(times) // 3600 * 3600)
    end = min(86_400, -(-max(times) // 3600) * 3600)
    if end <= start:
        end = start + 3600
    span = end - start
    plot = width - left - right

    def x(seconds: int) -> float:
        return left + plot * (min(max(seconds, start), end) - start) / span

    height = top + len(timeline.stops) * (row + gap) + 16
    parts: list[str] = []
    this = next((s for s in timeline.stops if s.is_this), None)
    summary = f"Route {timeline.vehicle}: {len(timeline.stops)} stops."
    if this is not None:
        summary += (
            f" This stop: window {_fmt_seconds(this.window[0])}–{_fmt_seconds(this.window[1])},"
            f" planned arrival {_fmt_seconds(this.arrival)}."
        )
    summary += (
        " Windows that can be offered: "
        + (", ".join(f"{_fmt_seconds(a)}–{_fmt_seconds(b)}" for a, b in timeline.feasible) or "none")
        + "."
    )
    parts.append(
        f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img" aria-labelledby="tl-title"'
        f' xmlns="http://www.w3.org/2000/svg"><title id="tl-title">{escape(summary)}</title>'
    )
    # hour grid and labels
    step = 3600 if span <= 8 * 3600 else 7200
    for tick in range(start, end + 1, step):
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="14" x2="{x(tick):.1f}" y2="{height - 12}"'
            f' stroke="{COLOURS["grid"]}"/>'
            f'<text x="{x(tick):.1f}" y="11" font-size="10" text-anchor="middle" fill="{COLOURS["text"]}">'
            f"{_fmt_seconds(tick)}</text>"
        )
    # progress so far: shaded up to now (or through the last visited stop)
    progress_end = timeline.now
    if progress_end is None:
        done = [s.arrival + s.service for s in timeline.stops if s.done]
        progress_end = max(done) if done else None
    if progress_end is not None and progress_end > start:
        parts.append(
            f'<rect x="{left}" y="{top - 4}" width="{x(progress_end) - left:.1f}"'
            f' height="{height - top - 12}"'
            f' fill="{COLOURS["progress"]}"><title>Vehicle progress so far</title></rect>'
        )
    # feasible windows band, also shaded behind the rows
    parts.append(
        f'<text x="{left - 6}" y="{top - 14}" font-size="10" text-anchor="end" fill="{COLOURS["feasible"]}">'
        "can offer</text>"
    )
    for a, b in timeline.feasible:
        parts.append(
            f'<rect class="feasible" x="{x(a):.1f}" y="{top - 22}" width="{max(2.0, x(b) - x(a)):.1f}"'
            f' height="10"'
            f' rx="2" fill="{COLOURS["feasible"]}"><title>Can offer'
            f" {_fmt_seconds(a)}–{_fmt_seconds(b)}</title></rect>"
            f'<rect x="{x(a):.1f}" y="{top - 4}" width="{max(2.0, x(b) - x(a)):.1f}"'
            f' height="{height - top - 12}"'
            f' fill="{COLOURS["feasible"]}" fill-opacity="0.08"/>'
        )
    # shift bounds
    for bound in timeline.shift:
        parts.append(
            f'<line x1="{x(bound):.1f}" y1="{top - 4}" x2="{x(bound):.1f}" y2="{height - 12}"'
            f' stroke="{COLOURS["text"]}" stroke-dasharray="3 3"/>'
        )
    for i, stop in enumerate(timeline.stops):
        y = top + i * (row + gap)
        late = stop.arrival > stop.window[1] and not stop.done
        colour = (
            COLOURS["this"]
            if stop.is_this
            else COLOURS["done"]
            if stop.done
            else COLOURS["late"]
            if late
            else COLOURS["planned"]
        )
        if stop.is_this:
            parts.append(
                f'<rect class="this-stop" x="0" y="{y - 1.5}" width="{width}" height="{row + 3}"'
                f' fill="#fff1e5"/>'
            )
        label = f"{i + 1}. {stop.label[-4:]}"
        full = f"{i + 1}. {stop.label}"
        weight = ' font-weight="700"' if stop.is_this else ""
        parts.append(
            f'<text x="{left - 6}" y="{y + row - 2}" font-size="9.5" text-anchor="end"'
            f' fill="{COLOURS["text"]}"{weight}>{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{x(stop.window[0]):.1f}" y="{y + 2}"'
            f' width="{max(1.0, x(stop.window[1]) - x(stop.window[0])):.1f}"'
            f' height="{row - 4}" rx="2" fill="{COLOURS["window"]}"/>'
        )
        block_width = max(3.0, x(stop.arrival + stop.service) - x(stop.arrival))
        state = "visited" if stop.done else "late" if late else "planned"
        parts.append(
            f'<rect x="{x(stop.arrival):.1f}" y="{y}" width="{block_width:.1f}" height="{row}" rx="2"'
            f' fill="{colour}"><title>{escape(full)}: window {_fmt_seconds(stop.window[0])}–'
            f"{_fmt_seconds(stop.window[1])}, arrival {_fmt_seconds(stop.arrival)} ({state})</title></rect>"
        )
    if timeline.now is not None and start <= timeline.now <= end:
        parts.append(
            f'<line x1="{x(timeline.now):.1f}" y1="{top - 26}" x2="{x(timeline.now):.1f}" y2="{height - 12}"'
            f' stroke="{COLOURS["late"]}" stroke-width="1.5"/>'
            f'<text x="{x(timeline.now) + 3:.1f}" y="{height - 2}" font-size="9.5"'
            f' fill="{COLOURS["late"]}">now</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every data-derived text above is escaped


# --- map -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapPoint:
    lon: float
    lat: float
    label: str
    kind: str  # address, pickup, chosen


def map_svg(points: Sequence[MapPoint], *, width: int = 380, height: int = 240) -> Markup:
    """An equirectangular sketch of a few points around the address, with a scale bar."""
    if not points:
        return Markup("")
    lat0 = sum(p.lat for p in points) / len(points)
    kx = math.cos(math.radians(lat0))
    xs = [p.lon * kx for p in points]
    ys = [p.lat for p in points]
    pad = 34
    smallest = 0.004  # degrees (~400 m): one lone point is not zoomed in without end
    scale = min(
        (width - 2 * pad) / max(max(xs) - min(xs), smallest),
        (height - 2 * pad) / max(max(ys) - min(ys), smallest),
    )
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2

    def project(p: MapPoint) -> tuple[float, float]:
        return width / 2 + (p.lon * kx - cx) * scale, height / 2 - (p.lat - cy) * scale

    # metres per pixel: one degree of latitude is ~111.32 km
    metres_per_px = 111_320 / scale
    bar_m = _nice_length(metres_per_px * width / 4)
    bar_px = bar_m / metres_per_px
    names = "; ".join(f"{p.label}" for p in points)
    parts = [
        f'<svg class="map" viewBox="0 0 {width} {height}" role="img" aria-labelledby="map-title"'
        f' xmlns="http://www.w3.org/2000/svg"><title id="map-title">Map: {escape(names)}</title>'
        f'<rect width="{width}" height="{height}" fill="#f4f7f4"/>'
    ]
    for gx in range(0, width, 40):
        parts.append(f'<line x1="{gx}" y1="0" x2="{gx}" y2="{height}" stroke="#e6ebe6"/>')
    for gy in range(0, height, 40):
        parts.append(f'<line x1="0" y1="{gy}" x2="{width}" y2="{gy}" stroke="#e6ebe6"/>')
    home = next((p for p in points if p.kind == "address"), None)
    number = 0
    for p in points:
        px, py = project(p)
        if p.kind == "address":
            continue
        number += 1
        if home is not None:
            hx, hy = project(home)
            parts.append(
                f'<line x1="{hx:.1f}" y1="{hy:.1f}" x2="{px:.1f}" y2="{py:.1f}" stroke="#9fb3c8"'
                f' stroke-dasharray="3 3"/>'
            )
        fill = "#e16f24" if p.kind == "chosen" else "#1f6feb"
        parts.append(
            f'<g class="pickup"><rect x="{px - 8:.1f}" y="{py - 8:.1f}" width="16" height="16" rx="3"'
            f' fill="{fill}"/>'
            f'<text x="{px:.1f}" y="{py + 4:.1f}" font-size="10.5" text-anchor="middle" fill="#fff"'
            f' font-weight="700">{number}</text><title>{number}. {escape(p.label)}</title></g>'
        )
    if home is not None:
        hx, hy = project(home)
        parts.append(
            f'<g class="address"><path d="M{hx:.1f},{hy:.1f} l-7,-12 a8,8 0 1,1 14,0 z" fill="#cf222e"'
            f' stroke="#fff" stroke-width="1.5"/><circle cx="{hx:.1f}" cy="{hy - 14:.1f}" r="3" fill="#fff"/>'
            f"<title>{escape(home.label)}</title></g>"
        )
    parts.append(
        f'<g font-size="10" fill="#57606a"><line x1="10" y1="{height - 12}" x2="{10 + bar_px:.1f}"'
        f' y2="{height - 12}" stroke="#57606a" stroke-width="2"/>'
        f'<text x="10" y="{height - 17}">{_fmt_length(bar_m)}</text>'
        f'<text x="{width - 12}" y="18" text-anchor="end">N ↑</text></g>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every data-derived text above is escaped


def _nice_length(metres: float) -> float:
    for candidate in (50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10_000, 20_000, 50_000):
        if candidate >= metres:
            return float(candidate)
    return 100_000.0


def _fmt_length(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


# --- charts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: list[int]


def bar_chart_svg(
    title: str, labels: Sequence[str], series: Sequence[Series], *, width: int = 440, height: int = 240
) -> Markup:
    """Grouped bars per day with a y axis and a legend."""
    left, right, top, bottom = 34, 8, 28, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([1, *(v for s in series for v in s.values)])
    ceiling = _nice_ceiling(peak)
    groups = max(1, len(labels))
    group_w = plot_w / groups
    bar_w = max(1.5, (group_w - 4) / max(1, len(series)))
    totals = ", ".join(f"{s.name} {sum(s.values)}" for s in series)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}:'
        f' {escape(totals)}"'
        f' xmlns="http://www.w3.org/2000/svg">'
        f'<text x="{left}" y="16" font-size="12" font-weight="700" fill="#1f2328">{escape(title)}</text>'
    ]
    for i in range(5):
        value = ceiling * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{COLOURS["grid"]}"/>'
            f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="9.5" text-anchor="end"'
            f' fill="{COLOURS["text"]}">{value:g}</text>'
        )
    for g, label in enumerate(labels):
        gx = left + g * group_w + 2
        for k, s in enumerate(series):
            value = s.values[g] if g < len(s.values) else 0
            h = plot_h * value / ceiling
            parts.append(
                f'<rect x="{gx + k * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 0.5:.1f}"'
                f' height="{h:.1f}"'
                f' fill="{s.colour}"><title>{escape(label)} · {escape(s.name)}: {value}</title></rect>'
            )
        if groups <= 8 or g % max(1, groups // 7) == 0:
            parts.append(
                f'<text x="{left + g * group_w + group_w / 2:.1f}" y="{top + plot_h + 12}" font-size="9"'
                f' text-anchor="middle" fill="{COLOURS["text"]}">{escape(label)}</text>'
            )
    lx = left
    for s in series:
        parts.append(
            f'<rect x="{lx}" y="{height - 12}" width="9" height="9" fill="{s.colour}"/>'
            f'<text x="{lx + 12}" y="{height - 4}" font-size="10"'
            f' fill="{COLOURS["text"]}">{escape(s.name)}</text>'
        )
        lx += 18 + 6 * len(s.name)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every data-derived text above is escaped


def _nice_ceiling(value: float) -> float:
    magnitude = 10 ** math.floor(math.log10(value)) if value > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= value:
            return max(4.0, factor * magnitude)
    return 10.0 * magnitude
