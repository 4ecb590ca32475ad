"""Models of the appliance: alarms and self-tests (filled in by the appliance work)."""
from __future__ import annotations

from gateway.models import Base  # noqa: F401 - tables declared here share the schema
