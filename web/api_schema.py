"""The API's published OpenAPI document, and the validation of request bodies against it.

One schema serves both: what /api/v1/openapi.json promises is what a request is checked against, by
``jsonschema`` (a well-kept validator) rather than by hand-written checks that drifted from the document
(``{"target": {"all": "false"}}`` was once read as ``all: true``, an alert to everyone).
"""
from __future__ import annotations

from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from gateway.core.audio import VOICES
from gateway.core.inbox import KINDS
from gateway.core.polls import MAX_OPTION, MAX_OPTIONS, MAX_QUESTION, MIN_OPTIONS
from gateway.core.states import AlertCategory, AlertState, CapCategory, Channel
from web.params import MAX_ID


_STRINGS = {"type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 10_000}

CREATE_ALERT = {
    "type": "object", "required": ["text", "target"], "additionalProperties": False,
    "properties": {
        "text": {"type": "string", "minLength": 1, "description": "The SMS text, also read by the synthesised voice"},
        "channels": {"type": "array", "minItems": 1, "uniqueItems": True,
                     "items": {"type": "string", "enum": [channel.value for channel in Channel]},
                     "default": [Channel.SMS.value]},
        "target": {"type": "object", "additionalProperties": False,
                   "properties": {"all": {"type": "boolean"}, "zones": _STRINGS, "groups": _STRINGS,
                                  "numbers": _STRINGS}},
        "drill": {"type": "boolean", "default": False},
        "priority": {"type": "boolean", "default": False},
        "sms_fallback": {"type": "boolean", "description": "voice: unconfirmed mobiles get the SMS"},
        "voice_language": {"type": "string", "enum": sorted(VOICES),
                           "description": "the language the text is written in, read by its voice; "
                                          "every recipient hears the introduction and closing in "
                                          "their own language"},
        "translations": {"type": "object", "additionalProperties": {"type": "string"},
                         "description": "the message in other languages, {\"en\": \"...\"}: "
                                        "recipients of that language get it, by SMS and spoken"},
        "asks_confirmation": {"type": "boolean", "default": False,
                              "description": "the SMS ends with 'Rispondi OK per confermare.' ('Reply OK to "
                                             "confirm.' in English versions); not with a poll"},
        "poll": {"type": "object", "required": ["question", "options"], "additionalProperties": False,
                 "description": "the SMS ends with the question and 'Rispondi 1 se ..., 2 se ...' ('Reply 1 "
                                "for ..., 2 for ...' in English versions); replies count one vote per number",
                 "properties": {
                     "question": {"type": "string", "minLength": 1, "maxLength": MAX_QUESTION},
                     "options": {"type": "array", "minItems": MIN_OPTIONS, "maxItems": MAX_OPTIONS,
                                 "items": {"type": "string", "minLength": 1, "maxLength": MAX_OPTION}},
                     "closes_at": {"type": "string", "format": "date-time",
                                   "description": "with its offset (Z or +01:00); votes after it do not count"}}},
        "mode": {"type": "string", "enum": ["submit", "draft", "send_now"], "default": "submit",
                 "description": "a draft is shared: any operator may review and submit it in the panel"},
        "reason": {"type": "string", "maxLength": 2000,
                   "description": "required with send_now under the two-person rule"},
        "category": {"type": "string", "enum": [category.value for category in AlertCategory],
                     "description": "emergency (life safety: ignores STOP INFO, quiet hours and the election "
                                    "lock) or information (public utility: respects them); default emergency "
                                    "(a drill is always an emergency by default)"},
        "cap_category": {"type": "string", "enum": [category.value for category in CapCategory],
                         "description": "what an emergency is about (CAP 1.2 <category>); default Safety; "
                                        "not for information"},
        "election_reason": {"type": "string", "maxLength": 2000,
                            "description": "during an election period, why this information message is "
                                           "impersonal and indispensable (law 28/2000, art. 9); only an "
                                           "approver token may give it"},
    }}

_VALIDATORS = {"create_alert": Draft202012Validator(CREATE_ALERT)}


@dataclass(frozen=True)
class BodyError:
    """Why a request body does not match the schema, and where (a JSON pointer, "" for the whole body)."""
    field: str
    message: str


def body_error(schema: str, body: object) -> BodyError | None:
    """The most relevant mismatch between ``body`` and the named request schema, or None."""
    error = best_match(_VALIDATORS[schema].iter_errors(body))
    if error is None:
        return None
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        # jsonschema reports the object, not the offending key: name the key, which is what a caller fixes.
        known = set(error.schema.get("properties", {}))
        extra = sorted(key for key in error.instance if key not in known)
        path.append(extra[0])
        return BodyError(_pointer(path), f"unknown field {extra[0]!r}")
    return BodyError(_pointer(path), error.message)


def _pointer(path: list) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string"},
                         "field": {"type": "string", "description": "JSON pointer to the refused field"}}}
_PROGRESS = {"type": "object", "properties": {k: {"type": "integer"} for k in
                                               ("total", "queued", "in_progress", "sent", "reached", "failed",
                                                "cancelled")} | {"percent": {"type": "number"},
                                                                 "channels": {"type": "object"}}}
_POLL_RESULTS = {"type": ["object", "null"], "properties": {
    "question": {"type": "string"}, "votes": {"type": "integer"}, "changed": {"type": "integer"},
    "closes_at": {"type": ["string", "null"], "format": "date-time"}, "open": {"type": "boolean"},
    "options": {"type": "array", "items": {"type": "object", "properties": {
        "number": {"type": "integer"}, "text": {"type": "string"}, "votes": {"type": "integer"},
        "percent": {"type": "integer"}}}}}}
_ALERT = {"type": "object", "properties": {
    "asks_confirmation": {"type": "boolean"},
    "poll": _POLL_RESULTS,
    "id": {"type": "integer"},
    "state": {"type": "string", "enum": [state.value for state in AlertState]},
    "drill": {"type": "boolean"}, "priority": {"type": "boolean"}, "text": {"type": "string"},
    "category": {"type": "string", "enum": [category.value for category in AlertCategory]},
    "cap_category": {"type": ["string", "null"], "enum": [*(category.value for category in CapCategory), None]},
    "election_reason": {"type": ["string", "null"]},
    "held_until": {"type": ["string", "null"], "format": "date-time",
                   "description": "information waiting for the end of the quiet hours ([ops] quiet_hours)"},
    "encoding": {"type": "string", "enum": ["GSM-7", "UCS-2"]}, "segments": {"type": "integer"},
    "channels": {"type": "array", "items": {"type": "string", "enum": [channel.value for channel in Channel]}},
    "recipients": {"type": "integer"}, "created_by": {"type": "string"},
    "created_at": {"type": "string", "format": "date-time"}, "progress": _PROGRESS,
    "completed_at": {"type": ["string", "null"], "format": "date-time"},
    "eta_seconds": {"type": ["number", "null"]}, "url": {"type": "string"}}}


_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
_MESSAGE = {"type": "object", "properties": {
    "id": {"type": "integer"}, "line": {"type": "string"}, "sender": {"type": "string"},
    "name": {"type": "string", "description": "the contact's name, when the number is in the list"},
    "received_at": _TIME, "text": {"type": "string"},
    "kind": {"type": ["string", "null"], "enum": [*KINDS, None], "description": "null: not processed yet"},
    "outcome": {"type": ["string", "null"]}, "alert_id": {"type": ["integer", "null"]},
    "incomplete": {"type": "boolean"}, "parts": {"type": "integer"}, "handled": {"type": "boolean"},
    "help_request_id": {"type": ["integer", "null"]}}}
_HELP = {"type": "object", "properties": {
    "id": {"type": "integer"}, "e164": {"type": "string"}, "text": {"type": "string"},
    "channel": {"type": "string"}, "received_at": _TIME, "alert_id": {"type": ["integer", "null"]},
    "inbound_id": {"type": ["integer", "null"]}, "handled_at": _MAYBE_TIME,
    "handled_by": {"type": ["string", "null"]}, "note": {"type": ["string", "null"]},
    "name": {"type": "string"}, "address": {"type": ["string", "null"]}, "zone": {"type": ["string", "null"]},
    "vulnerable": {"type": "boolean"}, "needs": {"type": ["string", "null"]}}}


def _answer(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


# Every status the API gives (tests/test_web_api.py checks each answer against this list).
_COMMON = {"401": _answer("missing, invalid, revoked or expired token, or its owner is disabled"),
           "413": _answer("the body is larger than the panel accepts"),
           "429": _answer("too many refused tokens from this address today; see Retry-After")}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Allerta API", "version": "1",
             "description": "Create alerts and follow them. Every call needs 'Authorization: Bearer <token>'; "
                            "admins create and revoke tokens in the panel (Administration, API tokens) or with "
                            "'allerta tokens'. A token has a role: viewer reads, operator creates alerts "
                            "(waiting for approval under the two-person rule), approver may also send at once "
                            "with a reason. 400: the body does not match this document (the 'field' names "
                            "where); 422: a well-formed request the gateway cannot carry out as asked."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/alerts": {"post": {
            "summary": "Create an alert",
            "requestBody": {"required": True, "content": {"application/json": {"schema": CREATE_ALERT}}},
            "responses": {"201": {"description": "created", "content": {"application/json": {"schema": _ALERT}}},
                          "400": _answer("the body is not a JSON object matching the schema"),
                          "403": _answer("the token's role cannot create alerts"),
                          "422": _answer("the alert cannot be created as asked"),
                          **_COMMON}}},
        "/api/v1/alerts/{id}": {"get": {
            "summary": "Progress of an alert",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID}}],
            "responses": {"200": {"description": "the alert", "content": {"application/json": {"schema": _ALERT}}},
                          "404": _answer("no such alert"), **_COMMON}}},
        "/api/v1/cap": {"post": {
            "summary": "Hand over a CAP 1.2 warning: it becomes a draft awaiting approval (or a correction, an "
                       "all-clear, the withdrawal of a draft), never sent without an approver unless a "
                       "[cap] auto_send rule names its sender",
            "requestBody": {"required": True, "content": {"application/cap+xml": {"schema": {"type": "string"}}}},
            "responses": {"201": _answer("a draft, correction or all-clear was made ('outcome', 'alert_id', 'detail')"),
                          "200": _answer("received, no alert made: 'seen' before, 'ignored' or 'refused' "
                                         "by the alert rules ('detail' says why)"),
                          "400": _answer("not XML we accept (DTD, entities, syntax): 'element' and 'rule' say where"),
                          "403": _answer("the token's role cannot hand over warnings"),
                          "422": _answer("not valid CAP 1.2: 'element' and 'rule' say where"),
                          **_COMMON}}},
        "/api/v1/inbox": {"get": {
            "summary": "SMS received from citizens, newest first, with what was made of each",
            "parameters": [
                {"name": "kind", "in": "query", "schema": {"type": "string", "enum": list(KINDS)}},
                {"name": "sender", "in": "query", "schema": {"type": "string"},
                 "description": "numbers containing this"},
                {"name": "alert", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                 "description": "answers to this alert"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                                                             "default": 50}},
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}}],
            "responses": {"200": {"description": "one page of messages", "content": {"application/json": {
                "schema": {"type": "object", "properties": {
                    "total": {"type": "integer"}, "page": {"type": "integer"},
                    "messages": {"type": "array", "items": _MESSAGE}}}}}},
                "400": _answer("a parameter is wrong ('field' names it)"), **_COMMON}}},
        "/api/v1/help-requests": {"get": {
            "summary": "Help requests not handled yet (all=true: handled ones too), newest first",
            "parameters": [{"name": "all", "in": "query", "schema": {"type": "boolean", "default": False}}],
            "responses": {"200": {"description": "help requests", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"help_requests": {"type": "array", "items": _HELP}}}}}},
                **_COMMON}}},
        "/api/v1/lines": {"get": {
            "summary": "Health of every modem and trunk, as last written by the engine",
            "responses": {"200": {"description": "lines", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"lines": {"type": "array", "items": {"type": "object"}}}}}}},
                **_COMMON}}},
    },
}
