"""`allerta demo`'s steps share one ExitStack: a step that fails stops what the earlier ones started."""
from argparse import Namespace

from gateway.shell import demo


class FakeModemSimulator:
    """Stands in for the modem simulator: records start and stop, starts no process."""
    events: list[str] = []

    def __init__(self, **options: object) -> None:
        self.process = None
        self.modems = [{"link": "/dev/null"}]

    def start(self) -> "FakeModemSimulator":
        self.process = object()
        self.events.append("modems started")
        return self

    def stop(self) -> None:
        self.events.append("modems stopped")

    def __exit__(self, *exc_info: object) -> None:
        self.events.append("modems closed")


class RefusingPbx:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __enter__(self) -> "RefusingPbx":
        raise demo.SimulatorStartError("port in use")

    def __exit__(self, *exc_info: object) -> None:
        raise AssertionError("a PBX that did not start is not stopped")


def test_a_failing_step_stops_what_started_removes_the_directory_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "SimulatorProcess", FakeModemSimulator)
    monkeypatch.setattr(demo, "PbxSimulatorProcess", RefusingPbx)
    monkeypatch.setattr(demo, "ensure_importable_children", lambda: None)
    monkeypatch.setattr(demo.tempfile, "mkdtemp", lambda prefix: str(tmp_path / "demo"))
    (tmp_path / "demo").mkdir()
    FakeModemSimulator.events = []
    args = Namespace(contacts=10, modems=1, keep=None, latency=1.0, channels=2, time_scale=0.1, port=None,
                     no_browser=True, exit_when_done=True)

    assert demo.run_demo(args) == 1

    assert FakeModemSimulator.events == ["modems started", "modems stopped", "modems closed"]
    assert not (tmp_path / "demo").exists()
    assert "allerta demo: the PBX simulator did not start: port in use" in capsys.readouterr().err


def test_options_are_checked_before_anything_starts(capsys, monkeypatch):
    monkeypatch.setattr(demo, "SimulatorProcess", None)   # would fail if reached
    args = Namespace(contacts=0, modems=1, keep=None, channels=2, time_scale=0.1)
    assert demo.run_demo(args) == 2
    assert "--contacts, --modems and --channels must be at least 1" in capsys.readouterr().err


def test_keep_must_be_new_or_empty(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    args = Namespace(contacts=1, modems=1, keep=str(tmp_path), channels=2, time_scale=0.1)
    assert demo.run_demo(args) == 2
    assert "is not empty; give a new or empty directory to --keep" in capsys.readouterr().err
    assert (tmp_path / "old.txt").exists()
