"""The test tiers of tests/conftest.py: what is marked unit, what a unit test may not do, what tests change."""
from pathlib import Path

from argon2.profiles import RFC_9106_LOW_MEMORY

import web.users

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")

RULE_BREAKERS = '''
import asyncio, os, socket, subprocess, sys

import pytest

def test_spawns():
    subprocess.run([sys.executable, "-c", "pass"])

def test_opens_a_pty():
    os.openpty()

def test_listens_on_tcp():
    socket.create_server(("127.0.0.1", 0))

def test_connects_over_tcp():
    socket.create_connection(("127.0.0.1", 9))

def test_swallows_the_refusal():
    try:
        subprocess.run(["true"])
    except Exception:
        pass

def test_runs_an_event_loop_and_a_unix_socketpair():
    asyncio.run(asyncio.sleep(0))
    a, b = socket.socketpair()
    a.close(), b.close()

@pytest.mark.integration
def test_integration_is_not_unit(request):
    assert request.node.get_closest_marker("unit") is None

@pytest.mark.browser
def test_browser_is_not_unit(request):
    assert request.node.get_closest_marker("unit") is None
'''


def test_unit_tests_that_spawn_open_a_pty_or_a_socket_fail_saying_to_mark_them_integration(pytester):
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\nmarkers =\n    unit\n    integration\n    browser\n")
    pytester.makepyfile(test_rules=RULE_BREAKERS)
    result = pytester.runpytest_inprocess("-m", "unit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=5, deselected=2)
    result.stdout.fnmatch_lines(["*unit tests open no subprocess/pty/socket: mark it integration*"])
    assert result.stdout.str().count("test_swallows_the_refusal called subprocess.Popen") >= 1
    others = pytester.runpytest_inprocess("-m", "integration or browser", "-p", "no:cacheprovider")
    others.assert_outcomes(passed=2, deselected=6)


def test_tests_hash_passwords_cheaply_and_the_panel_keeps_argon2s_production_cost(fast_password_hashing):
    production = fast_password_hashing
    assert (production.time_cost, production.memory_cost) == (RFC_9106_LOW_MEMORY.time_cost,
                                                              RFC_9106_LOW_MEMORY.memory_cost)
    assert web.users._hasher.time_cost == 1 and web.users._hasher is not production
