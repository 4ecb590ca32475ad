import pytest

from asterisk.asterisk_config import ConfigRenderError, render_configs


def render(**kwargs):
    values = dict(ami_user="allerta", ami_secret="s3cret-value", sounds_dir="/var/lib/allerta/sounds")
    values.update(kwargs)
    return render_configs(**values)


def test_extensions_key_lines():
    text = render()["extensions_allerta.conf"]
    assert "@@" not in text
    assert "[allerta-outbound]" in text
    assert " same => n,Answer()" in text
    # Nothing between answer and the message: no Wait(1), no AMD() to eat the key or take a
    # "Pronto?" for a machine (issue 11); the message starts at once and listens for talk.
    code = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    assert "Wait(" not in code and "AMD(" not in code
    assert '${ALLERTA_AMD}' in text and "BackgroundDetect(${ALLERTA_AUDIO},1000,3000,,20000)" in text
    assert "exten => 1,1,Goto(s,confirmed)" in text and "exten => talk,1," in text
    # The gateway sends the absolute path: the sounds directory must not be prefixed again.
    assert "sounds/${ALLERTA_AUDIO}" not in text
    # Read() plays the message, so a digit pressed during it interrupts and counts.
    assert "Read(DIGIT,${ALLERTA_AUDIO},1,,1,5)" in text
    # Read() skips a missing file silently: the dialplan checks it first and reports an error,
    # on the machine's path too.
    assert text.count("GotoIf($[${STAT(e,${ALLERTA_AUDIO}.wav)}]?:") == 2
    assert "${ALLERTA_PLAYS} < 3" in text
    for result in ("confirmed", "listened", "voicemail"):
        assert f"UserEvent(AllertaResult,Delivery: ${{ALLERTA_DELIVERY}},Result: {result},Digit:" in text
    assert "UserEvent(AllertaPlaying,Delivery: ${ALLERTA_DELIVERY})" in text
    # The confirmation survives an AMI gap, written before it is reported.
    assert text.index("Set(DB(allerta/${UNIQUEID})=confirmed)") < text.index("Result: confirmed")
    # Our own thank-you beside the message, no stock prompt needing a sounds package.
    assert "Playback(${ALLERTA_AUDIO}-confirmed)" in text and "auth-thankyou" not in text
    assert "Set(CHANNEL(hangup_handler_push)=allerta-hangup,s,1)" in text
    assert "UserEvent(AllertaHangup,Delivery: ${ALLERTA_DELIVERY},Cause: ${HANGUPCAUSE})" in text
    assert "Return()" in text


def test_manager_key_lines():
    text = render()["manager_allerta.conf"]
    assert "[allerta]" in text
    assert "secret = s3cret-value" in text
    assert "permit = 127.0.0.1/255.255.255.255" in text
    assert "deny = 0.0.0.0/0.0.0.0" in text
    assert "read = call,user,originate,system" in text
    assert "write = originate,call,system" in text
    assert "@@" not in text


def test_options_render():
    text = render(max_plays=2, read_timeout_seconds=7)["extensions_allerta.conf"]
    assert "Read(DIGIT,${ALLERTA_AUDIO},1,,1,7)" in text and "${ALLERTA_PLAYS} < 2" in text


@pytest.mark.parametrize("kwargs,match", [
    ({"ami_secret": "short"}, "secret"),
    ({"ami_secret": "has a\nnewline"}, "secret"),
    ({"ami_user": "bad]user"}, "AMI user"),
    ({"sounds_dir": "relative/path"}, "sounds directory"),
    ({"sounds_dir": "/var/lib/a,b"}, "sounds directory"),
    ({"max_plays": 0}, "max_plays"),
    ({"context": "bad context"}, "context"),
    ({"context": "allerta-hangup"}, "context"),
])
def test_bad_values_refused(kwargs, match):
    with pytest.raises(ConfigRenderError, match=match):
        render(**kwargs)


def test_play_branch_reads_while_playing():
    """Between the play label and the digit test, the message is played only by Read()."""
    lines = render()["extensions_allerta.conf"].splitlines()
    start = next(i for i, line in enumerate(lines) if "n(play)" in line)
    end = next(i for i, line in enumerate(lines) if '"${DIGIT}" = "1"' in line)
    apps = [line.split(",", 1)[1].split("(", 1)[0] for line in lines[start:end] if line.startswith(" same")]
    assert apps == ["Read"]


def test_context_is_the_configured_one():
    text = render(context="fiumicino-alert")["extensions_allerta.conf"]
    assert "[fiumicino-alert]" in text and "allerta-outbound" not in text
    # The hangup handler keeps its own context, which the handler push names.
    assert "[allerta-hangup]" in text and "hangup_handler_push)=allerta-hangup,s,1" in text
