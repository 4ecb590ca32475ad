"""The voice sub-commands through the real CLI: config rendering, speech rendering, the PBX simulator."""
import json
import subprocess
import sys

import pytest

from gateway.core.audio import audio_info
from gateway.shell.cli import main
from tests.support import write_config


def test_asterisk_config_print_is_filled_from_our_configuration(tmp_path, capsys):
    path = write_config(tmp_path, '[asterisk]\nenabled = true\nsecret = "Segreto-123456"\n'
                                  '[[trunks]]\nname = "pstn"\ndial = "PJSIP/{number}@pstn"\n')
    assert main(["--config", str(path), "asterisk", "config", "--print"]) == 0
    out = capsys.readouterr().out
    assert "[allerta-outbound]" in out and "UserEvent(AllertaResult" in out
    assert "secret = Segreto-123456" in out and "bindaddr = 127.0.0.1" in out
    assert str(tmp_path / "data" / "sounds") in out


def test_printed_dialplan_context_is_the_one_the_engine_originates_into(tmp_path, capsys):
    from gateway.shell.composition import build_voice_channel
    from gateway.core.config import load_config
    path = write_config(tmp_path, '[asterisk]\nenabled = true\nsecret = "Segreto-123456"\n'
                                  'context = "fiumicino-allerta"\n'
                                  '[[trunks]]\nname = "pstn"\ndial = "PJSIP/{number}@pstn"\n')
    assert main(["--config", str(path), "asterisk", "config", "--print"]) == 0
    out = capsys.readouterr().out
    assert "[fiumicino-allerta]" in out and "[allerta-outbound]" not in out
    assert build_voice_channel(load_config(path)).settings.context == "fiumicino-allerta"


def test_asterisk_config_refuses_a_weak_secret(tmp_path, capsys):
    path = write_config(tmp_path, '[asterisk]\nsecret = "short"\n')
    assert main(["--config", str(path), "asterisk", "config", "--print"]) == 2
    assert "secret" in capsys.readouterr().err


def test_trunk_without_number_placeholder_is_refused(tmp_path, capsys):
    path = write_config(tmp_path, '[asterisk]\nenabled = true\n[[trunks]]\nname = "pstn"\ndial = "PJSIP/pstn"\n')
    assert main(["--config", str(path), "modems"]) == 2
    assert "[trunks #1] dial: the template must contain {number}" in capsys.readouterr().err


@pytest.mark.integration
def test_audio_render_command(tmp_path, capsys):
    out = tmp_path / "prova.wav"
    assert main(["audio", "render", "--text", "Prova di allerta", "--lang", "it", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    info = audio_info(out)
    assert (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)
    assert abs(result["seconds"] - info.seconds) < 0.05 and info.seconds > 1
    assert main(["audio", "render", "--text", "x", "--lang", "xx", "--out", str(tmp_path / "b.wav")]) == 2
    assert "xx" in capsys.readouterr().err and not (tmp_path / "b.wav").exists()


@pytest.mark.integration
def test_simulate_pbx_command_listens_on_loopback(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "simulate", "pbx", "--port", "0",
                                "--secret", "abc12345", "--trunk", "t1=2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(process.stdout.readline())
        assert ready["host"] == "127.0.0.1" and ready["ready"] is True
        import socket
        with socket.create_connection(("127.0.0.1", ready["port"]), timeout=5) as sock:
            assert sock.recv(100).startswith(b"Asterisk Call Manager/")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_printed_dialplan_has_the_hotline_context_on_the_configured_agi_port(tmp_path, capsys):
    path = write_config(tmp_path, '[asterisk]\nenabled = true\nsecret = "Segreto-123456"\nhotline = true\n'
                                  'hotline_context = "numero-comune"\nagi_port = 4999\n'
                                  '[[trunks]]\nname = "pstn"\ndial = "PJSIP/{number}@pstn"\n')
    assert main(["--config", str(path), "asterisk", "config", "--print"]) == 0
    out = capsys.readouterr().out
    assert "[numero-comune]" in out and "AGI(agi://127.0.0.1:4999/hotline)" in out
    assert f"Playback({tmp_path / 'data' / 'sounds'}/hotline/latest)" in out
