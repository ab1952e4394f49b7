"""SARIF 2.1.0 for code scanning (GitHub, GitLab, Azure DevOps).

Guarantees: every URI is relative to the repository root and carries
``uriBaseId: "%SRCROOT%"`` (no absolute path of the machine that ran the
audit is written); regions have 1-based start and end columns when the
scanner knows them; ``partialFingerprints`` hold the finding's fingerprint
(file, kind, function and code, no line numbers), so an alert keeps its
identity when unrelated lines move; the log validates against the SARIF
2.1.0 schema shipped in ``schemas/``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from codemods.audit.model import KIND_TITLES, AuditReport, Hotspot, Kind, Risk
from codemods.audit.reports import KIND_HELP, message, tool_version

SARIF_LEVEL = {Risk.HIGH: "error", Risk.MEDIUM: "warning", Risk.LOW: "note"}
FINGERPRINT_KEY = "durableHotspot/v1"
SRCROOT = "%SRCROOT%"


def _region(h: Hotspot) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": h.start_line, "endLine": h.end_line}
    if h.end_col:
        region["startColumn"] = h.start_col + 1
        region["endColumn"] = h.end_col + 1
    region["snippet"] = {"text": h.excerpt}
    return region


def _result(h: Hotspot, index: dict[Kind, int], known: bool | None) -> dict[str, Any]:
    text = f"{h.risk.value} risk: {message(h)}."
    if h.refusal:
        text += f" Not rewritten automatically: {h.refusal}."
    if h.why:
        text += " " + " ".join(h.why)
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": quote(h.path), "uriBaseId": SRCROOT},
            "region": _region(h),
        }
    }
    if h.function:
        location["logicalLocations"] = [{"fullyQualifiedName": h.function}]
    result: dict[str, Any] = {
        "ruleId": f"durable/{h.kind.value}",
        "ruleIndex": index[h.kind],
        "level": SARIF_LEVEL[h.risk],
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: h.id},
        "properties": {
            "risk": h.risk.value,
            "pattern": h.pattern,
            "fix": h.fix.label(),
            "fixable": h.fixable,
            "tags": [h.kind.value, f"risk-{h.risk.value}"],
        },
    }
    if h.group:
        result["properties"]["helper"] = h.group
    if h.also_at:
        result["relatedLocations"] = [
            {
                "id": i,
                "message": {"text": "the same site, also found here"},
                "physicalLocation": {
                    "artifactLocation": {
                        "uri": quote(loc.rpartition(":")[0]),
                        "uriBaseId": SRCROOT,
                    },
                    "region": {"startLine": int(loc.rpartition(":")[2].split("-")[0])},
                },
            }
            for i, loc in enumerate(h.also_at, 1)
        ]
    if known is not None:
        result["baselineState"] = "unchanged" if known else "new"
    return result


def sarif_document(report: AuditReport) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one rule per kind, one result per finding.

    With a baseline, findings in it are included with ``baselineState:
    "unchanged"`` (new ones are ``"new"``) so code scanning keeps their alerts open;
    findings silenced by ``# durable: ignore`` are included with an ``inSource``
    suppression, so code scanning closes theirs.
    """
    rules = [
        {
            "id": f"durable/{k.value}",
            "name": KIND_TITLES[k].title().replace(" ", "").replace("-", ""),
            "shortDescription": {"text": KIND_TITLES[k]},
            "fullDescription": {"text": KIND_HELP[k]},
            "defaultConfiguration": {"level": "warning"},
            "help": {"text": KIND_HELP[k] + " Run `durable audit` for the fix of each site."},
            "properties": {"tags": ["reliability", "retry"]},
        }
        for k in Kind
    ]
    index = {k: i for i, k in enumerate(Kind)}
    with_baseline = report.baseline_file is not None
    results = [_result(h, index, False if with_baseline else None) for h in report.hotspots]
    results += [_result(h, index, True) for h in report.known]
    for h in report.suppressed:  # code scanning closes their alerts as suppressed in source
        suppressed = _result(h, index, None)
        suppressed["suppressions"] = [
            {"kind": "inSource", "justification": "# durable: ignore comment"}
        ]
        results.append(suppressed)
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{e.path}: {e.message}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": quote(e.path), "uriBaseId": SRCROOT},
                        **({"region": {"startLine": e.line}} if e.line else {}),
                    }
                }
            ],
        }
        for e in report.errors
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "durable-audit",
                "organization": "durable-toolkit",
                "semanticVersion": tool_version(),
                "rules": rules,
            }
        },
        "originalUriBaseIds": {
            SRCROOT: {"description": {"text": "The repository root (the folder holding .git)."}}
        },
        "results": results,
        "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
        "columnKind": "unicodeCodePoints",
    }
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    }


def render_sarif(report: AuditReport) -> str:
    """SARIF 2.1.0 text (see :func:`sarif_document`)."""
    return json.dumps(sarif_document(report), indent=2) + "\n"
