"""Every route for every role: allowed and refused, checked on the server; login required everywhere."""
from __future__ import annotations

import pytest

from gateway.core.alerts import AlertRequest, Target
from gateway.core.models import Delivery, InboundSms
from gateway.core.models_citizens import HelpRequest
from tests.web_support import ROLE_USERS, client_for, csrf_token, make_app
from web.users import RANK

# (method, url, the least role allowed). {alert}, {delivery}, {contact}, {zone}, {group} are filled in.
ROUTES = [
    ("GET", "/", "viewer"),
    ("GET", "/dashboard.json", "viewer"),
    ("GET", "/account", "viewer"),
    ("POST", "/account", "viewer"),
    ("GET", "/alerts/", "viewer"),
    ("GET", "/alerts/new", "operator"),
    ("POST", "/alerts/new", "operator"),
    ("POST", "/alerts/sms-plan", "operator"),
    ("POST", "/alerts/preview", "operator"),
    ("GET", "/alerts/{alert}", "viewer"),
    ("GET", "/alerts/{alert}/progress.json", "viewer"),
    ("GET", "/alerts/{alert}/pictures.json", "viewer"),
    ("GET", "/alerts/{alert}/report.pdf", "viewer"),
    ("GET", "/alerts/{alert}/deliveries/{delivery}", "viewer"),
    ("GET", "/alerts/{alert}/audio.wav", "viewer"),
    ("GET", "/alerts/{alert}/audio/{language}.wav", "viewer"),
    ("POST", "/alerts/voice-preview", "operator"),
    ("GET", "/alerts/{alert}/export.csv", "operator"),
    ("GET", "/alerts/{alert}/vulnerable", "operator"),
    ("POST", "/alerts/{alert}/submit", "operator"),
    ("POST", "/alerts/{alert}/approve", "approver"),
    ("POST", "/alerts/{alert}/reject", "approver"),
    ("POST", "/alerts/{alert}/cancel", "operator"),
    ("POST", "/alerts/{alert}/share", "operator"),
    ("GET", "/contacts/", "viewer"),
    ("GET", "/contacts/new", "operator"),
    ("POST", "/contacts/new", "operator"),
    ("GET", "/contacts/{contact}", "viewer"),
    ("POST", "/contacts/{contact}", "operator"),
    ("POST", "/contacts/{contact}/delete", "operator"),
    ("GET", "/contacts/import", "operator"),
    ("POST", "/contacts/import", "operator"),
    ("POST", "/contacts/import/confirm", "operator"),
    ("POST", "/contacts/import/cancel", "operator"),
    ("GET", "/inbox/", "viewer"),
    ("GET", "/inbox/{inbound}", "viewer"),
    ("POST", "/inbox/{inbound}/reply", "operator"),
    ("POST", "/inbox/help/{help}/handled", "operator"),
    ("GET", "/zones/", "viewer"),
    ("POST", "/zones/zone/{zone}/rename", "operator"),
    ("POST", "/zones/zone/{zone}/merge", "operator"),
    ("POST", "/zones/zone/{zone}/delete", "operator"),
    ("POST", "/zones/group/{group}/rename", "operator"),
    ("POST", "/zones/group/{group}/merge", "operator"),
    ("POST", "/zones/group/{group}/delete", "operator"),
    ("GET", "/admin/users", "admin"),
    ("POST", "/admin/users", "admin"),
    ("GET", "/admin/audit", "admin"),
    ("GET", "/admin/tokens", "admin"),
    ("POST", "/admin/tokens", "admin"),
    ("GET", "/admin/config", "admin"),
    ("GET", "/admin/elections/", "admin"),
    ("POST", "/admin/elections/", "admin"),
]
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("POST", "/language"),
          ("GET", "/api/v1/openapi.json"),
          # Published CAP: open to the [cap] publish_allow networks only (web/cap.py checks; 404 when off).
          ("GET", "/cap/alerts/<int:alert_id>.xml"), ("GET", "/cap/feed.atom")}
TOKEN = {("POST", "/api/v1/alerts"), ("GET", "/api/v1/alerts/<int:alert_id>"), ("GET", "/api/v1/lines"),
         ("GET", "/api/v1/inbox"), ("GET", "/api/v1/help-requests"), ("POST", "/api/v1/cap")}


def _rule_key(method: str, url: str) -> tuple[str, str]:
    for name, placeholder in (("alert", "<int:alert_id>"), ("delivery", "<int:delivery_id>"),
                              ("contact", "<int:contact_id>"), ("language", "<language>"),
                              ("inbound", "<int:inbound_id>"), ("help", "<int:help_id>")):
        url = url.replace("{" + name + "}", placeholder)
    # One rule serves zones and groups: /zones/<any(zone, group):kind>/<int:item_id>/...
    for kind in ("zone", "group"):
        url = url.replace(f"/zones/{kind}/{{{kind}}}/", "/zones/<any(zone, group):kind>/<int:item_id>/")
    return method, url


def test_every_route_is_in_the_table(app):
    """A new route must be added here with its role, so no route escapes these tests."""
    rules = {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    covered = {_rule_key(m, u) for m, u, _ in ROUTES} | PUBLIC | TOKEN
    assert rules - covered == set(), "routes without a role in ROUTES"
    assert covered - rules == set(), "ROUTES lists routes that do not exist"


def test_every_view_declares_its_role(app):
    for endpoint, view in app.view_functions.items():
        if endpoint != "static":
            assert getattr(view, "min_role", None), f"{endpoint} declares no role"


def _fixture_ids(app) -> dict[str, int]:
    services = app.extensions["allerta"].services
    alert_id, _ = services.alerts.create(AlertRequest(text="Prova", target=Target(zones=("Fregene",))))
    with services.sessions() as s:
        delivery = s.query(Delivery).filter_by(alert_id=alert_id).first().id
        from gateway.core.models import Contact
        contact = s.query(Contact).first().id
        from gateway.core.models import Group, Zone
        # Ones with people in them: an allowed delete is refused (400) and leaves the next routes their target.
        zone = s.query(Zone).filter_by(name="Fregene").one().id
        group = s.query(Group).filter_by(name="volontari").one().id
    with services.sessions.begin() as s:
        inbound = InboundSms(line="modem-1", sender="+393331110001", text="AIUTO", kind="help_request")
        s.add(inbound)
        s.flush()
        help_request = HelpRequest(inbound_id=inbound.id, e164=inbound.sender, text=inbound.text)
        s.add(help_request)
        s.flush()
        inbound_id, help_id = inbound.id, help_request.id
    return {"alert": alert_id, "delivery": delivery, "contact": contact, "language": "ro", "zone": zone,
            "group": group, "inbound": inbound_id, "help": help_id}


@pytest.mark.parametrize("role", list(ROLE_USERS))
def test_roles_allowed_and_refused(tmp_path, role):
    app = make_app(tmp_path)
    ids = _fixture_ids(app)
    client = client_for(app, role)
    token = csrf_token(client, "/account")
    for method, url, needed in ROUTES:
        path = url.format(**ids)
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(path, data={"csrf_token": token})
        allowed = RANK[role] >= RANK[needed]
        where = f"{role} {method} {path} -> {response.status_code}"
        if allowed:
            assert response.status_code != 403 and response.status_code < 500, where
            assert "/login" not in (response.location or ""), where
        else:
            assert response.status_code == 403, where


def test_login_required_everywhere(app):
    client = app.test_client()
    ids = {"alert": 1, "delivery": 1, "contact": 1, "language": "ro", "zone": 1, "group": 1, "inbound": 1, "help": 1}
    token = csrf_token(client)
    for method, url, _ in ROUTES:
        path = url.format(**ids)
        response = client.get(path) if method == "GET" else client.post(path, data={"csrf_token": token})
        if path.endswith(".json"):
            assert response.status_code == 401, path
        else:
            assert response.status_code == 302 and "/login" in response.location, path


def test_unmarked_view_is_refused(app):
    """A view nobody gave a role fails closed."""
    app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    client = client_for(app, "admin")
    assert client.get("/forgotten").status_code == 403
