import dataclasses
import os
import re
from pathlib import Path

import pytest

from gateway.shell.cli import main
from gateway.shell.composition import build_voice_channel
from gateway.core.config import (MODEM_SCHEMA, SCHEMA, Config, ConfigError, RetryConfig, load_config, parse_config,
                                 starter_config)

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
    ({"engine": {"node": "sala operativa"}}, r"\[engine\] node: must be empty \(the host name\) or 1 to 64 letters"),
    ({"engine": {"node": 3}}, r"\[engine\] node: expected a string"),
    ({"engine": {"lease_seconds": 1}}, r"\[engine\] lease_seconds: must be between 2 and 600 seconds"),
    ({"engine": {"lease_seconds": "30"}}, r"\[engine\] lease_seconds: expected a number"),
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


def test_every_key_is_documented_in_the_configuration_reference():
    reference = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for section, keys in SCHEMA.items():
        for key in keys:
            assert f"`[{section}] {key}`" in reference, f"[{section}] {key} missing from docs/configuration.md"
    for key in MODEM_SCHEMA:
        assert f"`[[modems]] {key}`" in reference, f"[[modems]] {key} missing from docs/configuration.md"


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
    ("notaurl", r"\[database\] url: is not a database URL"),
    ("postgresql+psycopg://allerta:s3cret@h1:x,h2/allerta", r"\[database\] url: .*allerta:\*\*\*@h1"),
    ("postgresql://allerta:s3cret@127.0.0.1:1/allerta",
     r"\[database\] url: cannot open the database postgresql://allerta:\*\*\*@127\.0\.0\.1:1/allerta: "
     r"(no database driver|.*refused|.*connect)"),
    # Under a regular file: no directory can be made there, not even by root (tests may run as root).
    ("sqlite:///{tmp}/a-file/a.db", r"\[database\] url: cannot open the database sqlite:///.*/a-file/a\.db"),
])
def test_a_database_that_cannot_be_opened_names_the_key_and_hides_the_password(tmp_path, capsys, url, expected):
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a.toml"
    path.write_text(f'[database]\nurl = "{url.format(tmp=tmp_path)}"\n')
    assert main(["--config", str(path), "alert", "status", "1"]) == 2
    err = capsys.readouterr().err
    assert re.search(expected, err), err
    assert "s3cret" not in err and "Traceback" not in err


def test_a_data_dir_that_cannot_be_created_names_the_key(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")   # a data_dir under a file cannot be made, not even by root
    path = tmp_path / "a.toml"
    path.write_text(f'[general]\ndata_dir = "{tmp_path}/a-file/data"\n')
    assert main(["--config", str(path), "alert", "status", "1"]) == 2
    assert "[general] data_dir: cannot open the database" in capsys.readouterr().err


def test_sections_are_typed_frozen_objects_with_the_schema_defaults():
    config = parse_config({"retry": {"initial_delay": 10}, "ops": {"on_call": ["+393331110001"]}})
    assert config.retry.max_attempts == SCHEMA["retry"]["max_attempts"].default
    assert config.retry.initial_delay == 10.0 and isinstance(config.retry.initial_delay, float)
    assert config.ops.on_call == ("+393331110001",)   # a tuple: nothing in a Config can change
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.retry.max_attempts = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.retry = RetryConfig()
    with pytest.raises(TypeError):
        config.retry["max_attempts"]   # no dict-style access left behind
    for section, schema in SCHEMA.items():
        values = getattr(Config(), section)
        for key, spec in schema.items():
            expected = {list: tuple, (int, float): float}.get(spec.type, spec.type)
            assert isinstance(getattr(values, key), expected), f"[{section}] {key}"
            assert getattr(values, key) == (tuple(spec.default) if spec.type is list else spec.default)
        assert [f.name for f in dataclasses.fields(values)] == list(schema)


def test_secrets_stay_out_of_the_repr():
    config = parse_config({"asterisk": {"secret": "Segreto-123456"}})
    assert config.asterisk.secret == "Segreto-123456" and "Segreto-123456" not in repr(config)


def trunk(**keys):
    return {"trunks": [{"name": "pstn", "dial": "PJSIP/{number}@pstn", **keys}]}


@pytest.mark.parametrize("dial, message", [
    ("PJSIP/{number}@pstn,x", r"\[trunks #1\] dial: options after a comma \(',x'\) are not allowed: an Originate "
                              r"Channel takes no Dial\(\) options; remove them .* \(got 'PJSIP/\{number\}@pstn,x'\)"),
    ("PJSIP/pstn", r"\[trunks #1\] dial: the template must contain \{number\} exactly once, where the number goes"),
    ("PJSIP/{number}@{number}", r"\[trunks #1\] dial: .* exactly once, not 2 times"),
    ("PJSIP/{numero}@pstn", r"\[trunks #1\] dial: unknown placeholder \{numero\}: .*e\.g\. PJSIP/\{number\}@pstn"),
    ("PJSIP/{number@pstn", r"\[trunks #1\] dial: a '\{' or '\}' without its pair"),
    ("PJSIP/{number}}@pstn", r"\[trunks #1\] dial: a '\{' or '\}' without its pair"),
    ("PJSIP/ {number}@pstn", r"\[trunks #1\] dial: whitespace is not allowed .*remove the spaces"),
    ("PJSIP/{number}@pstn\nAction: Command", r"\[trunks #1\] dial: whitespace is not allowed"),
    ("PJSIP/{number}@a&PJSIP/{number}@b", r"\[trunks #1\] dial: characters not allowed in an AMI Channel header: '&'"),
    ("{number}@pstn", r"\[trunks #1\] dial: the template must start with a technology such as PJSIP/"),
])
def test_a_malformed_dial_string_is_refused_at_load(dial, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(trunk(dial=dial))


@pytest.mark.parametrize("raw, message", [
    (trunk(name="the pstn"), r"\[trunks #1\] name: must be 1 to 64 letters, digits"),
    (trunk(caller_id="0665,1"), r"\[trunks #1\] caller_id: must not contain commas or line breaks"),
    (trunk(prefixes=["39"]), r"\[trunks #1\] prefixes: must be a list of E\.164 prefixes"),
    (trunk(allowed="prefixes"), r"\[trunks #1\] prefixes: allowed = \"prefixes\" needs at least one prefix"),
    (trunk(max_channels=2, inbound_reserved=2), r"\[trunks #1\] inbound_reserved: 2 would leave no channel"),
    (trunk(number_format="e164"), r"\[trunks #1\] number_format: must be one of keep_plus, international"),
    ({"trunks": [{"name": "a", "dial": "PJSIP/{number}@a"}, {"name": "a", "dial": "PJSIP/{number}@b"}]},
     r"\[trunks #2\] name: 'a' is used by another trunk"),
    ({"asterisk": {"ring_timeout": 0.5}}, r"\[asterisk\] ring_timeout: must be 1 or more"),
    ({"asterisk": {"context": "allerta outbound"}}, r"\[asterisk\] context: must be 1 to 64 letters"),
    ({"asterisk": {"enabled": True}}, r"\[asterisk\] enabled: the voice channel needs at least one \[\[trunks\]\]"),
    ({"web": {"tls_cert": "/etc/allerta/panel.crt"}}, r"\[web\] tls_key: needed with \[web\] tls_cert"),
    ({"web": {"tls_key": "/etc/allerta/panel.key"}}, r"\[web\] tls_cert: needed with \[web\] tls_key"),
])
def test_rules_that_would_stop_the_engine_later_are_refused_at_load(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


@pytest.mark.parametrize("dial", ["PJSIP/{number}@pstn", "DAHDI/g0/{number}", "Dongle/g1/{number}",
                                  "Local/{number}@allerta-test", "Local/{number}@ctx/n", "IAX2/pbx:5000/{number}"])
def test_a_dial_string_the_loader_accepts_builds_the_voice_channel(dial):
    config = parse_config({"asterisk": {"enabled": True}, **trunk(dial=dial, allowed="prefixes", prefixes=["+39"])})
    channel = build_voice_channel(config)
    assert channel.settings.trunks[0].dial_string("+390612345678") == dial.replace("{number}", "+390612345678")


def test_run_with_a_bad_dial_string_exits_with_the_message_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "a.toml"
    path.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n[asterisk]\nenabled = true\n'
                    '[[trunks]]\nname = "pstn"\ndial = "PJSIP/{number}@pstn,x"\n')
    assert main(["--config", str(path), "run", "--once"]) == 2
    err = capsys.readouterr().err
    assert f"allerta: {path}: [trunks #1] dial: options after a comma (',x') are not allowed" in err
    assert "Traceback" not in err and not (tmp_path / "data").exists()


def test_the_database_password_is_never_shown(app, capsys):
    from gateway.core.config import SCHEMA
    from web.admin import _shown
    url = "postgresql+psycopg://allerta:s3cret@db.comune.local/allerta"
    assert _shown(SCHEMA["database"]["url"], url) == "postgresql+psycopg://allerta:***@db.comune.local/allerta"
    assert "s3cret" not in str(_shown(SCHEMA["database"]["url"], "postgresql://a:s3cret@[bad"))


def test_the_node_name_is_the_host_name_unless_configured():
    assert parse_config({"engine": {"node": "coc-2"}}).node_name == "coc-2"
    unnamed = parse_config({})
    assert unnamed.engine.node == "" and unnamed.node_name == os.uname().nodename.split(".")[0]
    assert unnamed.engine.lease_seconds == 30.0
