import re
from pathlib import Path

import pytest

from gateway.shell.cli import main
from gateway.core.config import MODEM_SCHEMA, SCHEMA, ConfigError, load_config, parse_config, starter_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_and_modems():
    config = parse_config({"modems": [{"label": "tim-1", "port": "/dev/ttyUSB0", "per_minute": 12}]})
    assert config.general.region == "IT"
    assert config.modems[0].per_minute == 12
    assert config.modems[0].daily_cap == 2000
    secret = parse_config({"modems": [{"label": "a", "port": "/dev/x", "pin": "4321"}]})
    assert secret.modems[0].pin == "4321"
    assert "4321" not in repr(secret)


@pytest.mark.parametrize("raw, message", [
    ({"general": {"regoin": "IT"}}, r"\[general\] regoin: unknown key"),
    ({"generale": {}}, r"\[generale\]: unknown section"),
    ({"general": {"region": "Italy"}}, r"\[general\] region: must be a two-letter region code"),
    ({"retry": {"max_attempts": "5"}}, r"\[retry\] max_attempts: expected an integer"),
    ({"retry": {"max_attempts": True}}, r"\[retry\] max_attempts: expected an integer, got a boolean"),
    ({"retry": {"max_attempts": 0}}, r"\[retry\] max_attempts: must be greater than 0"),
    ({"modems": [{"port": "/dev/ttyUSB0"}]}, r"\[modems #1\] label: required"),
    ({"modems": [{"label": "a", "port": "/dev/x", "baud": 1234}]}, r"\[modems #1\] baud: must be one of"),
    ({"modems": [{"label": "a", "port": "/dev/x", "pin": "12ab"}]}, r"\[modems #1\] pin: must be empty or 4 to 8 digits"),
    ({"modems": [{"label": "a", "port": "/dev/x"}, {"label": "a", "port": "/dev/y"}]},
     r"\[modems #2\] label: 'a' is used by another modem"),
    ({"modems": {"label": "a"}}, r"expected an array of tables"),
])
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_pin_never_in_error_messages():
    with pytest.raises(ConfigError) as info:
        parse_config({"modems": [{"label": "a", "port": "/dev/x", "pin": "98765432109"}]})
    assert "pin" in str(info.value)
    assert "98765432109" not in str(info.value)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "a.toml"
    bad.write_text("[general\nregion = 'IT'")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "missing.toml")


def test_starter_config_is_valid_and_commented(tmp_path):
    text = starter_config(str(tmp_path))
    path = tmp_path / "a.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.general.data_dir == str(tmp_path)
    assert text.count("# ") > len(SCHEMA["general"])


def test_every_key_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for section, keys in SCHEMA.items():
        for key in keys:
            assert f"`[{section}] {key}`" in readme, f"[{section}] {key} missing from README"
    for key in MODEM_SCHEMA:
        assert f"`[[modems]] {key}`" in readme, f"[[modems]] {key} missing from README"


def test_bad_config_stops_the_cli_with_the_key_named(tmp_path, capsys):
    path = tmp_path / "a.toml"
    path.write_text("[engine]\npoll_intervall = 1\n")
    assert main(["--config", str(path), "alert", "status", "1"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"\[engine\] poll_intervall: unknown key", err)
    assert not (tmp_path / "data").exists()  # nothing created


def test_init_writes_config_and_database(tmp_path, capsys):
    path = tmp_path / "etc" / "allerta.toml"
    assert main(["--config", str(path), "init"]) == 0
    assert path.exists()
    assert (tmp_path / "etc" / "data" / "allerta.db").exists()
    # A second init keeps the file and is a no-op on the schema.
    before = path.read_text()
    assert main(["--config", str(path), "init"]) == 0
    assert path.read_text() == before


@pytest.mark.parametrize("url, expected", [
    ("notaurl", r"\[database\] url: cannot open the database \(unparsable\)"),
    ("postgresql://allerta:s3cret@127.0.0.1:1/allerta",
     r"\[database\] url: cannot open the database postgresql://allerta:\*\*\*@127\.0\.0\.1:1/allerta: "
     r"(no database driver|.*refused|.*connect)"),
    ("sqlite:////proc/allerta-nowhere/a.db", r"\[database\] url: cannot open the database sqlite:////proc/"),
])
def test_a_database_that_cannot_be_opened_names_the_key_and_hides_the_password(tmp_path, capsys, url, expected):
    path = tmp_path / "a.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    assert main(["--config", str(path), "alert", "status", "1"]) == 2
    err = capsys.readouterr().err
    assert re.search(expected, err), err
    assert "s3cret" not in err and "Traceback" not in err


def test_a_data_dir_that_cannot_be_created_names_the_key(tmp_path, capsys):
    path = tmp_path / "a.toml"
    path.write_text('[general]\ndata_dir = "/proc/allerta-nowhere"\n')
    assert main(["--config", str(path), "alert", "status", "1"]) == 2
    assert "[general] data_dir: cannot open the database" in capsys.readouterr().err
