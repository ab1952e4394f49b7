"""What the telemetry hooks cost: the core benchmark's sequential rates, side by side.

    python bench/bench_telemetry.py --baseline REF [--postgres URL] [--rounds 5]

Three variants of the toolkit, each in fresh Python processes running
``bench_core.py``'s ``seq`` child (one-step workflows/s, 10-step steps/s,
client CPU per step) on a fresh PostgreSQL database, alternated round by round:

- ``baseline``: the toolkit at ``REF`` (a commit before the hooks existed),
  extracted with ``git archive``;
- ``off``: the toolkit at ``HEAD`` (``--head``), telemetry not enabled (every
  hook is one attribute read);
- ``on``: the same, with ``toolkit.telemetry.enable()`` on an SDK tracer
  provider (batch span processor, in-memory exporter) and meter provider
  (in-memory reader): every run, step attempt and transaction makes a span.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable

ENABLE_AND_RUN = """
import runpy, sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from toolkit import telemetry

tracer_provider = TracerProvider()
tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
telemetry.enable(tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def extract(ref: str, into: Path) -> Path:
    """The tree of ``ref`` (toolkit/ and bench/) in ``into``."""
    into.mkdir(parents=True)
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "archive", ref, "toolkit", "bench"], cwd=ROOT, stdout=out, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def seq(tree: Path, url: str, args: argparse.Namespace, enabled: bool) -> dict[str, float]:
    core = str(tree / "bench" / "bench_core.py")
    sizes = ["--n-one", str(args.n_one), "--n-ten", str(args.n_ten), "--n-bytes", "0"]
    child = [core, "--child", "seq", "--system", "ours", "--url", url, *sizes]
    cmd = [PY, "-c", ENABLE_AND_RUN, *child] if enabled else [PY, *child]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"seq failed: {out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _cell(values: list[float], digits: int = 0) -> str:
    return (
        f"{statistics.median(values):,.{digits}f} "
        f"({min(values):,.{digits}f}-{max(values):,.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="a commit without the hooks")
    parser.add_argument("--head", default="HEAD", help="the commit to measure (default HEAD)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "DURABLE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n-one", type=int, default=1000)
    parser.add_argument("--n-ten", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import bench_core
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    postgres = args.postgres.replace("+psycopg", "")
    results: dict[str, dict[str, list[float]]] = {}
    loads = [bench_core.load_average()]
    with tempfile.TemporaryDirectory(prefix="durable-telemetry-") as tmp:
        trees = {
            "baseline": (extract(args.baseline, Path(tmp) / "baseline"), False),
            "off": (extract(args.head, Path(tmp) / "head"), False),
        }
        trees["on"] = (trees["off"][0], True)
        names = list(trees)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                tree, enabled = trees[name]
                with bench_core.fresh_postgres_db(postgres) as url:
                    sample = seq(tree, url, args, enabled)
                for key, value in sample.items():
                    results.setdefault(name, {}).setdefault(key, []).append(value)
            loads.append(bench_core.load_average())
            console.print(f"round {r + 1}/{args.rounds}: load average {loads[-1]}", style="dim")
    table = Table(
        title=f"telemetry hooks, {args.rounds} rounds, median (min-max); "
        f"baseline {args.baseline}, head {args.head}",
        caption=f"load average {loads[0]} before, {' / '.join(loads[1:])} after each round",
    )
    for column in ("metric", *names, "off/baseline", "on/baseline"):
        table.add_column(column, justify="right")
    for key, label, digits in [
        ("one_wf_s", "one-step workflows, sequential (wf/s)", 0),
        ("ten_steps_s", "10-step workflows, sequential (steps/s)", 0),
        ("cpu_us_per_step", "client CPU per step, 10-step (µs)", 1),
    ]:
        cells = [_cell(results[n][key], digits) for n in names]
        base = results["baseline"][key]
        ratios = [
            _cell([v / b for v, b in zip(results[n][key], base, strict=True)], 2)
            for n in ("off", "on")
        ]
        table.add_row(label, *cells, *ratios)
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"loads": loads, "results": results}, indent=1))


if __name__ == "__main__":
    main()
