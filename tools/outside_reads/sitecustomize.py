"""Log every path a Python process opens outside the repository, the temp dir and Python's own files.

Loaded by Python at start-up (site.py imports ``sitecustomize`` from sys.path) when tools/outside-reads puts
this folder first on PYTHONPATH: so the pytest process AND every Python child it starts (the engine, the
simulators, the CLI, the demo) are audited, since they inherit PYTHONPATH. Nothing here runs otherwise.

One JSON line per outside path and process into $ALLERTA_OUTSIDE_LOG (appended with os.write: it raises no
audit event, so the hook never sees its own writes). Non-Python children (gammu, sox, espeak-ng, PostgreSQL)
are not audited: their command lines are logged instead (the "exec" lines), which is where a test hands
them a path.
"""
from __future__ import annotations

import json
import os
import sys
import sysconfig
import tempfile

_LOG = os.environ.get("ALLERTA_OUTSIDE_LOG")
_ROOT = os.environ.get("ALLERTA_OUTSIDE_ROOT", "")


def _prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    python = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    # The system itself: time zones, MIME types, devices, the kernel's files, Python's own install.
    system = {"/usr/share/zoneinfo", "/etc/mime.types", "/dev", "/proc", "/sys", sys.base_prefix + "/lib/python3",
              sys.prefix, os.path.dirname(os.path.realpath(sys.executable)),
              os.path.join(sys.base_prefix, "lib", f"python{sys.version_info[0]}{sys.version_info[1]}.zip")}
    ours = {_ROOT, os.path.realpath(_ROOT), tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir())}
    return tuple(sorted({os.path.realpath(p) for p in python} | python | system | ours - {""}))


def _install() -> None:
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    allowed = _prefixes()
    seen: set[tuple[str, str]] = set()
    argv = " ".join(sys.orig_argv)[:300]

    def inside(path: str) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in allowed)

    def where() -> str:
        """The innermost frame in the repository (not this file): who asked for the path."""
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(_ROOT) and "/.venv/" not in name and "outside_reads" not in name:
                return f"{name[len(_ROOT) + 1:]}:{frame.f_lineno}"
            frame = frame.f_back
        return "?"

    def note(kind: str, path: object) -> None:
        if isinstance(path, int) or path is None:
            return   # a file descriptor: its path was checked when it was opened
        try:
            text = os.fsdecode(os.fspath(path))
        except TypeError:
            return
        if not text:
            return
        full = os.path.normpath(os.path.join(os.getcwd(), text)) if not os.path.isabs(text) else os.path.normpath(text)
        if inside(full) or (kind, full) in seen:
            return
        seen.add((kind, full))
        os.write(fd, (json.dumps({"pid": os.getpid(), "argv": argv, "kind": kind, "path": full,
                                  "test": os.environ.get("PYTEST_CURRENT_TEST", ""), "where": where()})
                      + "\n").encode())

    def exec_line(args: object) -> None:
        words = [os.fsdecode(a) for a in (args if isinstance(args, (list, tuple)) else [args])
                 if isinstance(a, (str, bytes, os.PathLike))]
        for word in words:
            for part in word.replace("=", " ").split():
                if part.startswith("/") and not part.startswith(("/usr/bin/", "/usr/lib/postgresql/")):
                    note("exec-arg", part)

    def hook(event: str, args: tuple) -> None:
        try:
            audit(event, args)
        except Exception:  # noqa: BLE001 - an exception here would make the audited open itself fail
            pass

    def audit(event: str, args: tuple) -> None:
        if event == "open":
            note("open-w" if (len(args) > 1 and isinstance(args[1], str) and set(args[1]) & set("wax+"))
                 else "open", args[0])
        elif event in ("os.listdir", "os.scandir", "sqlite3.connect"):
            note(event, args[0] if args else None)
        elif event == "subprocess.Popen":
            exec_line(args[1])

    sys.addaudithook(hook)


if _LOG:
    _install()
