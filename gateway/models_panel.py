"""Models of the operator panel: users, audit log, API tokens (filled in by the panel work)."""
from __future__ import annotations

from gateway.models import Base  # noqa: F401 - tables declared here share the schema
