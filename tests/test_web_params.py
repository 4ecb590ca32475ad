"""Malformed numbers and dates in URLs, query strings and forms give 404 or 400 with a message, never 500.

Each reproduction of the hardening report first, then a property test that throws random values at every
route's parameters (hypothesis).
"""
from __future__ import annotations

import re
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.web_support import client_for, post

HUGE = "99999999999999999999"


def test_the_reported_reproductions(app):
    admin = client_for(app, "admin")
    assert admin.get("/contacts/?page=9223372036854775807").status_code == 400
    assert admin.get(f"/alerts/{HUGE}").status_code == 404
    assert admin.get(f"/alerts/{HUGE}/progress.json").status_code == 404
    assert admin.get(f"/alerts/new?follows={HUGE}").status_code == 400
    assert admin.get("/alerts/?page=-3").status_code == 400
    assert admin.get(f"/admin/audit?page={HUGE}").status_code == 400
    response = post(admin, "/admin/tokens", {"action": "revoke", "id": HUGE})
    assert response.status_code == 400 and "id deve essere un numero intero" in response.get_data(as_text=True)
    assert post(admin, f"/zones/zone/1/merge", {"into": HUGE}).status_code == 400
    assert post(admin, f"/zones/zone/{HUGE}/merge", {"into": "1"}).status_code == 404
    response = post(admin, "/alerts/new", {"text": "Prova", "channels": "sms", "zones": "Fregene",
                                           "send_at": "0001-01-01T00:00", "action": "draft"})
    assert response.status_code == 400
    assert "non è una data" in response.get_data(as_text=True)


def _rules(app) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(rule, its methods, its argument names) of every panel and API route with a URL argument."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.arguments:
            continue
        found.append((rule.rule, tuple(sorted(rule.methods - {"HEAD", "OPTIONS"})), tuple(sorted(rule.arguments))))
    return found


_VALUES = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str),
                    st.sampled_from(["", "0", "-1", HUGE, "1e5", "٣", "0001-01-01T00:00", "9999-12-31T23:59",
                                     "null", "[]", "%00"]),
                    st.text(max_size=12))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_route_answers_500_to_random_parameters(app, data):
    admin = client_for(app, "admin")
    token = re.search(r'name="csrf-token" content="([^"]+)"', admin.get("/account").get_data(as_text=True))[1]
    rule, methods, arguments = data.draw(st.sampled_from(_rules(app)))
    url = rule
    for name in arguments:
        value = data.draw(_VALUES if name not in ("kind", "language") else st.sampled_from(["zone", "group", "it"]))
        url = re.sub(rf"<[^>]*:?{name}>", lambda _match, v=quote(value, safe="") or "0": v, url)
    query = {name: data.draw(_VALUES) for name in ("page", "follows", "into", "id", "send_at")}
    method = data.draw(st.sampled_from(methods))
    if method == "GET":
        response = admin.get(url, query_string=query)
    else:
        response = admin.open(url, method=method, data={**query, "csrf_token": token})
    assert response.status_code < 500, (method, url, query, response.status_code)
