"""Settings: one pydantic-settings class read from NOTIFY_* variables and a .env file."""

import re
import tempfile
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_serializer, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from notifyctl.caps import FrequencyCap, parse_frequency_cap
from notifyctl.timeutil import parse_duration, zone_name

APP_NAME = "notifyctl"

#: The mock's demo token (HS256 over {"sub": "notifyctl-demo"} with the mock's demo secret).
#: It only opens the mock; production refuses to start with it (see ``Settings``).
DEMO_SENDER_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJub3RpZnljdGwtZGVtbyJ9."
    "rdw16DqBQndLMQWnkBF1F5Ri_KkNvTDUSFJzo5twAgA"
)
#: The mock's demo secret (``mock.auth.DEMO_SECRET``; the core may not import the mock, a
#: test keeps the two equal). Production refuses it as any secret.
DEMO_MOCK_SECRET = "notifyctl-demo-secret-do-not-use-in-production"
#: What every placeholder in .env.example and the deploy examples says ("change-me"); a
#: value still containing it (in any spelling: CHANGE_ME, changeme) is refused in production.
#: As a word only: a host named "exchange-metrics" is no placeholder.
PLACEHOLDER = re.compile(r"(?<![a-z0-9])change[-_ ]?me(?![a-z0-9])", re.IGNORECASE)
#: The shortest session secret production accepts, in bytes (HMAC-SHA256 keys its size).
MIN_SECRET_BYTES = 32
#: The shortest login token production accepts, in characters (ours are 47).
MIN_LOGIN_TOKEN_CHARS = 32
#: A price per segment: digits, optionally a dot and more digits (not 1e3, -1, NaN, 1,5).
PRICE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,12})?")
#: The daemon's metrics port unless NOTIFY_METRICS_PORT says otherwise; `up --metrics-port`.
DEFAULT_METRICS_PORT = 8002


class Environment(StrEnum):
    dev = "dev"  #: local use: demo secrets allowed
    prod = "prod"  #: production: placeholder secrets refused


#: loguru's levels, quietest last.
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


class LogFormat(StrEnum):
    text = "text"  #: human-readable lines
    json = "json"  #: one JSON object per line


def default_database_url() -> str:
    """Return the SQLite file in the user data directory, creating the directory."""
    import platformdirs  # (only when NOTIFY_DATABASE_URL is unset: not on every start)

    data_dir = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'notifyctl.db'}"


class SmtpSecurity(StrEnum):
    starttls = "starttls"  #: plain connection upgraded with STARTTLS (port 587)
    tls = "tls"  #: TLS from the first byte (port 465)
    none = "none"  #: no encryption (a relay on localhost)


def default_log_file() -> Path:
    """The log file `notifyctl up` writes when NOTIFY_LOG_FILE is unset."""
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)) / "notifyctl.jsonl"


class Transport(StrEnum):
    aiohttp = "aiohttp"  #: httpx API over aiohttp's connection pool
    httpx = "httpx"  #: httpx's own pool (slows as concurrency grows, encode/httpx#3215)
    httptools = "httptools"  #: our lean HTTP/1.1 client on httptools (daemon/http1.py)


class Settings(BaseSettings):
    """Everything configurable, from ``NOTIFY_*`` environment variables or ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Environment = Environment.dev
    database_url: str = Field(default_factory=default_database_url)
    default_timezone: str = "UTC"
    sender_url: str = "http://127.0.0.1:8001/v1/send"
    sender_token: SecretStr = SecretStr(DEMO_SENDER_TOKEN)
    log_format: LogFormat = LogFormat.text
    log_level: str = "INFO"
    #: level of the lines on stderr when it should differ (`up` keeps its terminal quiet)
    log_console_level: str | None = None
    #: a file of JSON lines besides stderr (what `notifyctl logs` reads); unset = none
    log_file: Path | None = None
    #: when the log file is rotated: a size ("50 MB") or a time ("00:00", "1 week")
    log_rotation: str = "50 MB"
    #: how long rotated log files are kept ("14 days", or a count such as "10")
    log_retention: str = "14 days"
    #: log every request of every message and its outcome (two lines per message)
    log_messages: bool = True

    # --- the daemon -----------------------------------------------------------------
    #: requests in flight at once, per daemon process
    concurrency: int = Field(200, ge=1, le=10_000)
    #: sender processes per `notifyctl daemon` (one per spare core)
    workers: int = Field(1, ge=1, le=64)
    #: messages per second, all daemons together; 0 = no limit
    rate_limit: float = Field(0.0, ge=0)
    #: at most N messages to one client per rolling period across all mailings ("3/24h";
    #: s, m, h or d); transactional mailings are neither capped nor counted; empty = no cap
    frequency_cap: FrequencyCap | None = None
    #: seconds one request may take (and never past the mailing's end)
    request_timeout: float = Field(10.0, gt=0)
    #: requests made for one message before it is failed
    max_attempts: int = Field(20, ge=1)
    #: seconds: the longest pause between two attempts of one message
    retry_backoff_max: float = Field(60.0, gt=0)
    #: consecutive transient failures after which all sending pauses (circuit breaker)
    breaker_threshold: int = Field(20, ge=1)
    #: seconds a claimed message stays ours; a dead daemon's claims are taken over after it
    lease_seconds: float = Field(30.0, gt=0)
    #: seconds without progress while messages are due after which `daemon --check` fails
    stall_seconds: float = Field(120.0, gt=0)
    #: the daemon's heartbeat file (read by `daemon --check`); unset = in the temp directory
    heartbeat_file: Path | None = None
    #: HTTP client transport under the httpx API
    sender_transport: Transport = Transport.httptools
    #: port of the daemon's Prometheus /metrics (sender process k of --workers N: port + k); 0 = off
    #: (beside the API's 8000 and the mock's 8001, and on no port of Prometheus's list of
    #: exporter ports, where 9100 is node_exporter's: see the README, Observability)
    metrics_port: int = Field(DEFAULT_METRICS_PORT, ge=0, le=65535)
    #: address the daemon's metrics listen on (0.0.0.0 in containers)
    metrics_host: str = "127.0.0.1"

    # --- what sending costs -----------------------------------------------------------
    #: price of one SMS segment in the operator's currency ("0.05"); unset or empty = no
    #: costs shown
    segment_price: Decimal | None = None

    # --- the daily statistics email ----------------------------------------------------
    #: SMTP server for the daily report; unset = no email
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    #: "starttls" (port 587), "tls" (implicit TLS, port 465) or "none" (plain, local relays)
    smtp_security: SmtpSecurity = SmtpSecurity.starttls
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    #: the report's From address
    report_from: str = "notifyctl@localhost"
    #: who gets the daily report (JSON list of addresses)
    report_to: list[str] = []
    #: local time of day (HH:MM) after which the day's report is sent, once
    report_time: str = "08:00"
    #: the timezone of report_time and of the report's dates; unset = NOTIFY_DEFAULT_TIMEZONE
    report_timezone: str | None = None

    # --- the audit log ---------------------------------------------------------------
    #: how long audit entries are kept ("365d"; s, m, h or d), pruned by the daemon once
    #: a day; 0 or unset = forever
    audit_retention: timedelta | None = None

    # --- retention of messages and attempts (services.retention) ----------------------
    #: how long attempt rows (each request's answer) are kept, by their start; 0 = forever
    retention_attempts: timedelta | None = timedelta(days=30)
    #: how long after its end a finished mailing keeps its message rows; then only its
    #: counts stay (a summary row); 0 = forever
    retention_messages: timedelta | None = timedelta(days=365)

    # --- sign-in through an OpenID Connect provider ------------------------------------
    #: the provider's issuer URL (its /.well-known/openid-configuration is read); unset = off
    oidc_issuer: str | None = None
    #: our client id at the provider; ID tokens must be issued to it (their "aud")
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    #: who may sign in: subjects or e-mail addresses; empty = anyone the provider vouches for
    oidc_allowed_users: list[str] = []
    #: who may sign in by group: values of the ID token's "groups" claim; empty = no group rule
    oidc_allowed_groups: list[str] = []

    # --- the admin UI ----------------------------------------------------------------
    #: the login token `notifyctl api` accepts (login link, bearer); unset = random per start
    login_token: SecretStr | None = None
    #: signs the admin UI's session cookies; unset = a random key per process, so sign-ins
    #: end when the API restarts (set it when several API replicas serve one UI)
    session_secret: SecretStr | None = None
    #: send the session cookie over HTTPS only (set when the UI is served over TLS)
    cookie_secure: bool = False
    #: the address people open the UI at (https://notify.example.com): the OIDC redirect
    #: URI is built from it, never from a request's Host header; unset = no OIDC sign-in
    public_url: str | None = None

    # --- request limits (the REST API and the admin UI) -------------------------------
    #: bytes a request body may have (JSON, forms); a larger one is refused with 413 unread
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    #: bytes a CSV upload to the admin UI's client import may have (spooled to a temp file)
    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0)

    @field_validator("report_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            raise ValueError(f"{value!r} is not a time of day HH:MM")
        return f"{int(hours):02d}:{int(minutes):02d}"

    @field_validator("segment_price", mode="before")
    @classmethod
    def _price(cls, value: object) -> Decimal | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None  # an empty variable (compose passes NOTIFY_SEGMENT_PRICE=) means unset
        text = str(value).strip()
        # Plain digits only: no exponent (1e999999), NaN, infinity, sign or thousands separator.
        if not PRICE.fullmatch(text):
            raise ValueError(
                "not a price such as 0.05 (a non-negative decimal number with a dot, "
                "the price of one SMS segment in your currency)"
            )
        return Decimal(text)

    @field_validator("frequency_cap", mode="before")
    @classmethod
    def _cap(cls, value: object) -> FrequencyCap | None:
        if value is None or isinstance(value, FrequencyCap):
            return value
        return parse_frequency_cap(str(value))

    @field_serializer("frequency_cap")
    def _cap_text(self, cap: FrequencyCap | None) -> str | None:
        return None if cap is None else cap.text  # (read back by ``_cap``: settings are copied)

    @field_validator("audit_retention", "retention_attempts", "retention_messages", mode="before")
    @classmethod
    def _period(cls, value: object) -> timedelta | None:
        """``365d``, ``12h``, ``30m``, ``45s``; ``0`` (or nothing) keeps forever: None."""
        if value is None or isinstance(value, timedelta):
            return value or None
        text = str(value)
        return (parse_duration(text) or None) if text.strip() else None

    @field_validator("default_timezone", "report_timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = zone_name(value)  # the rule client timezones follow: no "localtime"
        if name is None:
            raise ValueError(f"{value!r} is not an IANA timezone such as Europe/Moscow")
        return name

    @field_validator("log_level", "log_console_level")
    @classmethod
    def _log_level(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip().upper() not in LOG_LEVELS:
            raise ValueError(f"not a log level: one of {', '.join(LOG_LEVELS)}")
        return value.strip().upper()

    @field_validator("log_file")
    @classmethod
    def _log_file(cls, value: Path | None) -> Path | None:
        if value is not None and value.is_dir():
            raise ValueError("is a folder; name a file in it, such as notifyctl.jsonl")
        return value

    @field_validator("sender_url")
    @classmethod
    def _sender_url(cls, value: str) -> str:
        parts = urlsplit(value)
        # The value is not repeated in the errors: it may hold a password.
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL such as https://sms.example.com/v1/send")
        if parts.username or parts.password:
            raise ValueError(
                "holds user:password@ (which the HTTP client refuses to send with our "
                "bearer token): give the sending API's credential as NOTIFY_SENDER_TOKEN"
            )
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError(
                "holds a ?query or #fragment: each message is posted to this URL's path "
                "followed by /{message id}, such as https://sms.example.com/v1/send/42"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _origin_url(cls, value: str | None) -> str | None:
        if not value:
            return None  # an empty variable (compose passes NOTIFY_PUBLIC_URL=) means unset
        parts = urlsplit(value)
        if not (
            re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+/?", value)  # no space, tab, #, ? …
            and parts.scheme in ("http", "https")
            and parts.hostname
            and (parts.port or 0) >= 0  # reading it refuses a port that is not a number
            and parts.path in ("", "/")
            and not (parts.query or parts.fragment or parts.username or parts.password)
        ):
            # The value is not repeated: one with user:password@ would end up in a log.
            raise ValueError(
                "not a site address such as https://notify.example.com "
                "(http or https, a host, an optional port, nothing after it)"
            )
        return value.rstrip("/")

    @property
    def heartbeat_path(self) -> Path:
        """Where `notifyctl daemon` writes its progress for `daemon --check`."""
        return self.heartbeat_file or Path(tempfile.gettempdir()) / "notifyctl-daemon.heartbeat"

    @property
    def report_zone(self) -> str:
        """The timezone of the daily report's time and dates."""
        return self.report_timezone or self.default_timezone

    @model_validator(mode="after")
    def _lease_outlives_a_request(self) -> "Settings":
        if self.lease_seconds < self.request_timeout + 5:
            raise ValueError("NOTIFY_LEASE_SECONDS must be at least NOTIFY_REQUEST_TIMEOUT + 5")
        return self

    @model_validator(mode="after")
    def _no_weak_secrets_in_prod(self) -> "Settings":
        problems = weak_settings(self) if self.env is Environment.prod else []
        if problems:
            first, others = problems[0], [name for name, _ in problems[1:]]
            also = f"; also refused: {', '.join(others)}" if others else ""
            # A custom error: its text is shown as it is, without pydantic's "Value error, ".
            raise PydanticCustomError(
                "weak_setting",
                "NOTIFY_ENV=prod refuses {name}: {why}{also}",
                {"name": first[0], "why": first[1], "also": also},
            )
        return self


#: Values public in the code: the mock's demo token and secret.
DEMO_VALUES = {
    DEMO_SENDER_TOKEN: "the mock's demo token",
    DEMO_MOCK_SECRET: "the mock's demo secret",
}


def weak_settings(settings: Settings) -> list[tuple[str, str]]:
    """What production refuses in ``settings``: (variable, why) pairs, never the values.

    Any value still holding the placeholder of .env.example or equal to a demo value of
    the code; an empty sender token; a session secret unset or shorter than
    ``MIN_SECRET_BYTES``; a login token shorter than ``MIN_LOGIN_TOKEN_CHARS`` (unset is
    fine: a random one per start); a provider configured without ``NOTIFY_PUBLIC_URL``.
    One reason per variable, the most telling first.
    """
    problems: dict[str, str] = {}
    for name in Settings.model_fields:
        for text in _texts(getattr(settings, name)):
            text = text.strip()
            if text in DEMO_VALUES:
                problems.setdefault(
                    _variable(name), f"it is {DEMO_VALUES[text]}, public in the code"
                )
            elif PLACEHOLDER.search(text):
                problems.setdefault(_variable(name), "it still holds the placeholder 'change-me'")
    if not _secret(settings.sender_token).strip():
        problems.setdefault("NOTIFY_SENDER_TOKEN", "it is empty; set the sending API's token")
    session = _secret(settings.session_secret).strip()
    if len(session.encode()) < MIN_SECRET_BYTES:
        problems.setdefault(
            "NOTIFY_SESSION_SECRET",
            f"{'it is shorter than' if session else 'it is unset; set at least'} "
            f"{MIN_SECRET_BYTES} random bytes (python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')",
        )
    login = _secret(settings.login_token).strip()
    if login and len(login) < MIN_LOGIN_TOKEN_CHARS:
        problems.setdefault(
            "NOTIFY_LOGIN_TOKEN",
            f"it is shorter than {MIN_LOGIN_TOKEN_CHARS} characters "
            "(or leave it unset: a random one per start)",
        )
    if settings.oidc_issuer and not settings.public_url:
        problems.setdefault(
            "NOTIFY_PUBLIC_URL",
            "it is unset while NOTIFY_OIDC_ISSUER is set; the provider's redirect needs "
            "the address users open (e.g. https://notify.example.com)",
        )
    return list(problems.items())


def _variable(field: str) -> str:
    return f"NOTIFY_{field.upper()}"


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _texts(value: object) -> list[str]:
    """A setting's value as the strings it holds (a list holds several; None none)."""
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [_secret(v) if isinstance(v, SecretStr) else str(v) for v in values]


@lru_cache
def get_settings() -> Settings:
    """Return the settings of this process (read once; tests call ``cache_clear``)."""
    return Settings()
