"""The baseline: findings a team has accepted for now, so CI fails only on new ones.

``durable audit PATH --baseline FILE --write-baseline`` records every current
finding's fingerprint (:attr:`Hotspot.id`: file, kind, function and code, no
line numbers); ``durable audit PATH --baseline FILE`` then reports only the
findings whose fingerprint is not in FILE. The file is JSON, sorted, one
entry per finding, so it diffs well in review.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codemods.audit.model import Hotspot

FORMAT = 1


class BaselineError(ValueError):
    """A baseline file that cannot be read."""


def baseline_document(hotspots: list[Hotspot]) -> dict[str, Any]:
    entries = [
        {
            "id": h.id,
            "kind": h.kind.value,
            "path": h.path,
            "function": h.function,
            "line": h.start_line,
        }
        for h in hotspots
    ]
    entries.sort(key=lambda e: (e["path"], e["line"], e["kind"], e["id"]))
    return {"durable_audit_baseline": FORMAT, "hotspots": entries}


def write_baseline(path: Path, hotspots: list[Hotspot]) -> None:
    """Write the baseline of ``hotspots`` to ``path`` (replacing it)."""
    text = json.dumps(baseline_document(hotspots), indent=2) + "\n"
    path.write_text(text, encoding="utf-8")


def read_baseline(path: Path) -> set[str]:
    """The fingerprints recorded in a baseline file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(
            f"baseline {path} does not exist (create it with --write-baseline)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {path}: cannot read: {exc}") from None
    if not isinstance(doc, dict) or doc.get("durable_audit_baseline") != FORMAT:
        raise BaselineError(f"baseline {path}: not a durable audit baseline (format {FORMAT})")
    try:
        return {str(e["id"]) for e in doc["hotspots"]}
    except (KeyError, TypeError):
        raise BaselineError(f"baseline {path}: an entry has no id") from None


def split_known(
    hotspots: list[Hotspot], known_ids: set[str]
) -> tuple[list[Hotspot], list[Hotspot], int]:
    """(new findings, findings in the baseline, baseline entries no longer found)."""
    new = [h for h in hotspots if h.id not in known_ids]
    known = [h for h in hotspots if h.id in known_ids]
    gone = len(known_ids - {h.id for h in known})
    return new, known, gone
