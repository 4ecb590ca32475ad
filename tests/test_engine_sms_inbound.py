"""Citizens' SMS received end to end: `allerta run` reads simulated modems over real pseudo-terminals
and commits every message, whole, once, however the modem delivers it (+CMTI into SM or ME, +CMT routed
and acknowledged), and the SIM's memory never fills."""
import contextlib
import sqlite3

import pytest
from sqlalchemy import func, select

from gateway.core.models import InboundSms, Line
from gateway.core.models_citizens import InboundPart
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import engine_config, kill9, services_for, start_engine, wait_until

pytestmark = pytest.mark.integration

LONG_GSM7 = ("Buongiorno, sono Maria Bianchi di via del Faro 12: l'acqua è entrata al piano terra e mio padre "
             "non cammina, siamo saliti al primo piano. Il telefono ha poca batteria, rispondete solo se "
             "serve. Grazie a tutti i volontari [protezione civile] per il lavoro di questi giorni, €50 "
             "raccolti dal condominio per chi ha bisogno.")
LONG_UCS2 = "Ciao 👋 siamo a Focene, tutto bene 👍 ma la strada è chiusa 🚧 e aspettiamo notizie ✓ grazie mille 🙏"
FLOOD = 200
# The citizens' service answers what it receives: quick sends, so the modem is soon free to read.
FAST = dict(latency_median=0.02, latency_sigma=0.3, report_delay=0.05)


def inbound(services) -> list[InboundSms]:
    with services.sessions() as s:
        return list(s.scalars(select(InboundSms).order_by(InboundSms.id)))


def by_sender(services) -> dict[str, list[InboundSms]]:
    rows: dict[str, list[InboundSms]] = {}
    for row in inbound(services):
        rows.setdefault(row.sender, []).append(row)
    return rows


def modem_status(sim, name="modem-0") -> dict:
    return next(m for m in sim.control({"cmd": "status"})["modems"] if m["modem"] == name)


def send(sim, **request) -> dict:
    reply = sim.control({"cmd": "incoming_sms", "modem": "modem-0", **request})
    assert reply["ok"], reply
    return reply


def test_replies_arrive_whole_in_any_order_and_a_flood_never_fills_the_sim(tmp_path):
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", log=tmp_path / "sim.jsonl", **FAST) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], extra="[inbound]\npart_timeout = 5\n")
        services = services_for(config_path)
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: _lines(services) == {"up"}, 60)
            assert send(sim, sender="+393331110001", text=LONG_GSM7, order=[3, 1, 2], gap=0.2)["parts"] == 3
            assert send(sim, sender="+393331110002", text=LONG_UCS2, wide=True, reference=4660,
                        order=[2, 1], gap=0.2)["parts"] == 2
            send(sim, sender="+393331110003", text="Ok 👍")
            send(sim, sender="Comune", text="Avviso: prova sirene alle 12")
            send(sim, sender="+393331110004", text="salvato nel telefono", memory="ME")
            send(sim, sender="+393331110004", text="salvato sulla SIM", memory="SM")
            # The second part never arrives.
            send(sim, sender="+393331110005", parts=["SOS siamo in ", "via Roma 3 ", "al secondo piano"], order=[1, 3])
            flood = sim.control({"cmd": "incoming_flood", "modem": "modem-0", "count": FLOOD, "rate": 25,
                                 "senders": [f"+39347000{i:04d}" for i in range(7)],
                                 "texts": ["Risposta {n}: OK", "{n} RICEVUTO"], "memory": "SM"})
            assert flood["ok"], flood

            def arrived():
                return len(inbound(services)) >= 7 + FLOOD
            assert wait_until(arrived, 90), (len(inbound(services)), (tmp_path / "engine.log").read_text()[-3000:])
            rows = by_sender(services)
            [long_one] = rows["+393331110001"]
            assert (long_one.text, long_one.parts, long_one.incomplete) == (LONG_GSM7, 3, False)
            [wide] = rows["+393331110002"]
            assert (wide.text, wide.parts, wide.incomplete) == (LONG_UCS2, 2, False)
            assert [r.text for r in rows["+393331110003"]] == ["Ok 👍"]
            assert [r.text for r in rows["Comune"]] == ["Avviso: prova sirene alle 12"]
            assert sorted(r.text for r in rows["+393331110004"]) == ["salvato nel telefono", "salvato sulla SIM"]
            [missing] = rows["+393331110005"]
            assert (missing.text, missing.parts, missing.incomplete) == ("SOS siamo in al secondo piano", 3, True)
            flooded = [r for sender, rs in rows.items() if sender.startswith("+39347000") for r in rs]
            numbers = sorted(int(r.text.split(":")[0].split()[-1]) if r.text.startswith("Risposta")
                             else int(r.text.split()[0]) for r in flooded)
            assert numbers == list(range(1, FLOOD + 1))
            every = inbound(services)
            assert all(r.line == "m0" and r.sent_at is not None for r in every)
            status = modem_status(sim)
            # Read and cleared as fast as they came: the SIM (30 slots) never filled, the network held nothing.
            assert status["stored_high_water"]["SM"] < 30, status
            assert status["held_by_network"] == 0 and sum(status["stored"].values()) == 0, status
            with services.sessions() as s:
                assert s.scalar(select(func.count()).select_from(InboundPart)) == 3 + 2 + 1 + 1 + 2 + 2 + FLOOD
                assert s.scalar(select(func.count()).select_from(InboundPart).where(
                    InboundPart.message_id.is_(None))) == 0
            log = (tmp_path / "engine.log").read_text()
            assert "Traceback" not in log and "cannot be decoded" not in log
        finally:
            engine.terminate()
            engine.wait(timeout=60)


def test_routed_sms_are_acknowledged_only_once_committed(tmp_path):
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", log=tmp_path / "sim.jsonl", **FAST) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems])
        config_path.write_text(config_path.read_text().replace("per_minute = 6000\n",
                                                               'per_minute = 6000\nreceive = "route"\n'))
        services = services_for(config_path)
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: _lines(services) == {"up"}, 60)
            send(sim, sender="+393331110001", text="ISCRIVI Focene")
            send(sim, sender="+393331110002", text=LONG_GSM7, order=[2, 3, 1])
            send(sim, sender="+393331110003", text="Ok 👍")
            assert wait_until(lambda: len(inbound(services)) == 3, 60), (tmp_path / "engine.log").read_text()[-3000:]
            assert {r.sender: r.text for r in inbound(services)} == {
                "+393331110001": "ISCRIVI Focene", "+393331110002": LONG_GSM7, "+393331110003": "Ok 👍"}
            assert wait_until(lambda: len(sim.log_records("incoming_acknowledged")) == 5, 10)
            events = sim.log_records("incoming")
            # Each part routed once; the modem held the next ones back until the last was acknowledged.
            assert len([e for e in events if e.get("routed")]) == 5, events
            assert all(e.get("routed") or e.get("held") for e in events)
            # None went through the SIM's memory (the status reports of our answers may: this profile keeps them in ME).
            assert not [e for e in events if e.get("memory")]
            assert not sim.log_records("incoming_unacknowledged")
        finally:
            engine.terminate()
            engine.wait(timeout=60)


@contextlib.contextmanager
def engine_up_database_held(services):
    """Once the engine's line is up, someone else (a backup) holds the SQLite database's write lock."""
    assert wait_until(lambda: _lines(services) == {"up"}, 60)
    holder = sqlite3.connect(services.config.database_url.split("///", 1)[1], isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _lines(services) -> set[str]:
    with services.sessions() as s:
        return set(s.scalars(select(Line.state)))


@pytest.mark.parametrize("spool", ["written", "unwritable"])
def test_kill_9_between_reading_and_committing_loses_nothing_and_duplicates_nothing(tmp_path, spool):
    """The database is held (a backup) when the SMS is read, and the engine is killed before its commit.
    Spooled, the SIM's copy is deleted at once (the SIM must not fill meanwhile) and the next start records
    it from the spool; when the spool cannot be written, the SIM keeps it and the next start reads it again."""
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", log=tmp_path / "sim.jsonl",
                          trace=tmp_path / "trace.txt", **FAST) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems],
                                    extra="[database]\nbusy_timeout = 0.2\n")
        services = services_for(config_path)
        spool_path = tmp_path / "data" / "inbound-spool.jsonl"
        if spool == "unwritable":
            spool_path.mkdir(parents=True)
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            with engine_up_database_held(services):
                send(sim, sender="+393331110001", text="AIUTO siamo bloccati", memory="SM")
                # Read by the engine, whose commit waits for the lock...
                assert wait_until(lambda: "AT+CMGR=1" in (tmp_path / "trace.txt").read_text(), 30)
                if spool == "written":
                    assert wait_until(lambda: modem_status(sim)["stored"]["SM"] == 0, 30)
                else:
                    assert wait_until(lambda: "cannot spool" in (tmp_path / "engine.log").read_text(), 30)
                kill9(engine)
            # ...killed before it: nowhere in the database; in the spool, or still on the SIM.
            assert inbound(services) == []
            assert modem_status(sim)["stored"]["SM"] == (0 if spool == "written" else 1)
            if spool == "unwritable":
                spool_path.rmdir()
            engine = start_engine(config_path, log_path=tmp_path / "engine2.log")
            assert wait_until(lambda: len(inbound(services)) == 1 and modem_status(sim)["stored"]["SM"] == 0, 60)
            assert [(r.sender, r.text) for r in inbound(services)] == [("+393331110001", "AIUTO siamo bloccati")]
            with services.sessions() as s:
                assert s.scalar(select(func.count()).select_from(InboundPart)) == 1
        finally:
            engine.terminate()
            engine.wait(timeout=60)


def test_a_held_database_does_not_fill_the_sim_during_a_storm(tmp_path):
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", log=tmp_path / "sim.jsonl", **FAST) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems],
                                    extra="[database]\nbusy_timeout = 0.2\n")
        services = services_for(config_path)
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            with engine_up_database_held(services):
                flood = sim.control({"cmd": "incoming_flood", "modem": "modem-0", "count": 60, "rate": 20,
                                     "senders": ["+393470000001", "+393470000002"], "texts": ["OK {n}"],
                                     "memory": "SM"})
                assert flood["ok"], flood
                assert wait_until(lambda: len(sim.log_records("incoming")) >= 60, 30)
                assert inbound(services) == []     # nothing committed while the lock is held...
            # ...yet the 30-slot SIM never filled: each part was spooled and deleted.
            status = modem_status(sim)
            assert status["stored_high_water"]["SM"] < 30 and status["held_by_network"] == 0, status
            assert wait_until(lambda: len(inbound(services)) == 60, 60)
            assert sorted(int(r.text.split()[1]) for r in inbound(services)) == list(range(1, 61))
        finally:
            engine.terminate()
            engine.wait(timeout=60)
