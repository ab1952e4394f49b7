"""docs/migrating.md, end to end: the legacy shop moved to durable execution, table by table.

A copy of ``examples/legacy_shop`` runs for real: the flaky provider (in this
process, so the test can hold its answers back), the legacy polling worker, the
codemod, the status-column adapter in shadow mode and then taken over by
``durable worker`` processes, one of them SIGKILLed while charges are in
flight, the cron sweeper's shadow report, and the dead letters of
``failed_jobs`` imported and retried with ``durable dlq``. The shop's tables
and the workflow state share one database (SQLite file, or PostgreSQL).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "legacy_shop"
PY = sys.executable
DURABLE = [PY, "-m", "toolkit"]
APP = "shop.durable_app:app"

LEGACY_ORDERS, LEGACY_FREE = 12, 2  # placed while the legacy worker runs
NEW_ORDERS, NEW_FREE = 18, 1  # placed once the legacy worker is stopped

pytestmark = pytest.mark.slow


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def load_provider(path: Path) -> ModuleType:
    """shop/provider.py of the copy, imported under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"shop_provider_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Shop:
    """The copied shop: its commands, its processes, its tables."""

    def __init__(self, root: Path, url: str, env: dict[str, str]) -> None:
        self.root = root
        self.url = url
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.meta = sa.MetaData()

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            args, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=180
        )
        if ok:
            assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done

    def spawn(self, name: str, *args: str, ready: str | None = None) -> subprocess.Popen[bytes]:
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                args, cwd=self.root, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        if ready is not None:
            wait_for(
                lambda: proc.poll() is not None or ready in log.read_text(), 60, f"{name} to start"
            )
            assert proc.poll() is None, log.read_text()
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
        proc.send_signal(sig)
        return proc.wait(timeout=60)

    def table(self, name: str) -> sa.Table:
        if name not in self.meta.tables:
            sa.Table(name, self.meta, autoload_with=self.engine)
        return self.meta.tables[name]

    def rows(self, name: str) -> list[dict[str, Any]]:
        t = self.table(name)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]

    def job_counts(self) -> Counter[str]:
        return Counter(r["status"] for r in self.rows("jobs"))

    def provider_log(self) -> list[dict[str, Any]]:
        path = Path(self.env["PROVIDER_LOG"])
        if not path.exists():
            return []
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        return [e for e in lines if not e.get("replay")]  # answered again, not done again

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.engine.dispose()


def undo_hand_edits(migrated: str) -> str:
    """migrated/shop/gateway.py without the edits docs/migrating.md makes by hand."""
    edits = [
        (
            "from toolkit import RetryPolicy, current_step, step",
            "from toolkit import RetryPolicy, step",
        ),
        (
            "    key = current_step().idempotency_key  # the same on every retry, and after a "
            "crash\n"
            '    return str(_post("/charge", {"order": order_id, "amount": amount_cents}, key)'
            '["id"])',
            '    return str(_post("/charge", {"order": order_id, "amount": amount_cents})["id"])',
        ),
        (
            '    return str(_post("/ship", {"order": order_id}, current_step().idempotency_key)'
            '["id"])',
            '    return str(_post("/ship", {"order": order_id})["id"])',
        ),
        (
            '    _post("/mail", {"to": email, "order": order_id}, current_step().idempotency_key)',
            '    _post("/mail", {"to": email, "order": order_id})',
        ),
    ]
    for new, old in edits:
        assert migrated.count(new) == 1, new
        migrated = migrated.replace(new, old)
    return migrated


def test_migration_walkthrough(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "legacy_shop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    url = db_url
    if url.startswith("postgresql"):  # the shop's own engine needs the psycopg 3 driver
        url = make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)
    log_path = tmp_path / "provider.log"
    monkeypatch.setenv("PROVIDER_LOG", str(log_path))
    provider = load_provider(root / "shop" / "provider.py").serve(failure_rate=0.15)
    env = {
        **os.environ,
        "SHOP_DATABASE_URL": url,
        "DURABLE_DATABASE_URL": url,
        "PROVIDER_URL": f"http://127.0.0.1:{provider.server_address[1]}",
        "PROVIDER_LOG": str(log_path),
        "SHOP_RETRY_BASE_SECONDS": "0.02",  # the legacy backoff, 0.04 s to 0.32 s
        "PYTHONUNBUFFERED": "1",
    }
    shop = Shop(root, url, env)
    try:
        walk(shop, provider, postgres=url.startswith("postgresql"))
    finally:
        provider.answers.set()
        shop.close()
        provider.shutdown()
        provider.server_close()


def walk(shop: Shop, provider: Any, *, postgres: bool) -> None:
    # -- 0. The shop as it runs today: the legacy worker, some jobs dead-lettered. --
    shop.run(PY, "-m", "shop.traffic", str(LEGACY_ORDERS), "--free", str(LEGACY_FREE))
    legacy = shop.spawn("legacy-worker", PY, "-m", "shop.worker")
    done_legacy = LEGACY_ORDERS - LEGACY_FREE
    wait_for(
        lambda: shop.job_counts() == Counter(done=done_legacy, failed=LEGACY_FREE),
        120,
        "the legacy worker to finish its jobs",
    )
    shop.stop(legacy)  # idle: every job is done or failed
    free_legacy = {o["id"] for o in shop.rows("orders") if o["amount_cents"] == 0}
    dead = shop.rows("failed_jobs")
    assert sorted(json.loads(d["payload"])["order_id"] for d in dead) == sorted(free_legacy)
    assert all("ProviderError" in d["error"] for d in dead)  # 422, or a last 503

    # -- 1. The audit. --
    audit = shop.run(*DURABLE, "audit", "shop", "--format", "json")
    kinds = Counter(h["kind"] for h in json.loads(audit.stdout)["hotspots"])
    assert kinds == Counter(
        {"retry-decorator": 2, "cron-sweeper": 2, "retry-loop": 1, "status-table": 1,
         "status-poller": 1, "dead-letter": 3}
    )  # fmt: skip

    # -- 2. The codemod on the gateway: diff, report, write; then the hand edits. --
    diff = shop.run(*DURABLE, "codemod", "shop/gateway.py")
    assert "-    for attempt in range(5):" in diff.stdout
    assert "sites: 3 rewritten, 0 skipped" in diff.stderr
    report = json.loads(shop.run(*DURABLE, "codemod", "shop/gateway.py", "--json").stdout)
    notes = [n for site in report["results"][0]["sites"] for n in site["notes"]]
    assert any(n.startswith("the log calls of the handler were dropped") for n in notes)
    shop.run(*DURABLE, "codemod", "shop/gateway.py", "--write")
    shop.run(PY, "-m", "ruff", "check", "--isolated", "--select", "I", "--fix", "-q",
             "shop/gateway.py")  # fmt: skip
    written = (shop.root / "shop" / "gateway.py").read_text()
    migrated = shop.root / "migrated" / "shop"
    assert written == undo_hand_edits((migrated / "gateway.py").read_text())
    for path in migrated.glob("*.py"):
        shutil.copy(path, shop.root / "shop" / path.name)
    assert "0 would be rewritten" in shop.run(*DURABLE, "codemod", "shop").stderr

    # -- 3. New orders; the status-column adapter in shadow mode changes nothing. --
    shop.run(PY, "-m", "shop.traffic", str(NEW_ORDERS), "--free", str(NEW_FREE))
    before = {name: shop.rows(name) for name in ("orders", "jobs", "failed_jobs")}
    shadow = shop.run(PY, "-m", "shop.migrate", "shadow").stdout
    assert "nothing was changed" in shadow
    assert f"would start now: {NEW_ORDERS} row(s)" in shadow
    assert f"failed: {LEGACY_FREE} row(s)" in shadow
    assert "write-back promise: exactly once" in shadow
    assert {name: shop.rows(name) for name in before} == before
    board = shop.run(PY, "-m", "shop.dashboard").stdout
    assert f"jobs:   done {done_legacy}, failed {LEGACY_FREE}, pending {NEW_ORDERS}" in board

    # -- 4. Takeover: a poller and durable workers; one worker killed mid-charge. --
    worker = [*DURABLE, "worker", "--app", APP, "--lease-timeout", "2"]
    poller = shop.spawn("poller", PY, "-m", "shop.migrate", "takeover", "--poll-interval",
                        "0.2", ready="polling")  # fmt: skip
    first = shop.spawn("worker-1", *worker, ready="serving")
    wait_for(lambda: shop.job_counts()["done"] >= done_legacy + 3, 120, "three rows done")
    provider.answers.clear()  # charges go through; their answers are held back
    wait_for(lambda: bool(provider.in_flight["/charge"]), 60, "a charge in flight")
    shop.stop(first, signal.SIGKILL)
    held = [k for path in ("/charge", "/ship", "/mail") for k in provider.in_flight[path]]
    charged_unanswered = list(provider.in_flight["/charge"])
    assert charged_unanswered and all(k.startswith("jobs:") for k in charged_unanswered)
    provider.answers.set()  # to a dead process

    # The cron sweeper, shadowed: the rows the dead worker held look stuck, but
    # their workflows' leases move them to the next worker; nothing to requeue.
    running = sorted(r["id"] for r in shop.rows("jobs") if r["status"] == "running")
    assert running
    sweep = shop.run(PY, "-m", "shop.migrate", "sweeper-shadow").stdout
    assert "would requeue 0 row(s) stuck in running for more than 15m 0s" in sweep
    sweep = shop.run(PY, "-m", "shop.migrate", "sweeper-shadow", "--stuck-after", "0").stdout
    assert "would requeue 0 row(s)" in sweep
    assert f"the time-based guess is no longer needed for {len(running)} row(s)" in sweep
    for key in running:
        assert f"    {key}: running " in sweep and f"workflow jobs:{key} on " in sweep

    more = 2 if postgres else 1  # SQLite runs one worker process at a time
    for n in range(more):
        shop.spawn(f"worker-{n + 2}", *worker, ready="serving")
    taken = range(LEGACY_ORDERS + 1, LEGACY_ORDERS + NEW_ORDERS + 1)
    wait_for(
        lambda: shop.job_counts() == Counter(done=done_legacy + NEW_ORDERS, failed=LEGACY_FREE),
        180,
        "every taken-over row done",
    )

    # Legacy readers see the legacy vocabulary and columns.
    jobs = {r["id"]: r for r in shop.rows("jobs")}
    for key in taken:
        row = jobs[key]
        assert row["status"] == "done", row
        assert row["locked_by"] is None and row["locked_at"] is None, row
        assert row["next_retry_at"] is None and row["updated_at"] is not None, row
        assert row["attempts"] >= 1, row
    assert [jobs[k] for k in range(1, LEGACY_ORDERS + 1)] == before["jobs"][:LEGACY_ORDERS]
    board = shop.run(PY, "-m", "shop.dashboard").stdout
    assert f"jobs:   done {done_legacy + NEW_ORDERS}, failed {LEGACY_FREE}\n" in board

    # Every order shipped once, every paid one charged once; the charges whose
    # answers died with the worker were sent again with the same key.
    orders = {o["id"]: o for o in shop.rows("orders")}
    calls = Counter((e["path"], e["request"]["order"]) for e in shop.provider_log())
    for key in taken:
        order = orders[key]
        paid = order["amount_cents"] > 0
        assert order["state"] == "shipped" and order["tracking_number"], order
        assert (order["charge_id"] is not None) == paid, order
        assert calls["/charge", key] == (1 if paid else 0), (key, calls)
        assert calls["/ship", key] == 1 and calls["/mail", key] == 1, (key, calls)
    charges = {e["request"]["order"]: e for e in shop.provider_log() if e["path"] == "/charge"}
    for key in charged_unanswered:
        assert key in provider.replayed, (key, provider.replayed)
        assert any(e["key"] == key for e in charges.values())
    assert set(held) <= set(provider.replayed)

    # -- 5. Dead letters: failed_jobs imported once, listed, shown, retried. --
    imp = [*DURABLE, "dlq", "import-table", "--table", "failed_jobs", "--key", "id",
           "--payload", "payload", "--error", "error", "--failed-at", "failed_at",
           "--workflow", "fulfil_order", "--column", "job_id"]  # fmt: skip
    assert "imported 2 dead letter(s)" in shop.run(*imp).stdout
    assert "imported 0 dead letter(s) from table failed_jobs (2 already imported" in (
        shop.run(*imp).stdout
    )
    ids = [f"dlq:failed_jobs:{d['id']}" for d in dead]
    listed = shop.run(*DURABLE, "dlq", "list").stdout
    assert all(i in listed for i in ids) and "ProviderError" in listed
    order_id = json.loads(dead[0]["payload"])["order_id"]
    shown = shop.run(*DURABLE, "dlq", "show", ids[0]).stdout
    assert f'payload:  {{"order_id": {order_id}}}' in shown
    retried = shop.run(*DURABLE, "dlq", "retry", *ids).stdout
    assert retried.count("pending (a worker serving fulfil_order will run it)") == 2

    def succeeded(wid: str) -> bool:
        return "status:   succeeded" in shop.run(*DURABLE, "workflows", "show", wid).stdout

    wait_for(lambda: all(succeeded(wid) for wid in ids), 120, "the retried dead letters")
    assert {o["state"] for o in shop.rows("orders")} == {"shipped"}
    assert "no dead letters" in shop.run(*DURABLE, "dlq", "list").stdout
    assert "imported 0 dead letter(s)" in shop.run(*imp).stdout
    calls = Counter((e["path"], e["request"]["order"]) for e in shop.provider_log())
    for key in free_legacy:
        assert calls["/charge", key] == 0 and calls["/ship", key] == 1, calls

    # -- 6. The end: the poller and the workers stop cleanly. --
    for proc in shop.procs:
        if proc.poll() is None:
            assert shop.stop(proc) == 0, proc.log.read_text()  # type: ignore[attr-defined]
    assert f"stopped: {NEW_ORDERS} workflow(s) started" in poller.log.read_text()  # type: ignore[attr-defined]
    legacy_double = sorted(k for (p, k), n in calls.items() if p == "/charge" and n > 1)
    assert not set(legacy_double) & set(taken)
