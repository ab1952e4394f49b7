"""``durable audit``: find hand-rolled reliability code and rank it by risk.

Public API::

    from codemods.audit import run_audit, AuditReport, Hotspot, Risk, Kind
    report = run_audit(["path/to/legacy"])          # hotspots worst first

    from codemods.audit import audit, AuditConfig   # as `durable audit` runs it:
    report = audit(["path/to/legacy"], AuditConfig())  # repo-relative paths, one per site,
                                                    # tests, config and suppressions applied

The scan reads files only (``ast`` for Python, regular expressions for SQL,
crontabs and broker configuration); it never imports or runs scanned code,
and never imports :mod:`codemods` or :mod:`adapters`.
"""

from codemods.audit.config import AuditConfig, find_config, load_config
from codemods.audit.model import AuditReport, FileError, Fix, Hotspot, Kind, Risk
from codemods.audit.pipeline import audit
from codemods.audit.reports import SCHEMA_VERSION
from codemods.audit.scanner import run_audit

__all__ = [
    "SCHEMA_VERSION",
    "AuditConfig",
    "AuditReport",
    "FileError",
    "Fix",
    "Hotspot",
    "Kind",
    "Risk",
    "audit",
    "find_config",
    "load_config",
    "run_audit",
]
