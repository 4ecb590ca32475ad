"""The [database] url as SQLAlchemy takes it, with the multi-host forms a two-site install needs.

A node follows a promoted standby by listing every PostgreSQL server and asking libpq for the one
that takes writes (``target_session_attrs=read-write``): libpq tries the hosts in order and skips
those it cannot reach and those in recovery or read-only. Two spellings are accepted:

- the query form SQLAlchemy documents for psycopg (``postgresql+psycopg://u@/db?host=h1:5432&host=h2:5432``,
  or libpq's own ``host=h1,h2&port=5432,5432``): passed through;
- libpq's URI form with the hosts in the authority (``postgresql+psycopg://u@h1:5432,h2:5432/db``), which
  SQLAlchemy's URL parser refuses (it reads ``5432,h2:5432`` as one port): rewritten into the query form.

Pure: no connection is made here (gateway/core/db.py makes the engine).
"""
from __future__ import annotations

import re
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url

# scheme://[userinfo@]host[:port],host[:port][,...]/rest: only when the authority lists several hosts.
_MULTI_HOST_AUTHORITY = re.compile(r"^(?P<scheme>[^:/]+)://(?:(?P<userinfo>[^@/]*)@)?(?P<hosts>[^@/?]*,[^@/?]*)"
                                   r"(?P<rest>[/?].*)?$")
# How long one host may take to answer before libpq tries the next (seconds), unless the URL says.
DEFAULT_CONNECT_TIMEOUT = 5


class DatabaseUrlError(ValueError):
    pass


def normalised(url: str) -> str:
    """``url`` in a form SQLAlchemy parses: a multi-host authority moved into ``host=`` query parameters."""
    match = _MULTI_HOST_AUTHORITY.match(url)
    if match is None:
        return url
    hosts = [host.strip() for host in match["hosts"].split(",")]
    if not all(hosts):
        raise DatabaseUrlError(f"an empty host in the list {match['hosts']!r}")
    rest = match["rest"] or "/"
    path, _, query = rest.partition("?")
    params = "&".join(f"host={quote(host, safe=':[]')}" for host in hosts)
    userinfo = f"{match['userinfo']}@" if match["userinfo"] is not None else ""
    return f"{match['scheme']}://{userinfo}{path}?{params}{'&' + query if query else ''}"


def parsed(url: str) -> URL:
    """The SQLAlchemy URL of ``url``; DatabaseUrlError saying what is wrong when it is not one."""
    try:
        result = make_url(normalised(url))
    except DatabaseUrlError:
        raise
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises ArgumentError or ValueError
        raise DatabaseUrlError(str(exc).splitlines()[0]) from None
    return result


def hosts(url: URL) -> list[str]:
    """The servers a PostgreSQL URL lists, in the order libpq tries them ("" for the default one)."""
    if url.host:
        return [f"{url.host}:{url.port}" if url.port else url.host]
    listed = url.query.get("host", ())
    listed = [listed] if isinstance(listed, str) else list(listed)
    return [item for entry in listed for item in entry.split(",")] or [""]


def connect_args(url: URL) -> dict:
    """Arguments for the driver: a connect timeout per host unless the URL sets one, so a host that is
    switched off (no answer at all, not a refusal) costs seconds before the next is tried, not minutes."""
    return {} if "connect_timeout" in url.query else {"connect_timeout": DEFAULT_CONNECT_TIMEOUT}


def without_password(url: str) -> str:
    """``url`` with its password (if any) replaced by ***, even when it does not parse."""
    return re.sub(r"^([^:/]+://[^:@/]*):[^@/]*@", r"\1:***@", url)


def check(url: str) -> str | None:
    """For the configuration's validation: None when ``url`` is usable, else what is wrong."""
    if url == "":
        return None
    try:
        result = parsed(url)
    except DatabaseUrlError as exc:
        return f"is not a database URL ({exc}); e.g. postgresql+psycopg://allerta@db1:5432,db2:5432/allerta" \
               "?target_session_attrs=read-write"
    if result.get_backend_name() not in ("sqlite", "postgresql"):
        return f"names the database {result.get_backend_name()!r}: only sqlite and postgresql are supported"
    attrs = result.query.get("target_session_attrs")
    if result.get_backend_name() == "postgresql" and len(hosts(result)) > 1 and attrs not in (
            "read-write", "primary"):
        return ("lists several hosts without target_session_attrs=read-write: a node could write to a standby "
                "(add ?target_session_attrs=read-write)")
    return None
