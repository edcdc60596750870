"""Settings read from environment variables (and `.env`), validated once at start."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE = f"sqlite:///{ROOT / 'var' / 'doorstep.db'}"
DEVELOPMENT_SECRET = "development-only-secret"  # noqa: S105 - refused outside development below
DEVELOPMENT_BOT_TOKEN = "123456:development-token"  # noqa: S105 - a placeholder, never used in production
PLACEHOLDER_TWILIO_ACCOUNT = "AC00000000000000000000000000000000"
TWILIO_API = "https://api.twilio.com"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = DEFAULT_SQLITE
    port: int = 8000
    redis_url: str | None = None
    public_url: str = "http://localhost:8000"
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    log_level: str = "INFO"
    log_json: bool = True

    twilio_account_sid: str = PLACEHOLDER_TWILIO_ACCOUNT
    twilio_auth_token: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    twilio_sms_from: str = "+15145550100"
    twilio_whatsapp_from: str = "+15145550101"
    twilio_api_url: str = TWILIO_API
    twilio_messages_per_second: float = 1.0

    # None turns the channel off in production; elsewhere a placeholder keeps it on (see telegram_token)
    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    telegram_api_url: str = "https://api.telegram.org"
    telegram_bot_username: str = "DoorstepDemoBot"
    # the web sandbox (/sandbox): on by default except in production, where only true turns it on
    sandbox_enabled: bool | None = None

    urban_speed_kmh: float = 30.0
    max_body_bytes: int = 1_048_576
    scheduler_enabled: bool = True
    outbox_enabled: bool = True
    outbox_poll_seconds: float = 1.0
    outbox_max_attempts: int = 6
    outbox_backoff_seconds: float = 2.0  # first retry; doubles each attempt, with jitter
    outbox_backoff_max_seconds: float = 600.0
    outbox_lease_seconds: float = 60.0  # a claimed row whose worker died is claimed again after this
    twilio_timeout_seconds: float = 10.0
    # production scale (core/leader.py, core/ratelimit.py, core/db.py)
    database_pool_size: int = 10  # per process; PostgreSQL only (max_connections must cover N processes)
    leader_retry_seconds: float = 2.0  # how often a follower tries the scheduler lock: the fail-over time
    tracking_guess_limit: int = 5  # wrong tracking/postal-code pairs a sender may give per window
    tracking_guess_window_seconds: float = 3600.0
    # what is kept and for how long (core/retention.py); the purge runs daily in the scheduler's leader
    retention_days: int = Field(default=180, ge=0)  # silent conversations, their messages, notifications
    retention_receipt_days: int = Field(default=7, ge=2)  # handled webhooks' ids (refuse a retry)
    retention_hour_utc: int = Field(default=3, ge=0, le=23)

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            required = ["secret_key", "twilio_auth_token"]
            if self.telegram_token is not None:
                required.append("telegram_webhook_secret")  # only a running channel needs its secret
            for name in required:
                value: SecretStr = getattr(self, name)
                if value.get_secret_value() == DEVELOPMENT_SECRET:
                    raise ValueError(f"{name.upper()} must be set in production")
        return self

    @cached_property
    def async_database_url(self) -> str:
        """The URL with the asyncio driver that the app uses."""
        return to_async_url(self.database_url)

    @property
    def telegram_token(self) -> SecretStr | None:
        """The bot token the Telegram channel runs with, or None when the channel is off.

        Outside production a placeholder stands in, so development, the sandbox and the tests reach
        a loopback Bot API (`TELEGRAM_API_URL`) without a real bot.
        """
        if self.telegram_bot_token is not None and self.telegram_bot_token.get_secret_value():
            return self.telegram_bot_token
        return None if self.environment == "production" else SecretStr(DEVELOPMENT_BOT_TOKEN)

    @property
    def twilio_sends(self) -> bool:
        """Whether SMS and WhatsApp go out. Not with the placeholder account against Twilio itself
        (`make run` without credentials): replies and notifications then wait in the outbox rather
        than knock at Twilio with an account that does not exist."""
        return (
            self.twilio_account_sid != PLACEHOLDER_TWILIO_ACCOUNT
            or self.twilio_api_url.rstrip("/") != TWILIO_API
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def to_async_url(url: str) -> str:
    if url.startswith("sqlite:///") or url.startswith("sqlite+pysqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def to_sync_url(url: str) -> str:
    if url.startswith("sqlite+aiosqlite:///"):
        return "sqlite:///" + url.split(":///", 1)[1]
    for prefix in ("postgresql://", "postgres://", "postgresql+asyncpg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
