"""The signed-in user as Flask-Login sees it."""
from __future__ import annotations

from flask_login import UserMixin

from gateway.core.models_panel import User
from web.context import panel
from web.users import has_role


class PanelUser(UserMixin):
    """The signed-in user, detached from the database session."""

    def __init__(self, row: User) -> None:
        self.id, self.username, self.role = row.id, row.username, row.role
        self.language, self.session_version = row.language, row.session_version

    def get_id(self) -> str:
        # A password change, role change or disable bumps session_version and ends every session.
        return f"{self.id}:{self.session_version}"

    def can(self, role: str) -> bool:
        return has_role(self.role, role)


def load_user(user_id: str) -> PanelUser | None:
    try:
        uid, version = (int(part) for part in user_id.split(":"))
    except ValueError:
        return None
    with panel().sessions() as s:
        row = s.get(User, uid)
        if row is None or not row.active or row.session_version != version:
            return None
        return PanelUser(row)
