"""A throwaway PostgreSQL cluster: for the tests that run on both databases (`both_databases` mark,
tests/conftest.py) and for `allerta bench sms --nodes N` without --database-url.

Debian's `postgresql` package (apt-get install postgresql; .ci/run installs it) provides initdb and
pg_ctl. The cluster lives in a temporary directory, listens on a Unix socket only (no TCP port, nothing
outside this machine's loopback can reach it), and is stopped at the end of the session. PostgreSQL
refuses to run as root, and CI runs as root: the cluster then runs as `nobody`, which owns its directory.
Every test gets a database of its own (CREATE DATABASE is cheap: a copy of template1).
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

MISSING = ("PostgreSQL's server is not installed (initdb not found under /usr/lib/postgresql/*/bin): "
           "apt-get install -y postgresql, as .ci/run and README's test command do")


def server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise RuntimeError(MISSING)
    return Path(found[-1]).parent


class PostgresCluster:
    def __init__(self, *, durable: bool = False) -> None:
        """``durable``: commits reach the WAL on disk before they are acknowledged (synchronous_commit),
        as in production: a test that crashes the server (pg_ctl stop -m immediate) loses no commit.
        Off by default: the tests that never crash it run faster."""
        self.durable = durable
        self.bin = server_bin()
        self.root = Path(tempfile.mkdtemp(prefix="allerta-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._names = itertools.count(1)

    def _run(self, *argv: str) -> None:
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")

    def start(self) -> PostgresCluster:
        self.socket_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            uid = pwd.getpwnam(self.user).pw_uid
            for path in (self.root, self.socket_dir):
                os.chown(path, uid, -1)
            self.root.chmod(0o755)  # root (the tests) reaches the socket; nobody owns the cluster
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        self._options = (f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} -c fsync=off "
                         f"-c synchronous_commit={'on' if self.durable else 'off'} -c full_page_writes=off -c max_connections=200")
        self.start_server()
        return self

    def start_server(self) -> None:
        """Start the server (again, after stop_server), waiting until it accepts connections."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", self._options, "-w", "-t", "60", "start")

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server, keeping the cluster (``mode``: pg_ctl's smart, fast or immediate)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg  # noqa: PLC0415 - only PostgreSQL runs need the driver loaded
        name = f"allerta_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host=str(self.socket_dir), user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():   # not stopped already by stop_server
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
