"""Every report format, checked on real output: JSON and SARIF against their schemas
(both shipped in the package, no network), Markdown's size, the terminal's line
format, GitHub annotations, and the report model's one-finding-per-site step."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from codemods.audit import AuditReport, Fix, Hotspot, Kind, Risk, audit
from codemods.audit.htmlreport import render_html
from codemods.audit.reports import (
    MARKDOWN_BUDGET,
    render_github,
    render_json,
    render_lines,
    render_markdown,
    render_table,
    schema_path,
)
from codemods.audit.sarif import FINGERPRINT_KEY, render_sarif
from codemods.audit.triage import dedupe, group_by, start_here

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
REPO = Path(__file__).resolve().parents[2]

RETRY = """import time

import requests


def charge(url, body):
    for attempt in range(5):
        try:
            return requests.post(url, json=body)
        except requests.Timeout:
            time.sleep(2 ** attempt)
    raise RuntimeError(url)
"""


@pytest.fixture(scope="module")
def report() -> AuditReport:
    return audit([LEGACY], jobs=1)


def _sarif_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(schema_path("sarif-2.1.0.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_paths_are_relative_to_the_repository_root(report: AuditReport) -> None:
    assert report.base == str(REPO)
    assert report.hotspots and all(
        h.path.startswith("tests/audit/fixtures/legacy/") for h in report.hotspots
    )


def test_json_report_validates_against_the_versioned_schema(report: AuditReport) -> None:
    doc = json.loads(render_json(report))
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(doc)
    assert doc["schema_version"].startswith("2.")
    assert len(doc["hotspots"]) == len(report.hotspots)
    assert doc["start_here"] and doc["start_here"][0]["risk"] == "high"
    assert {"start_col", "end_col", "group", "why", "also_at"} <= set(doc["hotspots"][0])
    doc["hotspots"][0]["risk"] = "catastrophic"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


def test_sarif_validates_and_points_into_the_repository(report: AuditReport) -> None:
    text = render_sarif(report)
    doc = json.loads(text)
    _sarif_validator().validate(doc)
    assert "file:" not in text and str(REPO) not in text  # no absolute path of this machine
    [run] = doc["runs"]
    assert len(run["results"]) == len(report.hotspots)
    assert "uri" not in run["originalUriBaseIds"]["%SRCROOT%"]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    fingerprints = set()
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        uri = loc["artifactLocation"]["uri"]
        assert uri.startswith("tests/audit/fixtures/legacy/")
        assert (REPO / uri).is_file()
        region = loc["region"]
        if uri.endswith(".py"):
            assert region["startColumn"] >= 1 and region["endColumn"] >= 1
        fingerprints.add(result["partialFingerprints"][FINGERPRINT_KEY])
    assert len(fingerprints) == len(run["results"])
    assert {r["level"] for r in run["results"]} == {"error", "warning", "note"}
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert {n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for n in notes} == {
        e.path for e in report.errors
    }
    doc["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        _sarif_validator().validate(doc)


def test_sarif_fingerprints_survive_unrelated_edits(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    src = tmp_path / "pkg" / "billing.py"
    src.parent.mkdir()
    src.write_text(RETRY)
    before = json.loads(render_sarif(audit([src.parent], jobs=1)))["runs"][0]["results"]
    src.write_text('"""Billing."""\n\nLIMIT = 3\n\n\n' + RETRY + "\n\ndef other():\n    return 1\n")
    after = json.loads(render_sarif(audit([src.parent], jobs=1)))["runs"][0]["results"]
    [b], [a] = before, after
    region_b = b["locations"][0]["physicalLocation"]["region"]
    region_a = a["locations"][0]["physicalLocation"]["region"]
    assert region_a["startLine"] == region_b["startLine"] + 5
    assert a["partialFingerprints"] == b["partialFingerprints"]
    assert a["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "pkg/billing.py"


def test_sarif_of_a_synthetic_report_validates(synthetic: Callable[[int], AuditReport]) -> None:
    _sarif_validator().validate(json.loads(render_sarif(synthetic(200))))


def test_markdown_fits_a_pull_request_comment(synthetic: Callable[[int], AuditReport]) -> None:
    big = synthetic(1000)
    md = render_markdown(big, details_url="https://ci.example/artifacts/audit.html")
    assert len(md) < MARKDOWN_BUDGET < 65_536
    assert "### Start here" in md and "### By helper" in md and "### By file" in md
    assert "975 more findings** in [the full report](https://ci.example/artifacts/audit.html)" in md
    assert md.count("\n| high |") + md.count("\n| medium |") + md.count("\n| low |") == 25


def test_markdown_of_the_fixture(report: AuditReport) -> None:
    md = render_markdown(report)
    assert md.startswith("## durable audit: ")
    assert "requests.post(" in md  # an excerpt of a top finding
    assert "files did not parse" in md
    assert "more findings** in the full report" in md


def test_lines_when_not_on_a_terminal(report: AuditReport, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        console = Console(file=fh, width=40)  # narrow: lines must not fold
        assert not console.is_terminal
        render_table_or_lines = render_lines(report, cwd=REPO)
        fh.write(render_table_or_lines)
    lines = out.read_text().splitlines()
    assert len(lines) == len(report.hotspots) + len(report.errors) + 1
    pattern = re.compile(r"^(\S+):(\d+):(\d+): (high|medium|low|error) ([\w-]+) (.+)$")
    for line in lines[:-1]:
        m = pattern.match(line)
        assert m, line
        assert (REPO / m.group(1)).is_file()
    assert lines[0].split(": ")[1].startswith("high ")
    assert lines[-1].startswith(f"Found {len(report.hotspots)} hotspots (high ")


def test_terminal_table_never_reads_source_text_as_markup(tmp_path: Path) -> None:
    folder = tmp_path / "[bold]pkg"
    folder.mkdir()
    (folder / "[red]billing.py").write_text(RETRY)
    (folder / "[blue]broken.py").write_text("import time\ntime.sleep(1)\ndef f(:\n")
    report = audit([folder], jobs=1)
    assert report.hotspots
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        render_table(report, Console(file=fh, width=220, force_terminal=True, color_system=None))
    text = out.read_text()
    assert "[red]billing.py" in text and "[blue]broken.py" in text
    assert "Start here" in text


def test_github_annotations() -> None:
    h = Hotspot(
        Kind.RETRY_LOOP, "for-range", "src/a,b:c.py", 7, 9, "f", "x", Risk.HIGH,
        "retries 100% of\nfailures", Fix("codemod", "retry-loop", True), start_col=4, end_col=20,
    )  # fmt: skip
    text = render_github(AuditReport(root=".", hotspots=[h, replace(h, risk=Risk.LOW)]))
    first, second = text.splitlines()
    assert first.startswith("::error file=src/a%2Cb%3Ac.py,line=7,endLine=9,col=5,endColumn=21,")
    assert "::retries 100%25 of failures; fix: codemod retry-loop (automatic)" in first
    assert second.startswith("::notice ")


def _h(path: str, start: int, end: int, risk: Risk = Risk.LOW, kind: Kind = Kind.RETRY_LOOP,
       excerpt: str = "x", group: str | None = None) -> Hotspot:  # fmt: skip
    return Hotspot(kind, "p", path, start, end, "f", excerpt, risk, "r",
                   Fix("codemod", "retry-loop", False), group=group)  # fmt: skip


def test_dedupe_merges_nested_sites_and_keeps_the_worst() -> None:
    outer = _h("a.py", 10, 30, Risk.MEDIUM)
    inner = _h("a.py", 12, 20, Risk.HIGH, excerpt="inner")
    other_kind = _h("a.py", 12, 20, kind=Kind.STATUS_POLLER)
    elsewhere = _h("b.py", 12, 20)
    found, merged = dedupe([outer, inner, other_kind, elsewhere])
    assert merged == 1
    assert [(h.path, h.start_line, h.kind) for h in found] == [
        ("a.py", 12, Kind.RETRY_LOOP),
        ("a.py", 12, Kind.STATUS_POLLER),
        ("b.py", 12, Kind.RETRY_LOOP),
    ]
    assert found[0].risk is Risk.HIGH and found[0].also_at == ("a.py:10-30",)


def test_dedupe_gives_identical_sites_distinct_fingerprints() -> None:
    one, two = _h("a.py", 10, 12, excerpt="same"), _h("a.py", 40, 42, excerpt="same")
    assert one.id == two.id
    found, merged = dedupe([one, two])
    assert merged == 0 and len({h.id for h in found}) == 2


def test_one_table_declared_in_several_places_is_one_finding(report: AuditReport) -> None:
    jobs = [h for h in report.hotspots if "db/schema.sql:2" in ",".join((h.location, *h.also_at))]
    [table] = jobs
    assert table.path.endswith("app/sa_models.py")  # the model represents the table
    assert report.merged >= 1


def test_start_here_puts_a_helper_with_many_sites_first() -> None:
    hs = [_h(f"m{i}.py", 1, 3, Risk.HIGH, group="proj.retrying.call") for i in range(6)]
    hs += [_h("solo.py", 1, 3, Risk.HIGH), _h("low.py", 1, 3, Risk.LOW)]
    items = start_here(hs, limit=3)
    assert items[0].title == "helper `proj.retrying.call`: 6 use sites in 6 files"
    assert [len(i.hotspots) for i in items] == [6, 1, 1]
    assert items[-1].risk is Risk.LOW
    [g] = group_by(hs, "helper")
    assert len(g.hotspots) == 6


def test_html_embeds_code_as_data_not_markup(tmp_path: Path) -> None:
    (tmp_path / "evil.py").write_text(RETRY.replace("url, json=body", "'</script><b>x</b>'"))
    html = render_html(audit([tmp_path], jobs=1))
    assert "</script><b>" not in html
    assert "\\u003c/script\\u003e\\u003cb\\u003ex" in html
    lowered = html.lower()
    for ref in ('src="http', 'href="http', "@import", "url(http"):
        assert ref not in lowered


def test_excerpt_of_a_long_site_shows_its_retry_lines(tmp_path: Path) -> None:
    setup = "".join(f"            body[{i}] = prepare({i})\n" for i in range(40))
    (tmp_path / "long.py").write_text(
        "import time\n\nimport requests\n\n\n"
        "def sync(url, body):\n"
        "    for attempt in range(5):\n"
        "        try:\n" + setup + "            return requests.post(url, json=body)\n"
        "        except requests.Timeout:\n"
        "            time.sleep(2 ** attempt)\n"
        "    raise RuntimeError(url)\n"
    )
    report = audit([tmp_path], jobs=1)
    assert report.hotspots and all(h.end_line - h.start_line > 40 for h in report.hotspots)
    for h in report.hotspots:
        first = (tmp_path / h.path).read_text().splitlines()[h.start_line - 1]
        assert h.excerpt.splitlines()[0] == first.rstrip()
        assert "time.sleep(2 ** attempt)" in h.excerpt
        assert len(h.excerpt.splitlines()) <= 16


def test_site_excerpt_windows_on_the_retry_vocabulary() -> None:
    from codemods.audit.excerpts import site_excerpt

    lines = ["@periodic", "def sweep(db):"] + [f"    x{i} = {i}" for i in range(50)]
    lines += ["    db.execute('UPDATE jobs SET status = 1')", "    time.sleep(5)"]
    lines += [f"    y{i} = {i}" for i in range(30)]
    text = site_excerpt(lines, 1, len(lines))
    out = text.splitlines()
    assert out[:2] == ["@periodic", "def sweep(db):"]
    assert out[2].startswith("... (") and out[-1].endswith("more lines)")
    assert "    time.sleep(5)" in out and len(out) == 16


def test_sarif_marks_suppressed_and_baseline_findings(tmp_path: Path) -> None:
    from codemods.audit.baseline import read_baseline, write_baseline

    (tmp_path / ".git").mkdir()
    (tmp_path / "old.py").write_text(RETRY)
    (tmp_path / "quiet.py").write_text(
        RETRY.replace("    for attempt", "    # durable: ignore[retry-loop]\n    for attempt")
    )
    baseline = tmp_path / "baseline.json"
    write_baseline(baseline, audit([tmp_path], jobs=1).hotspots)
    (tmp_path / "new.py").write_text(RETRY.replace("charge", "refund"))
    report = audit([tmp_path], jobs=1, baseline_ids=read_baseline(baseline))
    report.baseline_file = str(baseline)
    doc = json.loads(render_sarif(report))
    _sarif_validator().validate(doc)
    states = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: (
            r.get("baselineState"),
            [s["kind"] for s in r.get("suppressions", [])],
        )
        for r in doc["runs"][0]["results"]
    }
    assert states == {
        "new.py": ("new", []),
        "old.py": ("unchanged", []),
        "quiet.py": (None, ["inSource"]),
    }
    assert [h.path for h in report.hotspots] == ["new.py"]


def test_django_models_of_one_name_merge_only_within_their_app() -> None:
    model = "class Job(models.Model):\n    status = models.CharField()"
    migration = 'migrations.CreateModel(\n    name="Job",\n    fields=[]'
    hs = [
        _h("shop/models.py", 3, 9, kind=Kind.STATUS_TABLE, excerpt=model),
        _h("shop/migrations/0001_initial.py", 5, 20, kind=Kind.STATUS_TABLE, excerpt=migration),
        _h("billing/models.py", 3, 9, kind=Kind.STATUS_TABLE, excerpt=model),
    ]
    found, merged = dedupe(hs)
    assert merged == 1
    assert sorted((h.path, h.also_at) for h in found) == [
        ("billing/models.py", ()),
        ("shop/models.py", ("shop/migrations/0001_initial.py:5-20",)),
    ]
