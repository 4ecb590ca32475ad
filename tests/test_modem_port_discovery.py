"""Which port holds a modem, with a fake driver over plain files standing in for ttys."""
import os

import pytest

from modem.driver import ModemError, PortUnavailable, WrongModem
from modem.port_discovery import PortFinder, PortRegistry

OURS, OTHER = "490154203237518", "356938035643809"


class Ttys:
    """Plain files standing in for ttys, each with the IMEI its fake modem answers."""

    def __init__(self, root) -> None:
        self.root = root
        self.imeis: dict[str, str] = {}
        self.pin_fails: set[str] = set()

    def add(self, name: str, imei: str):
        path = self.root / name
        path.write_text("")
        self.imeis[os.path.realpath(path)] = imei
        return path

    def driver(self, port: str) -> "FakeDriver":
        return FakeDriver(port, self)

    def finder(self, pattern, imei=None, scan_dir=None, ports=None) -> PortFinder:
        return PortFinder("m0", str(pattern), imei, scan_dir=None if scan_dir is None else str(scan_dir),
                          ports=ports or PortRegistry(), make_driver=self.driver)


class FakeDriver:
    """Opens when its file exists, like ModemDriver refusing another modem's IMEI before the PIN."""

    def __init__(self, port: str, ttys: Ttys) -> None:
        self.port, self.imei, self._ttys = port, None, ttys

    def open(self, expected_imei=None):
        if not os.path.exists(self.port):
            raise PortUnavailable(f"cannot open {self.port}")
        found = self._ttys.imeis.get(os.path.realpath(self.port))
        if expected_imei and found != expected_imei:
            raise WrongModem(self.port, found, expected_imei)
        if os.path.realpath(self.port) in self._ttys.pin_fails:
            raise ModemError(f"SIM PIN problem on {self.port}")
        self.imei = found

    def close(self):
        pass


@pytest.fixture
def ttys(tmp_path) -> Ttys:
    return Ttys(tmp_path)


@pytest.fixture
def links(tmp_path):
    """The scan directory, as the udev rules fill /dev/allerta."""
    path = tmp_path / "links"
    path.mkdir()
    return path


def test_a_glob_skips_the_port_a_sibling_owns(ttys):
    first, second = ttys.add("ttyUSB0", OTHER), ttys.add("ttyUSB1", OURS)
    ports = PortRegistry()
    ports.take(str(first))
    driver, problem = ttys.finder(ttys.root / "ttyUSB*", ports=ports).open()
    assert (driver.port, problem) == (str(second), None)


def test_the_first_open_learns_the_imei_and_release_frees_the_port(ttys):
    port = ttys.add("ttyUSB0", OURS)
    ports = PortRegistry()
    finder = ttys.finder(port, ports=ports)
    finder.open()
    assert finder.expected_imei == OURS
    assert ports.take(str(port)) is None           # still ours
    finder.release()
    assert ports.take(str(port)) is not None


def test_a_fixed_port_gone_is_found_by_its_imei_in_the_scan_directory(ttys, links):
    os.symlink(ttys.add("ttyUSB7", OTHER), links / "modem-a")
    os.symlink(ttys.add("ttyUSB8", OURS), links / "modem-b")
    driver, problem = ttys.finder(links / "modem-gone", imei=OURS, scan_dir=links).open()
    assert (driver.port, problem) == (str(links / "modem-b"), None)


def test_a_scan_that_finds_nothing_says_so_after_the_configured_port_problem(ttys, links):
    os.symlink(ttys.add("ttyUSB7", OTHER), links / "modem-a")
    driver, problem = ttys.finder(links / "modem-gone", imei=OURS, scan_dir=links).open()
    assert driver is None
    assert problem == f"cannot open {links / 'modem-gone'}; no {links}/modem-* holds IMEI {OURS}"


def test_our_modem_found_by_the_scan_but_failing_gives_its_own_problem(ttys, links):
    ours = ttys.add("ttyUSB8", OURS)
    ttys.pin_fails.add(os.path.realpath(ours))
    os.symlink(ours, links / "modem-b")
    driver, problem = ttys.finder(links / "modem-gone", imei=OURS, scan_dir=links).open()
    assert (driver, problem) == (None, f"SIM PIN problem on {links / 'modem-b'}")


def test_a_glob_matching_nothing_says_so(ttys):
    assert ttys.finder(ttys.root / "ttyACM*").open() == (None, f"no port matches {ttys.root / 'ttyACM*'}")
