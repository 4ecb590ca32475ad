"""Helpers of the panel's tests: an app with one user per role, logged-in clients, CSRF-aware POSTs.

The `app` and `panel` fixtures built on make_app are in conftest.py.
"""
from __future__ import annotations

import re
from pathlib import Path

from gateway.core.models import Alert
from gateway.core.services import build_services
from gateway.core.config import load_config
from gateway.core.contacts_import import import_contacts
from tests.support import CONTACTS_CSV, write_config
from web.app import create_app
from web.users import add_user

PASSWORD = "correct horse battery"
ROLE_USERS = {"viewer": "vera", "operator": "otto", "approver": "anna", "admin": "ada"}


def open_app(tmp_path: Path, extra: str = "", **general):
    """The panel over the data_dir of write_config(tmp_path, ...), as that directory is."""
    return create_app(build_services(load_config(write_config(tmp_path, extra, **general))), {"TESTING": True})


def make_app(tmp_path: Path, extra: str = "", **general):
    """The panel with one user per role (ROLE_USERS, all with PASSWORD) and the sample contacts."""
    app = open_app(tmp_path, extra, **general)
    panel = app.extensions["allerta"]
    for role, name in ROLE_USERS.items():
        add_user(panel.sessions, panel.audit, name, PASSWORD, role, actor="test")
    report = import_contacts(panel.sessions, CONTACTS_CSV.encode("utf-8"))
    assert report.imported
    return app


def csrf_token(client, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    token = csrf_token(client)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def client_for(app, role: str):
    client = app.test_client()
    response = login(client, ROLE_USERS[role])
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def post(client, path: str, data: dict | None = None, **kwargs):
    """A form POST with the CSRF token the panel gave this client."""
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client, "/account"))
    return client.post(path, data=data, **kwargs)


def created_id(response) -> int:
    """The id of the alert a compose POST created (it redirects to the alert's page)."""
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    return int(response.location.rstrip("/").rsplit("/", 1)[1])


def stored_alert(panel, alert_id: int):  # noqa: ANN201 - a gateway.core.models.Alert
    with panel.sessions() as s:
        return s.get(Alert, alert_id)
