"""The effective configuration of the DQM, in one place.

Sources, lowest priority first:

1. built-in defaults (an SQLite database and an embedded broker under the data directory);
2. an optional TOML file: the path given with ``--config`` or ``DQM_CONFIG``, otherwise ``dqm.toml``
   in the working directory if it exists. Relative paths in the file are relative to the file;
3. environment variables ``DQM_DATABASE_URL``, ``DQM_BROKER_URL``, ``DQM_DATA_DIR``,
   ``DQM_RAW_ROOTS`` (directories and ``root://`` URLs separated by ``:``; the ``:`` of a URL's
   scheme and port separate nothing, see :func:`dqm.rawformat.split_raw_roots`). Environment
   variables win.

Example ``dqm.toml``::

    database_url = "postgresql+psycopg://dqm:secret@db.example.org/dqm"
    broker_url = "amqp://dqm:secret@mq.example.org:5672//"
    data_dir = "/srv/dqm"
    raw_roots = ["/data/raw", "root://eos.example.org//eos/juno/raw"]

Every problem (malformed URL, unknown key, unreadable file) raises :class:`~dqm.errors.ConfigError`
with one sentence that names the source and what is expected.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dqm import eventtable
from dqm.errors import ConfigError, DQMError
from dqm.paths import PROJECT_ROOT
from dqm.users import Role, parse_role

__all__ = ["PROJECT_ROOT", "AlarmSettings", "Settings", "load_settings", "mask_url"]

#: Environment variable naming the TOML configuration file.
CONFIG_FILE_ENV = "DQM_CONFIG"

#: Configuration keys, their environment variables and what they mean.
KEYS: dict[str, tuple[str, str]] = {
    "database_url": (
        "DQM_DATABASE_URL",
        "SQLAlchemy URL of the DQM database (sqlite, mysql+pymysql, postgresql+psycopg)",
    ),
    "broker_url": (
        "DQM_BROKER_URL",
        "kombu URL of the message broker (filesystem:// is the embedded default, amqp:// for RabbitMQ)",
    ),
    "broker_queue": ("DQM_BROKER_QUEUE", "queue on which data transfer announces runs and files"),
    "data_dir": ("DQM_DATA_DIR", "directory for the embedded database, broker and raw data"),
    "raw_roots": ("DQM_RAW_ROOTS", "directories and root:// URLs raw files may come from"),
    "analyses_file": (
        "DQM_ANALYSES_FILE",
        "TOML file of the operator's analyses, declared beside the built-in ones",
    ),
    "checks_file": (
        "DQM_CHECKS_FILE",
        "TOML file of the operator's checks, declared beside the built-in ones",
    ),
    "smtp_url": (
        "DQM_SMTP_URL",
        "SMTP server for alarm e-mails: smtp://host:port, smtps:// or smtp+starttls://",
    ),
    "alarm_sender": ("DQM_ALARM_SENDER", "From address of alarm e-mails"),
    "alarm_recipients": (
        "DQM_ALARM_RECIPIENTS",
        "shifters' addresses for alarm e-mails (comma-separated)",
    ),
    "alarm_expert_recipients": (
        "DQM_ALARM_EXPERT_RECIPIENTS",
        "experts' addresses, who also get alarms not acknowledged within escalate_after",
    ),
    "webhook_url": ("DQM_WEBHOOK_URL", "URL alarms are POSTed to as JSON with a text field"),
    "expert_webhook_url": (
        "DQM_EXPERT_WEBHOOK_URL",
        "URL escalated alarms are POSTed to (default: webhook_url)",
    ),
    "remind_after": (
        "DQM_REMIND_AFTER",
        "an unacknowledged alarm is notified again this often (seconds, or 10min, 1h)",
    ),
    "escalate_after": (
        "DQM_ESCALATE_AFTER",
        "an alarm unacknowledged this long goes to the experts as well",
    ),
    "warning_streak": (
        "DQM_WARNING_STREAK",
        "a check Warning in this many consecutive runs of a type opens an alarm",
    ),
    "stall_after": (
        "DQM_STALL_AFTER",
        "a run taking data with files waiting and none done for this long opens an alarm",
    ),
    "dashboard_url": ("DQM_DASHBOARD_URL", "the dashboard's address, for links in notifications"),
    "roles": (
        "DQM_ROLES",
        "roles of logged-in users by name or as group:NAME (a TOML table, or JSON in the variable)",
    ),
    "roles_claim": (
        "DQM_ROLES_CLAIM",
        "the key of the OAuth provider's user information that lists the user's groups",
    ),
    "api_token": (
        "DQM_API_TOKEN",
        "the token the JSON API of dqm serve asks for (none: the API is open, read-only)",
    ),
    "api_rate": (
        "DQM_API_RATE",
        "requests a minute one client may make to the JSON API (0: no limit)",
    ),
    "mask_consecutive": (
        "DQM_MASK_CONSECUTIVE",
        "a PMT dead in this many consecutive runs of a type goes into a mask derived from them",
    ),
    "compact_after": (
        "DQM_COMPACT_AFTER",
        "a final run's per-file histograms and PMT sums are dropped this long after it ended",
    ),
    "event_sample": (
        "DQM_EVENT_SAMPLE",
        "events a run keeps for its event-level plots, a uniform sample ('all': every event)",
    ),
    "default_role": (
        "DQM_DEFAULT_ROLE",
        "the role of a logged-in user whom the roles do not name (viewer, shifter, expert)",
    ),
}

#: Database backends and the drivers the DQM is tested with.
DATABASE_DRIVERS = {
    "sqlite": "pysqlite",
    "mysql": "pymysql",
    "mariadb": "pymysql",
    "postgresql": "psycopg",
}

#: Broker transports accepted in ``DQM_BROKER_URL``.
BROKER_SCHEMES = {"filesystem", "memory", "amqp", "amqps", "pyamqp", "redis", "rediss"}


#: Reconstruction methods: ``tlh`` (time-likelihood vertex fit) and ``centroid`` (charge centroid).
REC_METHODS = ("tlh", "centroid")
#: The method of a run that does not name one.
DEFAULT_REC_METHOD = "tlh"


@dataclass(frozen=True)
class AlarmSettings:
    """Where alarms are sent, and when they are repeated.

    Attributes:
        smtp_url: SMTP server for e-mails (None: no e-mail).
        sender: From address of the e-mails.
        recipients: the shifters' addresses.
        expert_recipients: the experts' addresses (escalated alarms).
        webhook_url: where alarms are POSTed as JSON (None: no webhook).
        expert_webhook_url: where escalated alarms are POSTed (None: ``webhook_url``).
        remind_after_s: an unacknowledged alarm is notified again this often, seconds.
        escalate_after_s: an alarm unacknowledged this long goes to the experts, seconds.
        warning_streak: Warning in this many consecutive runs of a type opens an alarm.
        stall_after_s: a run taking data with files waiting and none done for this long opens an
            alarm, seconds.
        dashboard_url: the dashboard's address, for links.
    """

    smtp_url: str | None = None
    sender: str = "dqm@localhost"
    recipients: tuple[str, ...] = ()
    expert_recipients: tuple[str, ...] = ()
    webhook_url: str | None = None
    expert_webhook_url: str | None = None
    remind_after_s: float = 600.0
    escalate_after_s: float = 1800.0
    warning_streak: int = 3
    stall_after_s: float = 900.0
    dashboard_url: str = "http://127.0.0.1:5006"


@dataclass(frozen=True)
class Settings:
    """The effective configuration.

    Attributes:
        database_url: SQLAlchemy URL of the DQM database, with an explicit driver.
        broker_url: kombu URL of the message broker; ``filesystem://`` keeps the queues under
            ``data_dir/broker``.
        broker_queue: name of the queue (and routing key) of data-transfer messages.
        data_dir: directory for the embedded database and broker and for simulated raw data.
        raw_roots: where raw files may come from, local directories (Path) and ``root://`` URL
            prefixes (str); a file outside all of them is refused.
        analyses_file: the operator's analysis declarations (None: only the built-in ones and
            those of installed packages).
        checks_file: the operator's check declarations (None: only the built-in ones).
        alarms: where alarms go and when they are repeated.
        roles: the role of logged-in users by name, or by group as ``group:NAME``.
        roles_claim: the key of an OAuth provider's user information that lists the groups.
        default_role: the role of a logged-in user whom :attr:`roles` does not name.
        api_token: the token the JSON API asks for (None: open).
        api_rate: requests a minute one client may make to the JSON API (0: no limit).
        mask_consecutive: a PMT dead in this many consecutive runs goes into a derived mask.
        compact_after_s: seconds after its end when a final run's per-file histograms and PMT
            sums are dropped, its run-level results kept (None: never).
        event_sample: reconstructed events a run keeps for its event-level plots, a uniform
            sample of them (None: every event); see :mod:`dqm.eventtable`.
        config_file: the TOML file that was read, if any.
        sources: for each key, where its value came from (``default``, the file path, or the
            environment variable).
    """

    database_url: str
    broker_url: str
    broker_queue: str
    data_dir: Path
    raw_roots: tuple[Path | str, ...]
    analyses_file: Path | None = None
    checks_file: Path | None = None
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    roles: Mapping[str, Role] = field(default_factory=dict)
    roles_claim: str = "groups"
    default_role: Role = Role.VIEWER
    api_token: str | None = None
    api_rate: int = 6000
    mask_consecutive: int = 3
    compact_after_s: float | None = 7 * 86_400.0
    event_sample: int | None = eventtable.SAMPLE_EVENTS
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def broker_dir(self) -> Path:
        """Directory of the embedded filesystem broker."""
        return self.data_dir / "broker"

    @property
    def raw_dir(self) -> Path:
        """Directory where the simulator writes raw files: the first local raw root (under the
        data directory when every raw root is a URL)."""
        return next(
            (root for root in self.raw_roots if isinstance(root, Path)), self.data_dir / "raw"
        )

    def masked(self) -> dict[str, str]:
        """The configuration as strings, with passwords replaced by ``***``."""
        return {
            "database_url": mask_url(self.database_url),
            "broker_url": mask_url(self.broker_url),
            "broker_queue": self.broker_queue,
            "data_dir": str(self.data_dir),
            "raw_roots": ":".join(str(p) for p in self.raw_roots),
            "analyses_file": str(self.analyses_file) if self.analyses_file else "",
            "checks_file": str(self.checks_file) if self.checks_file else "",
            "smtp_url": mask_url(self.alarms.smtp_url) if self.alarms.smtp_url else "",
            "alarm_sender": self.alarms.sender,
            "alarm_recipients": ",".join(self.alarms.recipients),
            "alarm_expert_recipients": ",".join(self.alarms.expert_recipients),
            "webhook_url": mask_url(self.alarms.webhook_url) if self.alarms.webhook_url else "",
            "expert_webhook_url": mask_url(self.alarms.expert_webhook_url)
            if self.alarms.expert_webhook_url
            else "",
            "remind_after": f"{self.alarms.remind_after_s:g} s",
            "escalate_after": f"{self.alarms.escalate_after_s:g} s",
            "warning_streak": str(self.alarms.warning_streak),
            "stall_after": f"{self.alarms.stall_after_s:g} s",
            "dashboard_url": self.alarms.dashboard_url,
            "roles": ", ".join(f"{k}={v}" for k, v in sorted(self.roles.items())),
            "roles_claim": self.roles_claim,
            "default_role": str(self.default_role),
            "api_token": "***" if self.api_token else "",
            "api_rate": f"{self.api_rate} a minute" if self.api_rate else "no limit",
            "mask_consecutive": f"{self.mask_consecutive} runs",
            "compact_after": (
                "never" if self.compact_after_s is None else f"{self.compact_after_s:g} s"
            ),
            "event_sample": (
                "every event" if self.event_sample is None else f"{self.event_sample} events a run"
            ),
            "config_file": str(self.config_file) if self.config_file else "",
        }


def default_data_dir() -> Path:
    """``data/`` of the checkout when running from one, else ``./data``."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "data"
    return Path.cwd() / "data"


def mask_url(url: str) -> str:
    """Replace the password of a URL by ``***`` (other parts unchanged, even if malformed)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def check_database_url(url: str, source: str) -> str:
    """Validate a database URL and return it with an explicit, supported driver.

    Args:
        url: the URL as given.
        source: where it came from, for the error message (e.g. ``DQM_DATABASE_URL``).

    Raises:
        ConfigError: the URL is malformed, names an unsupported backend or lacks a database name.
    """
    example = (
        "expected e.g. sqlite:///data/dqm.sqlite, mysql+pymysql://root@127.0.0.1:3306/dqm "
        "or postgresql+psycopg://postgres@127.0.0.1:5432/dqm"
    )
    # Imported here: worker processes read the configuration's constants without SQLAlchemy.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"{source}: {url!r} is not a database URL; {example}.") from exc
    backend = parsed.get_backend_name()
    if backend not in DATABASE_DRIVERS:
        raise ConfigError(f"{source}: database backend {backend!r} is not supported; {example}.")
    driver = DATABASE_DRIVERS[backend]
    if "+" not in parsed.drivername and backend != "sqlite":
        parsed = parsed.set(drivername=f"{backend}+{driver}")
    elif parsed.get_driver_name() != driver:
        raise ConfigError(
            f"{source}: driver {parsed.get_driver_name()!r} is not supported for {backend}; "
            f"use {backend}+{driver}://."
        )
    if backend != "sqlite" and not parsed.database:
        raise ConfigError(f"{source}: {mask_url(url)!r} names no database; {example}.")
    if backend != "sqlite" and not parsed.host:
        raise ConfigError(f"{source}: {mask_url(url)!r} names no host; {example}.")
    return parsed.render_as_string(hide_password=False)


def check_broker_url(url: str, source: str) -> str:
    """Validate a kombu broker URL.

    Raises:
        ConfigError: the scheme is unknown, the URL is malformed or names no host where one is needed.
    """
    example = "expected e.g. filesystem:// (embedded) or amqp://guest:guest@127.0.0.1:5672//"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigError(
            f"{source}: {mask_url(url)!r} is not a broker URL ({exc}); {example}."
        ) from exc
    scheme = parts.scheme
    if scheme.startswith("sqla+"):
        check_database_url(url[len("sqla+") :], source)
        return url
    if scheme not in BROKER_SCHEMES:
        raise ConfigError(
            f"{source}: broker transport {scheme or url!r} is not supported; {example}."
        )
    if scheme not in {"filesystem", "memory"} and not parts.hostname:
        raise ConfigError(f"{source}: {mask_url(url)!r} names no host; {example}.")
    return url


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            content = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist.") from exc
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}.") from exc
    unknown = sorted(set(content) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"configuration file {path}: unknown key {unknown[0]!r}; known keys are "
            f"{', '.join(KEYS)}."
        )
    return content


def _as_path(value: object, base: Path, source: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: expected a path as a non-empty string, got {value!r}.")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _as_roots(value: object, base: Path, source: str) -> tuple[Path | str, ...]:
    """Raw roots: local directories and ``root://`` URLs, as a list or as one string split by
    :func:`dqm.rawformat.split_raw_roots` (at the ``:`` that are not a URL's)."""
    from dqm.errors import InvalidValueError
    from dqm.rawformat import is_remote, parse_xrootd_url, split_raw_roots

    if isinstance(value, str):
        items: list[object] = list(split_raw_roots(value))
    elif isinstance(value, list):
        items = list(value)
    else:
        raise ConfigError(
            f"{source}: expected a list of directories or root:// URLs, got {value!r}."
        )
    if not items:
        raise ConfigError(f"{source}: names no directory.")
    roots: list[Path | str] = []
    for item in items:
        if isinstance(item, str) and is_remote(item):
            try:
                parse_xrootd_url(item)
            except InvalidValueError as exc:
                raise ConfigError(f"{source}: {exc}") from None
            roots.append(item)
        else:
            roots.append(_as_path(item, base, source))
    return tuple(roots)


def load_settings(
    config_file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read the effective configuration.

    Args:
        config_file: a TOML file to read; overrides ``DQM_CONFIG`` and ``./dqm.toml``.
        env: the environment to read (default: ``os.environ``).

    Raises:
        ConfigError: any value is invalid; the message names its source.
    """
    env = os.environ if env is None else env
    path: Path | None = None
    if config_file is not None:
        path = Path(config_file)
    elif env.get(CONFIG_FILE_ENV):
        path = Path(env[CONFIG_FILE_ENV])
    elif Path("dqm.toml").is_file():
        path = Path("dqm.toml")

    raw: dict[str, tuple[object, Path, str]] = {}
    if path is not None:
        path = path.expanduser().resolve()
        for key, value in _read_toml(path).items():
            raw[key] = (value, path.parent, f"{path} ({key})")
    for key, (var, _doc) in KEYS.items():
        if env.get(var):
            raw[key] = (env[var], Path.cwd(), var)

    sources = {key: "default" for key in KEYS}
    for key, (_value, _base, source) in raw.items():
        sources[key] = str(path) if source.startswith(str(path)) else source

    data_dir = default_data_dir()
    if "data_dir" in raw:
        data_dir = _as_path(*raw["data_dir"])
    raw_roots: tuple[Path | str, ...] = (data_dir / "raw",)
    if "raw_roots" in raw:
        raw_roots = _as_roots(*raw["raw_roots"])

    analyses_file = _as_path(*raw["analyses_file"]) if "analyses_file" in raw else None
    checks_file = _as_path(*raw["checks_file"]) if "checks_file" in raw else None
    alarms = _alarm_settings(raw)
    roles = _roles(*raw["roles"][::2]) if "roles" in raw else {}
    roles_claim = "groups"
    if "roles_claim" in raw:
        value, _base, source = raw["roles_claim"]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{source}: expected a non-empty string, got {value!r}.")
        roles_claim = value.strip()
    default_role = _role(*raw["default_role"][::2]) if "default_role" in raw else Role.VIEWER
    api_token = None
    if "api_token" in raw:
        value, _base, source = raw["api_token"]
        if not isinstance(value, str) or len(value.strip()) < 16:
            raise ConfigError(f"{source}: the API token must be a string of 16 characters or more.")
        api_token = value.strip()
    api_rate = 6000
    if "api_rate" in raw:
        value, _base, source = raw["api_rate"]
        try:
            api_rate = int(str(value))
        except ValueError:
            api_rate = -1
        if isinstance(value, bool) or not 0 <= api_rate <= 10_000_000:
            raise ConfigError(
                f"{source}: expected a number of requests a minute (0: no limit), got {value!r}."
            )
    compact_after_s: float | None = 7 * 86_400.0
    if "compact_after" in raw:
        value, _base, source = raw["compact_after"]
        if isinstance(value, str) and value.strip().lower() == "never":
            compact_after_s = None
        else:
            compact_after_s = _duration(value, source, maximum_s=3650 * 86_400.0, zero=True)
    event_sample: int | None = eventtable.SAMPLE_EVENTS
    if "event_sample" in raw:
        value, _base, source = raw["event_sample"]
        if isinstance(value, str) and value.strip().lower() == "all":
            event_sample = None
        else:
            try:
                event_sample = int(str(value).strip().replace("_", ""))
            except ValueError:
                event_sample = 0
            if isinstance(value, bool) or not 100 <= event_sample <= 100_000_000:
                raise ConfigError(
                    f"{source}: expected a number of events from 100 to 100000000, or 'all', "
                    f"got {value!r}."
                )
    mask_consecutive = 3
    if "mask_consecutive" in raw:
        value, _base, source = raw["mask_consecutive"]
        try:
            mask_consecutive = int(str(value))
        except ValueError:
            mask_consecutive = 0
        if isinstance(value, bool) or not 1 <= mask_consecutive <= 1000:
            raise ConfigError(f"{source}: expected a number of runs from 1 to 1000, got {value!r}.")

    database_url = check_database_url(
        *_url_value(raw, "database_url", f"sqlite:///{data_dir / 'dqm.sqlite'}")
    )
    broker_url = check_broker_url(*_url_value(raw, "broker_url", "filesystem://"))
    broker_queue = (
        _queue_name(*raw["broker_queue"][::2]) if "broker_queue" in raw else "dqm.transfer"
    )

    return Settings(
        database_url=database_url,
        broker_url=broker_url,
        broker_queue=broker_queue,
        data_dir=data_dir,
        raw_roots=raw_roots,
        analyses_file=analyses_file,
        checks_file=checks_file,
        alarms=alarms,
        roles=roles,
        roles_claim=roles_claim,
        default_role=default_role,
        api_token=api_token,
        api_rate=api_rate,
        mask_consecutive=mask_consecutive,
        compact_after_s=compact_after_s,
        event_sample=event_sample,
        config_file=path,
        sources=sources,
    )


_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*(s|sec|min|m|h|d)?\s*", re.IGNORECASE)
_UNIT_S = {None: 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_ADDRESS = re.compile(r"[^@\s,]+@[^@\s,]+")


def _duration(
    value: object, source: str, maximum_s: float = 10 * 86_400.0, zero: bool = False
) -> float:
    """Seconds from a number or a text such as ``90``, ``90s``, ``10min``, ``1.5h``, ``7d``
    (above 0, or 0 too with ``zero``, and below ``maximum_s``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ConfigError(
                f"{source}: expected a duration such as 600, 90s, 10min, 1h or 7d, got {value!r}."
            )
        seconds = float(match[1]) * _UNIT_S[match[2].lower() if match[2] else None]
    if not (0 <= seconds if zero else 0 < seconds) or not seconds < maximum_s:
        raise ConfigError(
            f"{source}: a duration must be {'at least' if zero else 'above'} 0 and below "
            f"{maximum_s / 86_400:g} days, got {value!r}."
        )
    return seconds


def _addresses(value: object, source: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{source}: expected e-mail addresses, comma-separated, got {value!r}.")
    addresses = tuple(i.strip() for i in items if i.strip())
    bad = [a for a in addresses if not _ADDRESS.fullmatch(a)]
    if bad:
        raise ConfigError(f"{source}: {bad[0]!r} is not an e-mail address.")
    return addresses


def _alarm_settings(raw: Mapping[str, tuple[object, Path, str]]) -> AlarmSettings:
    values: dict[str, object] = {}
    for key in ("smtp_url", "webhook_url", "expert_webhook_url", "dashboard_url", "alarm_sender"):
        if key in raw:
            value, _base, source = raw[key]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{source}: expected a non-empty string, got {value!r}.")
            values[key.removeprefix("alarm_")] = value.strip()
    if "sender" in values:
        _addresses(values["sender"], raw["alarm_sender"][2])
    for key in ("alarm_recipients", "alarm_expert_recipients"):
        if key in raw:
            values[key.removeprefix("alarm_")] = _addresses(raw[key][0], raw[key][2])
    for key in ("remind_after", "escalate_after", "stall_after"):
        if key in raw:
            values[f"{key}_s"] = _duration(raw[key][0], raw[key][2])
    if "warning_streak" in raw:
        value, _base, source = raw["warning_streak"]
        try:
            streak = int(str(value))
        except ValueError:
            streak = 0
        if isinstance(value, bool) or not 1 <= streak <= 100:
            raise ConfigError(f"{source}: expected a number of runs from 1 to 100, got {value!r}.")
        values["warning_streak"] = streak
    settings = AlarmSettings(**values)  # type: ignore[arg-type]
    if settings.smtp_url and not settings.recipients:
        source = raw["smtp_url"][2]
        raise ConfigError(
            f"{source}: e-mail needs recipients too (alarm_recipients or DQM_ALARM_RECIPIENTS)."
        )
    return settings


def _role(value: object, source: str) -> Role:
    try:
        return parse_role(value) if isinstance(value, str) else parse_role(repr(value))
    except DQMError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _roles(value: object, source: str) -> dict[str, Role]:
    """Roles by user or ``group:NAME``, from a TOML table or a JSON object."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: expected a JSON object of roles: {exc}.") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise ConfigError(
            f'{source}: expected roles by user or group, {{"alice": "expert", '
            f'"group:dqm-shift": "shifter"}}, got {value!r}.'
        )
    return {key: _role(role, f"{source}, {key}") for key, role in value.items()}


def _queue_name(value: object, source: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,200}", value):
        raise ConfigError(
            f"{source}: queue name must be 1-200 letters, digits, '_', '.', ':' or '-', got {value!r}."
        )
    return value


def _url_value(
    raw: Mapping[str, tuple[object, Path, str]], key: str, default: str
) -> tuple[str, str]:
    """The URL given for ``key`` (or the default) and the name of its source."""
    if key not in raw:
        return default, f"default {key}"
    value, _base, source = raw[key]
    if not isinstance(value, str):
        raise ConfigError(f"{source}: expected a URL string, got {value!r}.")
    return value, source
