"""What the lock layer costs: reads and writes through subscribe() beside a static model.

Prints, in one run on one scratch database, operations per second on a user
table through `with md.subscribe() as Model:` beside the same operations on
an equivalent static Django model, and their ratio; for reference also the
user table's class used without any check (what a stale-prone cache costs)
and through md.model_class() (a version query, no lock); then how long a schema change
(adding a field) waits for its lock while N other processes read the table
in a loop, and the longest a reader was held up by it.

    .venv/bin/python bench/lock_overhead.py                    # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1/mutant .venv/bin/python bench/lock_overhead.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROUNDS = 7
SECONDS = 0.5  # per operation, per round
ROWS = 2000
PAGE = 25
READERS = (0, 1, 4, 8)
CHANGES = 5  # schema changes measured per reader count


def reader(pk: int, stop_file: str) -> None:
    """A reader process: page reads through subscribe() until `stop_file` exists."""
    import django

    django.setup()
    from mutant.models import ModelDefinition

    md = ModelDefinition.objects.get(pk=pk)
    reads, slowest = 0, 0.0
    print("ready", flush=True)
    while not os.path.exists(stop_file):
        start = time.perf_counter()
        with md.subscribe() as Model:
            slowest = max(slowest, time.perf_counter() - start)
            list(Model.objects.order_by("pk")[:PAGE])
        reads += 1
    print(json.dumps({"reads": reads, "slowest": slowest}), flush=True)


def main() -> None:
    from bench import scratch

    vendor = scratch.setup()
    try:
        run(vendor)
    finally:
        drop_scratch_database()


def run(vendor: str) -> None:
    from django.db import connection, models
    from django.db.models import F

    from mutant.models import (
        CharFieldDefinition,
        IntegerFieldDefinition,
        ModelDefinition,
        TextFieldDefinition,
    )

    class StaticRow(models.Model):
        name = models.CharField(max_length=100)
        amount = models.IntegerField()
        note = models.TextField(blank=True)

        class Meta:
            app_label = "lockbench"

    with connection.schema_editor() as editor:
        editor.create_model(StaticRow)
    md = ModelDefinition.objects.create(object_name="Row")
    with md.batch():
        CharFieldDefinition.objects.create(model_def=md, name="name", max_length=100)
        IntegerFieldDefinition.objects.create(model_def=md, name="amount")
        TextFieldDefinition.objects.create(model_def=md, name="note", blank=True)
    Dynamic = md.model_class()
    for model in (StaticRow, Dynamic):
        model.objects.bulk_create(
            model(name=f"row {i}", amount=i, note="x" * 40) for i in range(ROWS)
        )
    static_pks = list(StaticRow.objects.values_list("pk", flat=True))
    dynamic_pks = list(Dynamic.objects.values_list("pk", flat=True))

    def through_subscribe(operation):
        def guarded(pks):
            with md.subscribe() as Model:
                operation(Model, pks)

        return guarded

    def through_model_class(operation):
        return lambda pks: operation(md.model_class(), pks)

    def get_one(Model, pks):
        Model.objects.get(pk=random.choice(pks))

    def read_page(Model, pks):
        start = random.randrange(0, ROWS - PAGE)
        list(Model.objects.filter(pk__gte=pks[start]).order_by("pk")[:PAGE])

    def insert(Model, pks):
        Model.objects.create(name="new row", amount=1, note="y")

    def update(Model, pks):
        Model.objects.filter(pk=random.choice(pks)).update(amount=F("amount") + 1)

    def page_view(Model, pks):
        # What a list page does: a count, a page, one row; one subscription for all.
        # Over the first rows only: the inserts above grow the tables unevenly.
        Model.objects.filter(pk__lte=pks[-1]).count()
        read_page(Model, pks)
        get_one(Model, pks)

    operations = [
        ("read one row", get_one),
        (f"read a page of {PAGE}", read_page),
        ("insert a row", insert),
        ("update a row", update),
        ("count+page+row", page_view),
    ]
    variants = {
        "static": lambda op: lambda: op(StaticRow, static_pks),
        "held": lambda op: lambda: op(Dynamic, dynamic_pks),
        "subscribe": lambda op: lambda: through_subscribe(op)(dynamic_pks),
        "model_class": lambda op: lambda: through_model_class(op)(dynamic_pks),
    }
    rates: dict[tuple[str, str], list[float]] = {}
    for _ in range(ROUNDS):
        # Interleaved, so that a noisy neighbour hurts every variant alike.
        for label, operation in operations:
            for variant, wrap in variants.items():
                rates.setdefault((label, variant), []).append(per_second(wrap(operation)))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nLock overhead on {vendor}: operations per second, median of {ROUNDS} interleaved "
        f"rounds of {SECONDS} s each, {ROWS} rows; ratios are to the static model "
        f"(load average {load}, {os.cpu_count()} CPUs)"
    )
    print(
        f"{'operation':<20}{'static':>9}{'dynamic, no check':>19}"
        f"{'subscribe()':>17}{'model_class()':>19}"
    )
    for label, _operation in operations:
        static = statistics.median(rates[(label, "static")])
        cells = []
        for variant in ("held", "subscribe", "model_class"):
            rate = statistics.median(rates[(label, variant)])
            cells.append(f"{rate:>10,.0f} {rate / static:>5.2f}")
        print(f"{label:<20}{static:>9,.0f}{cells[0]:>19}{cells[1]:>17}{cells[2]:>19}")
    print(
        "dynamic, no check: the class held by the caller, never checked (unsafe);"
        " model_class(): a version query, no lock"
    )

    def empty_subscription():
        with md.subscribe():
            pass

    costs = {"subscribe(), empty block": [], "md.model_class()": [], "static: read one row": []}
    for _ in range(ROUNDS):
        for label, fn in zip(
            costs,
            [empty_subscription, md.model_class, lambda: get_one(StaticRow, static_pks)],
            strict=True,
        ):
            costs[label].append(1 / per_second(fn))
    print(
        "per call: "
        + "; ".join(f"{label} {statistics.median(v) * 1e6:.0f} us" for label, v in costs.items())
    )

    print(
        "\nA schema change (add a field) while N processes read the table through "
        f"subscribe() in a loop; {CHANGES} changes each"
    )
    print(
        f"{'N':>3}{'lock wait (median / max)':>28}{'whole change (median)':>24}"
        f"{'slowest reader wait':>22}{'reads/s':>10}"
    )
    serial = 0
    for count in READERS:
        folder = tempfile.mkdtemp(prefix="mutant-lockbench-")
        stop = os.path.join(folder, "stop")
        processes = [
            subprocess.Popen(
                [sys.executable, __file__, "--reader", str(md.pk), stop],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        waits, totals = [], []
        started = time.perf_counter()
        for _ in range(CHANGES):
            serial += 1
            begin = time.perf_counter()
            with md.modify():
                granted = time.perf_counter()
                CharFieldDefinition.objects.create(
                    model_def=md, name=f"extra{serial}", max_length=20, null=True
                )
            waits.append(granted - begin)
            totals.append(time.perf_counter() - begin)
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        Path(stop).touch()
        reports = [json.loads(process.communicate()[0].splitlines()[-1]) for process in processes]
        shutil.rmtree(folder)
        slowest = max((r["slowest"] for r in reports), default=0.0)
        reads = sum(r["reads"] for r in reports) / elapsed
        print(
            f"{count:>3}{ms(statistics.median(waits)):>17} / {ms(max(waits)):>8}"
            f"{ms(statistics.median(totals)):>24}{ms(slowest):>22}{reads:>10,.0f}"
        )


def per_second(fn) -> float:
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(10):
            fn()
        calls += 10
        elapsed = time.perf_counter() - start
        if elapsed >= SECONDS:
            return calls / elapsed


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def drop_scratch_database() -> None:
    from django.db import connection, connections

    from mutant import locks

    locks.reset()
    connections.close_all()
    name = connection.settings_dict["NAME"]
    if connection.vendor == "postgresql":
        import psycopg

        parts = urlsplit(os.environ["DATABASE_URL"])
        with psycopg.connect(
            urlunsplit(parts._replace(path="/postgres")), autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        shutil.rmtree(Path(str(name)).parent, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--reader"]:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        reader(int(sys.argv[2]), sys.argv[3])
    else:
        main()
