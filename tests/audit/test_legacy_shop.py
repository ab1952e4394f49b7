"""The audit over the project's own legacy example, once it exists."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from codemods.audit import run_audit
from codemods.audit.reports import render_json, schema_path

LEGACY_SHOP = Path(__file__).resolve().parents[2] / "examples" / "legacy_shop"


@pytest.mark.skipif(not LEGACY_SHOP.is_dir(), reason="examples/legacy_shop/ does not exist yet")
def test_audit_of_the_legacy_shop_example() -> None:
    report = run_audit([LEGACY_SHOP], jobs=1)
    assert report.errors == []
    assert report.hotspots, "the legacy shop exists to show retry hotspots"
    for h in report.hotspots:
        lines = (LEGACY_SHOP / h.path).read_text().splitlines()
        assert 1 <= h.start_line <= h.end_line <= len(lines)
        assert h.excerpt.splitlines()[0].strip() == lines[h.start_line - 1].strip()
    schema = json.loads(schema_path().read_text())
    jsonschema.validate(json.loads(render_json(report)), schema)
