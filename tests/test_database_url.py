"""The [database] url: libpq's multi-host forms accepted and parsed as libpq reads them, refused
with the reason when wrong, the password never shown."""
import pytest

from gateway.core import database_url
from gateway.core.db import make_engine, shown_url


def test_hosts_in_the_authority_become_the_query_form_sqlalchemy_parses():
    url = "postgresql+psycopg://allerta:s%40cret@db1:5432,db2:5433/allerta?target_session_attrs=read-write"
    assert database_url.normalised(url) == ("postgresql+psycopg://allerta:s%40cret@/allerta"
                                           "?host=db1:5432&host=db2:5433&target_session_attrs=read-write")
    parsed = database_url.parsed(url)
    assert database_url.hosts(parsed) == ["db1:5432", "db2:5433"]
    assert (parsed.username, parsed.password, parsed.database) == ("allerta", "s@cret", "allerta")


@pytest.mark.parametrize("url, hosts", [
    ("postgresql+psycopg://allerta@/allerta?host=db1:5432&host=db2:5432&target_session_attrs=read-write",
     ["db1:5432", "db2:5432"]),
    ("postgresql+psycopg://allerta@/allerta?host=db1,db2&port=5432,5433&target_session_attrs=read-write",
     ["db1", "db2"]),
    ("postgresql+psycopg://allerta@db1/allerta", ["db1"]),
    ("sqlite:////var/lib/allerta/allerta.db", [""]),
])
def test_every_spelling_libpq_documents_is_accepted(url, hosts):
    assert database_url.check(url) is None
    assert database_url.hosts(database_url.parsed(url)) == hosts


def test_the_driver_gets_every_host_and_the_read_write_requirement():
    """What psycopg is handed (libpq's host= and port= lists), without connecting."""
    engine = make_engine("postgresql+psycopg://allerta@db1:5432,db2:5433/allerta?target_session_attrs=read-write")
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    assert (kwargs["host"], kwargs["port"], kwargs["target_session_attrs"]) == ("db1,db2", "5432,5433", "read-write")
    assert engine.dialect.name == "postgresql"


def test_a_connect_timeout_per_host_unless_the_url_sets_one():
    assert database_url.connect_args(database_url.parsed("postgresql+psycopg://a@db1/x")) == {
        "connect_timeout": database_url.DEFAULT_CONNECT_TIMEOUT}
    assert database_url.connect_args(database_url.parsed("postgresql+psycopg://a@db1/x?connect_timeout=2")) == {}


@pytest.mark.parametrize("url, problem", [
    ("postgresql+psycopg://allerta@db1,db2/allerta", "without target_session_attrs=read-write"),
    ("postgresql+psycopg://allerta@db1,,db2/allerta?target_session_attrs=read-write", "an empty host"),
    ("mysql://allerta@db1/allerta", "only sqlite and postgresql"),
    ("notaurl", "is not a database URL"),
])
def test_a_wrong_url_is_refused_with_the_reason(url, problem):
    assert problem in database_url.check(url)


def test_the_password_is_never_shown():
    url = "postgresql+psycopg://allerta:s3cret@db1:5432,db2:5432/allerta?target_session_attrs=read-write"
    assert "s3cret" not in shown_url(url) and "***" in shown_url(url)
    assert database_url.without_password("postgresql://allerta:s3cret@db1:x,/a") == "postgresql://allerta:***@db1:x,/a"
