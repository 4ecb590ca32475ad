"""Replies to citizens are checked before they are queued, and queued in the caller's transaction."""
import pytest

from gateway.core.db import make_engine, make_sessionmaker, migrate
from gateway.core.models_citizens import SmsReply
from gateway.core.replies import ReplyError, check_reply_text, queue_reply
from gateway.core.states import ReplyReason, ReplyState

pytestmark = pytest.mark.unit


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    return make_sessionmaker(engine)


def test_a_reply_is_queued_pending_with_its_reason(sessions):
    with sessions.begin() as s:
        queue_reply(s, "+393331234567", "  Iscrizione fatta.  ", ReplyReason.REGISTERED)
    with sessions() as s:
        reply = s.query(SmsReply).one()
    assert (reply.e164, reply.text, reply.reason, reply.state) == \
        ("+393331234567", "Iscrizione fatta.", "registered", ReplyState.PENDING)


@pytest.mark.parametrize("text, why", [("", "empty"), ("   ", "empty"), ("ciao\x00", r"U\+0000"),
                                       ("x" * 500, "needs 4 SMS")])
def test_a_bad_reply_is_refused_and_nothing_is_queued(sessions, text, why):
    with pytest.raises(ReplyError, match=why):
        with sessions.begin() as s:
            queue_reply(s, "+393331234567", text, ReplyReason.OPERATOR, created_by="anna")
    with sessions() as s:
        assert s.query(SmsReply).count() == 0


def test_an_emoji_is_refused_with_the_reason():
    # UCS-2 on the air interface carries no character outside the BMP (plan_sms).
    with pytest.raises(ReplyError, match="cannot be sent by SMS"):
        check_reply_text("Grazie 🙏")
