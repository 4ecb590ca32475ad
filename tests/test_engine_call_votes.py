"""Polls by keypress end to end: `allerta run` calls through the PBX simulator over AMI/TCP, the
simulator runs our dialplan, callees press a key for the poll after the message, and the alert's
results count one vote per number, a change counted."""
import datetime as dt
import json

import pytest
from sqlalchemy import select

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.contacts_import import import_contacts
from gateway.core.db import utcnow
from gateway.core.models import Delivery
from gateway.core.models_citizens import PollVote
from gateway.core.polls import Poll
from tests.engine_harness import allerta, services_for
from tests.test_engine_voice import SECRET, calls_by_number, create_voice_alert, population_csv, voice_config

pytestmark = pytest.mark.integration

FIRST, SECOND, SILENT = "+390665000000", "+390665000001", "+390665000002"


def test_callees_vote_by_keypress_after_the_message_and_a_second_call_changes_a_vote(tmp_path):
    population = {"seed": 3, "ring_seconds": [1, 2], "listen_seconds": [2, 4],
                  "overrides": {
                      FIRST: {"behaviour": "confirm", "vote": "1"},
                      # Heard the message without confirming (so called again) and voted 2, then 3.
                      SECOND: {"answer_on_attempt": 2, "behaviour": "listen", "then": "confirm",
                               "vote": ["2", "3"]},
                      SILENT: {"behaviour": "confirm"}}}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 4}, population=population, time_scale=0.01,
                             secret=SECRET) as pbx:
        config_path = voice_config(tmp_path, pbx)
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(3, 0)).imported
        alert_id, preview = create_voice_alert(
            services, tmp_path, poll=Poll("Siete al sicuro?", ("sì", "no, serve aiuto", "non sono a casa")))
        assert preview.recipients == {"voice": 3}
        allerta(config_path, "run", "--once", timeout=300)

        calls = calls_by_number(pbx)
        assert [(c["outcome"], c["vote"]) for c in calls[FIRST.lstrip("+")]] == [("confirmed", "1")]
        assert [(c["outcome"], c["vote"]) for c in calls[SECOND.lstrip("+")]] == [("listened", "2"),
                                                                                  ("confirmed", "3")]
        assert [(c["outcome"], c["vote"]) for c in calls[SILENT.lstrip("+")]] == [("confirmed", None)]
        with services.sessions() as s:
            votes = {v.e164: (v.option, v.channel, v.changes) for v in s.scalars(select(PollVote))}
        assert votes == {FIRST: (1, "voice", 0), SECOND: (3, "voice", 1)}

        status = json.loads(allerta(config_path, "alert", "status", str(alert_id), "--json").stdout)
        poll = status["poll"]
        assert [(o["number"], o["votes"]) for o in poll["options"]] == [(1, 1), (2, 0), (3, 1)]
        assert (poll["votes"], poll["changed"], poll["open"]) == (2, 1, True)
        text = allerta(config_path, "alert", "status", str(alert_id)).stdout
        assert "poll 'Siete al sicuro?': 2 votes (1 changed)" in text


def test_a_vote_left_in_astdb_while_no_engine_listened_is_counted_at_the_next_start(tmp_path):
    population = {"seed": 3, "ring_seconds": [1, 1], "overrides": {FIRST: {"behaviour": "confirm"}}}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 2}, population=population, time_scale=0.01,
                             secret=SECRET) as pbx:
        config_path = voice_config(tmp_path, pbx)
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(1, 0)).imported
        alert_id, _preview = create_voice_alert(services, tmp_path, poll=Poll("Acqua in casa?", ("sì", "no")))
        with services.sessions() as s:
            delivery_id = s.scalar(select(Delivery.id).where(Delivery.alert_id == alert_id))
        # What our dialplan leaves when 2 is pressed and the engine is not there to hear the event.
        voted_at = utcnow() - dt.timedelta(minutes=2)
        pbx.control({"cmd": "astdb_set", "family": "allerta-vote", "key": f"allerta-{delivery_id}-9f-trunk1",
                     "value": f"2 {int(voted_at.replace(tzinfo=dt.timezone.utc).timestamp())}"})
        allerta(config_path, "run", "--once", timeout=300)
        with services.sessions() as s:
            votes = [(v.e164, v.option, v.channel, v.voted_at) for v in s.scalars(select(PollVote))]
        assert votes == [(FIRST, 2, "voice", voted_at.replace(microsecond=0))]
        # Read once: the entry is gone, so a later start does not count it again.
        assert not [entry for entry in pbx.control({"cmd": "astdb"})["entries"] if entry[0] == "allerta-vote"]
