"""Every report format renders the same hotspots; JSON and SARIF validate
against their schemas (both shipped in the package, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from codemods.audit import AuditReport, run_audit
from codemods.audit.reports import (
    render_html,
    render_json,
    render_markdown,
    render_sarif,
    render_terminal,
    schema_path,
)


def test_json_report_validates_against_the_versioned_schema(legacy_report: AuditReport) -> None:
    doc = json.loads(render_json(legacy_report))
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(doc)
    assert doc["schema_version"].startswith("1.")
    assert len(doc["hotspots"]) == len(legacy_report.hotspots)
    assert {e["path"] for e in doc["errors"]} == {e.path for e in legacy_report.errors}


def test_json_schema_rejects_a_broken_report(legacy_report: AuditReport) -> None:
    doc = json.loads(render_json(legacy_report))
    doc["hotspots"][0]["risk"] = "catastrophic"
    schema = json.loads(schema_path().read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


def test_sarif_validates_against_the_sarif_2_1_0_schema(
    legacy_report: AuditReport, legacy: Path
) -> None:
    doc = json.loads(render_sarif(legacy_report, legacy))
    schema = json.loads(schema_path("sarif-2.1.0.json").read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator_cls(schema).validate(doc)
    assert doc["version"] == "2.1.0"
    [run] = doc["runs"]
    assert len(run["results"]) == len(legacy_report.hotspots)
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        loc = result["locations"][0]["physicalLocation"]
        assert not loc["artifactLocation"]["uri"].startswith("/")
        assert loc["region"]["startLine"] >= 1
    levels = {r["level"] for r in run["results"]}
    assert levels == {"error", "warning", "note"}
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert {n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for n in notes} == {
        e.path for e in legacy_report.errors
    }


def test_sarif_schema_rejects_an_invalid_log(legacy_report: AuditReport) -> None:
    doc = json.loads(render_sarif(legacy_report))
    doc["runs"][0]["results"][0]["level"] = "fatal"
    schema = json.loads(schema_path("sarif-2.1.0.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(schema)(schema).validate(doc)


def test_markdown_lists_every_hotspot_with_its_excerpt(legacy_report: AuditReport) -> None:
    md = render_markdown(legacy_report)
    assert md.startswith("# durable audit")
    for h in legacy_report.hotspots:
        assert f"`{h.path}:{h.start_line}" in md
    assert "requests.post(" in md
    assert "| Retry loop |" in md
    assert "## Files that did not parse" in md


def test_html_is_self_contained_and_escaped(legacy_report: AuditReport) -> None:
    html = render_html(legacy_report)
    assert html.count('<article class="hotspot') == len(legacy_report.hotspots)
    assert "<svg" in html and "<script" not in html
    lowered = html.lower()
    for ref in ('src="http', 'href="http', "@import", "url(http"):
        assert ref not in lowered


def test_html_escapes_code_excerpts(tmp_path: Path) -> None:
    (tmp_path / "evil.py").write_text(
        "import time\n\n\ndef f(get):\n"
        "    for attempt in range(3):\n"
        "        try:\n"
        "            return get('<script>alert(1)</script>')\n"
        "        except IOError:\n"
        "            time.sleep(1)\n"
        "    raise IOError()\n"
    )
    html = render_html(run_audit([tmp_path], jobs=1))
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_terminal_table_shows_the_worst_first(legacy_report: AuditReport, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        render_terminal(legacy_report, Console(file=fh, width=200))
    text = out.read_text()
    first_row = next(line for line in text.splitlines() if "│ high" in line or "| high" in line)
    assert "high" in first_row
    assert "hotspots: high" in text
    assert "not parsed app/broken.py:5" in text
