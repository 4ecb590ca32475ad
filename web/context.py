"""What every view needs: the services of the composition root and the audit log."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request
from flask_login import current_user

from gateway.core.services import Services
from gateway.core.audit import AuditLog
from gateway.core.config import WebConfig


@dataclass
class Panel:
    services: Services
    audit: AuditLog

    @property
    def config(self):  # noqa: ANN201
        return self.services.config

    @property
    def web(self) -> WebConfig:
        return self.services.config.web

    @property
    def sessions(self):  # noqa: ANN201
        return self.services.sessions


def panel() -> Panel:
    return current_app.extensions["allerta"]


def actor() -> str:
    """Who does what is being done: the signed-in user, or the API token's name."""
    name = getattr(request, "api_actor", None)
    if name:
        return name
    return current_user.username if current_user.is_authenticated else "-"


def remote() -> str | None:
    return request.remote_addr
