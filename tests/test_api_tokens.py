"""API tokens die with their owner, expire, have unique names, and are provisioned from the command line."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from gateway.core.audit import local_actor
from gateway.core.config import load_config
from gateway.core.models import Alert
from gateway.core.models_panel import ApiToken, AuditEntry
from gateway.core.services import build_services
from gateway.shell.cli import main
from tests.support import write_config
from tests.web_support import ROLE_USERS, client_for, post
from web.app import create_app
from web.tokens import NAME_MAX, TokenError, create_token
from web.users import set_active

# Run on SQLite and on PostgreSQL (conftest.py, tests/pg_support.py).
pytestmark = pytest.mark.both_databases


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_dies_with_its_owner_and_lives_again_with_them(app, panel):
    _id, token = create_token(panel.audit, "meteo", "operator", actor="ada", owner=ROLE_USERS["approver"])
    client = app.test_client()
    assert client.get("/api/v1/lines", headers=_auth(token)).status_code == 200
    set_active(panel.sessions, panel.audit, ROLE_USERS["approver"], False, actor="ada")
    response = client.get("/api/v1/lines", headers=_auth(token))
    assert response.status_code == 401 and response.get_json()["error"] == "this token's owner account is disabled"
    assert "Titolare disattivato" in client_for(app, "admin").get("/admin/tokens").get_data(as_text=True)
    set_active(panel.sessions, panel.audit, ROLE_USERS["approver"], True, actor="ada")
    assert client.get("/api/v1/lines", headers=_auth(token)).status_code == 200


def test_a_token_expires(app, panel):
    _id, token = create_token(panel.audit, "meteo", "viewer", actor="ada", owner="ada", days=30)
    with panel.sessions.begin() as s:
        row = s.scalar(select(ApiToken))
        assert dt.timedelta(days=29) < row.expires_at - row.created_at <= dt.timedelta(days=30, minutes=1)
        s.execute(update(ApiToken).values(expires_at=dt.datetime(2020, 1, 1)))
    response = app.test_client().get("/api/v1/lines", headers=_auth(token))
    assert response.status_code == 401 and response.get_json()["error"] == "this token has expired"


def test_names_are_unique_bounded_and_roles_limited(panel):
    create_token(panel.audit, "meteo", "viewer", actor="ada", owner="ada")
    for name, role, owner, days, message in (
            (" meteo ", "viewer", "ada", 365, "exists already"),
            ("x" * (NAME_MAX + 1), "viewer", "ada", 365, f"at most {NAME_MAX}"),
            ("", "viewer", "ada", 365, "give the token a name"),
            ("a\x00b", "viewer", "ada", 365, "control characters"),
            ("admin tool", "admin", "ada", 365, "unknown token role"),
            ("sala", "approver", ROLE_USERS["operator"], 365, "their token cannot be approver"),
            ("sala", "viewer", "nessuno", 365, "not an active panel account"),
            ("sala", "viewer", "ada", 0, "1 to 3650 days"),
            ("sala", "viewer", "ada", 99999, "1 to 3650 days")):
        with pytest.raises(TokenError, match=message):
            create_token(panel.audit, name, role, actor="ada", owner=owner, days=days)
    with panel.sessions() as s:
        assert s.scalar(select(ApiToken.name)) == "meteo" and len(list(s.scalars(select(ApiToken)))) == 1


def test_the_panel_creates_tokens_owned_by_the_admin_with_an_expiry(app, panel):
    admin = client_for(app, "admin")
    html = post(admin, "/admin/tokens", {"name": "meteo", "role": "operator", "days": "90"}).get_data(as_text=True)
    assert 'id="new-token"' in html
    html = post(admin, "/admin/tokens", {"name": "meteo", "role": "operator"}).get_data(as_text=True)
    assert "Il token non è stato creato" in html and "esiste già un token chiamato" in html
    with panel.sessions() as s:
        row = s.scalar(select(ApiToken))
    assert row.owner == ROLE_USERS["admin"] and (row.expires_at - row.created_at).days in (89, 90)


def test_the_audit_names_the_token_that_acted(app, panel):
    _id, token = create_token(panel.audit, "sala operativa", "operator", actor="ada", owner="ada")
    response = app.test_client().post("/api/v1/alerts", headers=_auth(token),
                                      json={"text": "Allerta", "target": {"zones": ["Fregene"]}})
    assert response.status_code == 201
    with panel.sessions() as s:
        assert s.scalar(select(Alert.created_by)) == "api:sala operativa"
        assert "api:sala operativa" in set(s.scalars(select(AuditEntry.actor)))


def test_installers_provision_tokens_without_a_browser(tmp_path, capsys):
    config = str(write_config(tmp_path))
    base = ["--config", config, "tokens"]
    assert main(base + ["create", "meteo", "--role", "operator"]) == 2  # no admin yet: who would own it?
    assert "give --owner" in capsys.readouterr().err
    assert main(["--config", config, "users", "add", "ada", "--role", "admin", "--generate"]) == 0
    capsys.readouterr()
    assert main(base + ["create", "meteo", "--role", "operator", "--expires", "30"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("allerta_")
    assert main(base + ["create", "meteo", "--role", "viewer"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(base + ["list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "meteo" and listed["owner"] == "ada" and listed["state"] == "active"
    assert listed["expires_at"] is not None and token not in json.dumps(listed)
    client = create_app(build_services(load_config(config)), {"TESTING": True}).test_client()
    assert client.get("/api/v1/lines", headers=_auth(token)).status_code == 200
    assert main(base + ["revoke", "meteo"]) == 0
    assert main(base + ["revoke", "meteo"]) == 2
    assert client.get("/api/v1/lines", headers=_auth(token)).status_code == 401
    services = build_services(load_config(config))
    with services.sessions() as s:
        actions = {(e.action, e.actor) for e in s.scalars(select(AuditEntry)) if e.action.startswith("token.")}
    assert actions == {("token.create", local_actor()), ("token.revoke", local_actor())}
