"""Wiring of the console into the app: its routers, its static files, its live-update hub."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from console import api, auth, live, pages
from console.rendering import STATIC


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(auth.build_router())
    app.include_router(pages.build_router())
    app.include_router(api.build_router())
    app.state.starters.append(live.start_live)
