"""Shared fixtures for the audit tests: the annotated legacy codebase."""

from __future__ import annotations

import pytest
from audit_expect import LEGACY

from toolkit.audit import AuditReport, run_audit


@pytest.fixture(scope="session")
def legacy_report() -> AuditReport:
    return run_audit([LEGACY], jobs=1)
