"""Configuration: defaults, TOML file, environment variables that win, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dqm.config import PROJECT_ROOT, load_settings, mask_url
from dqm.errors import ConfigError
from dqm.users import Role


def test_defaults_use_the_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.data_dir == PROJECT_ROOT / "data"
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'data' / 'dqm.sqlite'}"
    assert settings.broker_url == "filesystem://"
    assert settings.raw_roots == (PROJECT_ROOT / "data" / "raw",)
    assert settings.config_file is None
    assert set(settings.sources.values()) == {"default"}


def test_toml_file_then_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "site" / "dqm.toml"
    config.parent.mkdir()
    config.write_text(
        'database_url = "postgresql://dqm:s3cret@db.example.org/dqm"\n'
        'data_dir = "state"\n'
        'raw_roots = ["/data/raw", "incoming"]\n'
    )
    settings = load_settings(config, env={})
    # The driver the DQM is tested with is made explicit; relative paths follow the file.
    assert settings.database_url == "postgresql+psycopg://dqm:s3cret@db.example.org/dqm"
    assert settings.data_dir == tmp_path / "site" / "state"
    assert settings.raw_roots == (Path("/data/raw"), tmp_path / "site" / "incoming")
    assert settings.sources["database_url"] == str(config)

    env = {"DQM_DATABASE_URL": "mysql://root@127.0.0.1:3306/test", "DQM_RAW_ROOTS": "/a:/b"}
    settings = load_settings(config, env=env)
    assert settings.database_url == "mysql+pymysql://root@127.0.0.1:3306/test"
    assert settings.raw_roots == (Path("/a"), Path("/b"))
    assert settings.sources["database_url"] == "DQM_DATABASE_URL"
    assert settings.data_dir == tmp_path / "site" / "state"  # still from the file


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('broker_url = "amqp://guest:guest@127.0.0.1:5672//"\n')
    settings = load_settings(env={"DQM_CONFIG": str(config)})
    assert settings.broker_url == "amqp://guest:guest@127.0.0.1:5672//"
    assert settings.config_file == config


def test_passwords_are_masked() -> None:
    settings = load_settings(
        env={
            "DQM_DATABASE_URL": "postgresql+psycopg://dqm:s3cret@db/dqm",
            "DQM_BROKER_URL": "amqp://mq:hunter2@mq.example.org:5672//",
        }
    )
    shown = settings.masked()
    assert shown["database_url"] == "postgresql+psycopg://dqm:***@db/dqm"
    assert shown["broker_url"] == "amqp://mq:***@mq.example.org:5672//"
    assert "s3cret" not in str(shown) and "hunter2" not in str(shown)
    assert mask_url("amqp://u:p@h:99999") == "amqp://u:***@h:99999"  # even when malformed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DQM_DATABASE_URL": "not a url"}, "DQM_DATABASE_URL: 'not a url' is not a database URL"),
        ({"DQM_DATABASE_URL": "oracle://u@h/db"}, "backend 'oracle' is not supported"),
        ({"DQM_DATABASE_URL": "mysql+mysqldb://u@h/db"}, "use mysql\\+pymysql://"),
        ({"DQM_DATABASE_URL": "postgresql+psycopg://u@h"}, "names no database"),
        ({"DQM_DATABASE_URL": "postgresql+psycopg:///db"}, "names no host"),
        ({"DQM_BROKER_URL": "kafka://h:9092"}, "broker transport 'kafka' is not supported"),
        ({"DQM_BROKER_URL": "amqp://u:pw@h:99999//"}, "not a broker URL"),
        ({"DQM_BROKER_URL": "amqp://"}, "names no host"),
        ({"DQM_REMIND_AFTER": "soon"}, "DQM_REMIND_AFTER: expected a duration such as 600"),
        ({"DQM_ESCALATE_AFTER": "0"}, "above 0 and below 10 days"),
        ({"DQM_ALARM_RECIPIENTS": "a@b.c, nobody"}, "'nobody' is not an e-mail address"),
        ({"DQM_SMTP_URL": "smtp://mail:25"}, "e-mail needs recipients too"),
        ({"DQM_WARNING_STREAK": "many"}, "a number of runs from 1 to 100"),
        ({"DQM_MASK_CONSECUTIVE": "0"}, "DQM_MASK_CONSECUTIVE: expected a number of runs from 1"),
        ({"DQM_MASK_CONSECUTIVE": "three"}, "a number of runs from 1 to 1000, got 'three'"),
        ({"DQM_ROLES": "alice=expert"}, "DQM_ROLES: expected a JSON object of roles"),
        ({"DQM_ROLES": '["alice"]'}, "DQM_ROLES: expected roles by user or group"),
        ({"DQM_ROLES": '{"alice": "boss"}'}, "DQM_ROLES, alice: 'boss' is not a role"),
        ({"DQM_DEFAULT_ROLE": "root"}, "DQM_DEFAULT_ROLE: 'root' is not a role"),
        ({"DQM_ROLES_CLAIM": " "}, "DQM_ROLES_CLAIM: expected a non-empty string"),
        ({"DQM_API_TOKEN": "short"}, "DQM_API_TOKEN: the API token must be a string of 16"),
        ({"DQM_API_RATE": "fast"}, "DQM_API_RATE: expected a number of requests a minute"),
        ({"DQM_API_RATE": "-5"}, "DQM_API_RATE: expected a number of requests a minute"),
    ],
)
def test_malformed_values_are_one_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env=env)
    assert "\n" not in str(info.value)
    assert "pw" not in str(info.value)


def test_bad_files_are_one_clear_error(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('databse_url = "sqlite://"\n')
    with pytest.raises(ConfigError, match="unknown key 'databse_url'; known keys are database_url"):
        load_settings(unknown, env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("database_url = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(broken, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text("raw_roots = 3\n")
    with pytest.raises(ConfigError, match="expected a list of directories"):
        load_settings(wrong_type, env={})


def test_the_retention_delay(tmp_path: Path) -> None:
    assert load_settings(env={}).compact_after_s == 7 * 86_400
    for text, seconds in (("30d", 30 * 86_400.0), ("12h", 43_200.0), ("0", 0.0), ("never", None)):
        assert load_settings(env={"DQM_COMPACT_AFTER": text}).compact_after_s == seconds
    assert load_settings(env={"DQM_COMPACT_AFTER": "never"}).masked()["compact_after"] == "never"
    for bad in ("soon", "-1d", "4000d"):
        with pytest.raises(ConfigError, match="DQM_COMPACT_AFTER"):
            load_settings(env={"DQM_COMPACT_AFTER": bad})


def test_raw_roots_may_be_root_urls(tmp_path: Path) -> None:
    url = "root://eos.example.org//eos/juno/raw"
    settings = load_settings(env={"DQM_DATA_DIR": str(tmp_path), "DQM_RAW_ROOTS": url})
    assert settings.raw_roots == (url,)
    assert settings.raw_dir == tmp_path / "raw"  # the simulator writes locally all the same
    both = f"root://eos.example.org:1094//eos/juno/raw:{tmp_path}/local"
    settings = load_settings(env={"DQM_DATA_DIR": str(tmp_path), "DQM_RAW_ROOTS": both})
    assert settings.raw_roots == ("root://eos.example.org:1094//eos/juno/raw", tmp_path / "local")
    assert settings.raw_dir == tmp_path / "local"
    assert load_settings(env={"DQM_RAW_ROOTS": both}).masked()["raw_roots"] == both
    config = tmp_path / "dqm.toml"
    config.write_text(f'raw_roots = ["{url}", "incoming"]\n')
    assert load_settings(config, env={}).raw_roots == (url, tmp_path / "incoming")
    for bad, words in (
        ("https://eos.example.org//raw", "scheme 'https' is not supported"),
        ("root://eos.example.org:x//raw", "port 'x' is not a number"),
    ):
        with pytest.raises(ConfigError, match=f"DQM_RAW_ROOTS.*{words}"):
            load_settings(env={"DQM_RAW_ROOTS": bad})


def test_alarm_settings_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "dqm.toml"
    config.write_text(
        'checks_file = "my_checks.toml"\nalarm_recipients = ["shift@example.org"]\n'
        'remind_after = "5min"\nescalate_after = 3600\nwarning_streak = 2\n'
    )
    settings = load_settings(
        config, env={"DQM_SMTP_URL": "smtp://u:pw@mail:25", "DQM_STALL_AFTER": "1.5h"}
    )
    assert settings.checks_file == tmp_path / "my_checks.toml"
    alarms = settings.alarms
    assert alarms.recipients == ("shift@example.org",)
    assert (alarms.remind_after_s, alarms.escalate_after_s, alarms.stall_after_s) == (
        300.0,
        3600.0,
        5400.0,
    )
    assert alarms.warning_streak == 2 and alarms.smtp_url == "smtp://u:pw@mail:25"
    assert settings.masked()["smtp_url"] == "smtp://u:***@mail:25"


def test_roles_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "dqm.toml"
    config.write_text(
        'default_role = "shifter"\nroles_claim = "memberOf"\n'
        '[roles]\nalice = "expert"\n"group:dqm-admins" = "admin"\n'
    )
    settings = load_settings(config, env={})
    assert settings.roles == {"alice": Role.EXPERT, "group:dqm-admins": Role.ADMIN}
    assert (settings.default_role, settings.roles_claim) == (Role.SHIFTER, "memberOf")
    assert settings.masked()["roles"] == "alice=expert, group:dqm-admins=admin"
    env = {"DQM_ROLES": '{"bob": "shifter"}', "DQM_DEFAULT_ROLE": "viewer"}
    overridden = load_settings(config, env=env)
    assert overridden.roles == {"bob": Role.SHIFTER} and overridden.default_role is Role.VIEWER
    assert load_settings(env={}).roles == {} and load_settings(env={}).default_role is Role.VIEWER


def test_the_json_apis_token_and_rate(tmp_path: Path) -> None:
    settings = load_settings(env={"DQM_API_TOKEN": "x" * 20, "DQM_API_RATE": "0"})
    assert (settings.api_token, settings.api_rate) == ("x" * 20, 0)
    assert settings.masked()["api_token"] == "***" and settings.masked()["api_rate"] == "no limit"
    default = load_settings(env={})
    assert (default.api_token, default.api_rate) == (None, 6000)


def test_the_runs_a_derived_mask_looks_at() -> None:
    assert load_settings(env={}).mask_consecutive == 3
    settings = load_settings(env={"DQM_MASK_CONSECUTIVE": "5"})
    assert settings.mask_consecutive == 5 and settings.masked()["mask_consecutive"] == "5 runs"


def test_the_event_sample_is_a_number_of_events_or_all() -> None:
    assert load_settings(env={}).event_sample == 20_000
    assert load_settings(env={"DQM_EVENT_SAMPLE": "50_000"}).event_sample == 50_000
    every = load_settings(env={"DQM_EVENT_SAMPLE": "All"})
    assert every.event_sample is None and every.masked()["event_sample"] == "every event"
    for bad in ("x", "99", "-5", "1e6", "200000000"):
        with pytest.raises(ConfigError, match="DQM_EVENT_SAMPLE: expected a number of events") as e:
            load_settings(env={"DQM_EVENT_SAMPLE": bad})
        assert str(e.value).count("\n") == 0
