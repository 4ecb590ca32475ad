"""Control socket: one JSON object per line in, one JSON reply per line out (unix socket)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from .pool import ControlError, IncomingRequest, ModemPool


def _strings(request: dict, key: str) -> list[str]:
    values = request[key]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ControlError(f"{key} must be a list of strings")
    return values


def _incoming_request(request: dict) -> IncomingRequest:
    """The fields of ``incoming_sms``: sender, and text or parts (a list of part texts); optional
    reference, wide (16-bit reference), encoding (gsm7, ucs2), memory (SM, ME), order (seqs in the
    order they arrive, any left out never arrives) and gap (seconds between parts)."""
    parts = _strings(request, "parts") if "parts" in request else None
    order = request.get("order")
    if order is not None and (not isinstance(order, list) or not all(isinstance(s, int) for s in order)):
        raise ControlError("order must be a list of part numbers")
    if "text" not in request and parts is None:
        raise ControlError("missing field 'text' (or 'parts')")
    encoding = request.get("encoding")
    if encoding not in (None, "gsm7", "ucs2"):
        raise ControlError("encoding must be gsm7 or ucs2")
    reference = request.get("reference")
    return IncomingRequest(sender=str(request["sender"]), text=str(request["text"]) if "text" in request else None,
                           parts=parts, reference=int(reference) if reference is not None else None,
                           wide=bool(request.get("wide", False)), encoding=encoding, memory=request.get("memory"),
                           order=order, gap=float(request.get("gap", 0.0)))

log = logging.getLogger(__name__)


def handle_request(pool: ModemPool, request: dict) -> dict:
    """Carry out one control command; errors come back as {"ok": false, "error": ...}."""
    if not isinstance(request, dict) or "cmd" not in request:
        raise ControlError('expected an object with a "cmd" key')
    cmd = request["cmd"]
    modem = request.get("modem")
    try:
        if cmd == "status":
            result = pool.status()
        elif cmd == "unplug":
            result = pool.unplug(modem, request.get("seconds"))
        elif cmd == "plug":
            result = pool.plug(pool._one(modem).modem.name)
        elif cmd == "hang":
            result = pool.hang(modem, request.get("seconds"), bool(request.get("after_submit", False)))
        elif cmd == "latency":
            result = pool.set_latency(modem, float(request["median"]), float(request.get("sigma", 0.0)),
                                      request.get("cap"), float(request.get("fixed", 0.0)))
        elif cmd == "cms_errors":
            result = pool.set_cms_errors(modem, float(request["rate"]), int(request.get("code", 38)))
        elif cmd == "report_status":
            result = pool.set_report_statuses(modem, list(request["statuses"]))
        elif cmd == "register":
            result = pool.set_registered(modem, bool(request.get("registered", True)))
        elif cmd == "incoming_sms":
            result = pool.incoming_sms(modem, _incoming_request(request))
        elif cmd == "incoming_flood":
            result = pool.incoming_flood(modem, int(request["count"]), _strings(request, "senders"),
                                         _strings(request, "texts"), float(request.get("rate", 50.0)),
                                         request.get("memory"))
        elif cmd == "reset":
            result = pool.reset()
        else:
            raise ControlError(f"unknown cmd {cmd!r}")
    except KeyError as exc:
        raise ControlError(f"missing field {exc}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ControlError):
            raise
        raise ControlError(str(exc)) from None
    return {"ok": True, **result}


class ControlServer:
    def __init__(self, pool: ModemPool, path: Path) -> None:
        self.pool, self.path = pool, path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        os.chmod(self.path, 0o660)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                try:
                    reply = handle_request(self.pool, json.loads(line))
                except json.JSONDecodeError as exc:
                    reply = {"ok": False, "error": f"invalid JSON: {exc}"}
                except ControlError as exc:
                    reply = {"ok": False, "error": str(exc)}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("modem simulator: a control client on %s went away: %r", self.path, exc)
        finally:
            writer.close()
