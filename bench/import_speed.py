"""Import speed: our fast path beside django-import-export's and the raw floor.

Generates one CSV file of 100,000 rows and 8 typed columns (text, whole
number, decimal, date, yes/no, email, float, choice), then imports it into a
user table through:

- ours: `TableResource.import_data` (read the file, convert and check every
  cell by its field definition, then one transaction: COPY or executemany);
- import-export's default row-by-row mode and its bulk mode (a stock
  `modelresource_factory` resource; bulk_create in batches of 1,000, with
  `skip_diff` and `force_init_instance` as its documentation advises for
  new rows), timed on a prefix of the file, since the whole would take
  minutes, as the output says;
- raw: PostgreSQL `COPY ... FROM STDIN (FORMAT csv)` of the same file, or
  SQLite `executemany` of the rows `csv.reader` reads from it: no conversion,
  no checks.

    .venv/bin/python bench/import_speed.py                    # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1/mutant .venv/bin/python bench/import_speed.py
"""

from __future__ import annotations

import csv
import io
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch  # noqa: E402

vendor = scratch.setup()

from django.db import connection, transaction  # noqa: E402
from import_export.resources import modelresource_factory  # noqa: E402

from builder import formats  # noqa: E402
from builder.resources import resource_for  # noqa: E402
from mutant.models import (  # noqa: E402
    BooleanFieldDefinition,
    CharFieldDefinition,
    DateFieldDefinition,
    DecimalFieldDefinition,
    EmailFieldDefinition,
    FloatFieldDefinition,
    IntegerFieldDefinition,
    ModelDefinition,
)

ROWS = 100_000
DEFAULT_PREFIX = 5_000  # import-export's row-by-row mode manages < 1,000 rows/s
BULK_PREFIX = 20_000
CATEGORIES = ["north", "south", "east", "west", "centre"]


def make_table() -> ModelDefinition:
    md = ModelDefinition.objects.create(object_name="Shipment")
    with md.batch():
        CharFieldDefinition.objects.create(model_def=md, name="name", max_length=60)
        IntegerFieldDefinition.objects.create(model_def=md, name="quantity", null=True)
        DecimalFieldDefinition.objects.create(
            model_def=md, name="price", max_digits=10, decimal_places=2, null=True
        )
        DateFieldDefinition.objects.create(model_def=md, name="day", null=True)
        BooleanFieldDefinition.objects.create(model_def=md, name="paid", default="false")
        EmailFieldDefinition.objects.create(model_def=md, name="contact", null=True)
        FloatFieldDefinition.objects.create(model_def=md, name="weight", null=True)
        CharFieldDefinition.objects.create(
            model_def=md,
            name="region",
            max_length=10,
            choices=[[c, c.title()] for c in CATEGORIES],
        )
    md.refresh_from_db()
    return md


def make_file(rows: int) -> bytes:
    randomly = random.Random(42)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "quantity", "price", "day", "paid", "contact", "weight", "region"])
    for n in range(rows):
        writer.writerow(
            [
                f"shipment {n} {randomly.choice(['alpha', 'beta', 'gamma'])}",
                randomly.randint(-1000, 100_000),
                f"{randomly.randint(0, 9_999_999) / 100:.2f}",
                f"20{randomly.randint(10, 29)}-{randomly.randint(1, 12):02d}-"
                f"{randomly.randint(1, 28):02d}",
                randomly.choice(["true", "false"]),
                f"person{randomly.randint(1, 5000)}@example.org",
                repr(randomly.random() * 100),
                randomly.choice(CATEGORIES),
            ]
        )
    return out.getvalue().encode()


def empty(model) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")


def timed(label: str, rows: int, run, *, times: int = 1, between=None) -> float:
    """Rows per second of `run`, the best of `times` runs (`between` resets)."""
    seconds = float("inf")
    for attempt in range(times):
        if attempt and between is not None:
            between()
        start = time.perf_counter()
        run()
        seconds = min(seconds, time.perf_counter() - start)
    rate = rows / seconds
    print(f"{label:<46} {rows:>8,} rows {seconds:>8.2f} s {rate:>10,.0f} rows/s")
    return rate


def prefix(data: bytes, rows: int) -> bytes:
    return b"\n".join(data.split(b"\n")[: rows + 1]) + b"\n"


def main() -> None:
    md = make_table()
    model = md.model_class()
    data = make_file(ROWS)
    table = connection.ops.quote_name(model._meta.db_table)
    names = ["name", "quantity", "price", "day", "paid", "contact", "weight", "region"]
    columns = ", ".join(connection.ops.quote_name(n) for n in names)
    print(f"import_speed on {vendor}: {ROWS:,} rows x {len(names)} typed columns")
    print(f"{'path':<46} {'rows':>13} {'time':>10} {'speed':>17}")
    print("(ours, checks and raw: the best of 3 runs; import-export: one run)")

    def ours() -> None:
        dataset = formats.CSV().create_dataset(data)
        result = resource_for(model)().import_data(dataset)
        assert result.report.written, result.report.describe()

    ours_rate = timed(
        "ours: read + convert + check + write", ROWS, ours, times=3, between=lambda: empty(model)
    )
    assert model.objects.count() == ROWS
    empty(model)

    dataset = formats.CSV().create_dataset(data)
    check_rate = timed(
        "ours: convert + check only (dry run)",
        ROWS,
        lambda: resource_for(model)().import_data(dataset, dry_run=True),
        times=3,
    )

    if vendor == "postgresql":

        def raw() -> None:
            with transaction.atomic(), connection.cursor() as cursor:
                sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, HEADER true)"
                with cursor.cursor.copy(sql) as copy:
                    copy.write(data)

        raw_label = "raw COPY of the file (no checks)"
    else:

        def raw() -> None:
            rows = list(csv.reader(io.StringIO(data.decode())))[1:]
            placeholders = ", ".join(["%s"] * len(names))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, rows)

        raw_label = "raw csv.reader + executemany (no checks)"
    raw_rate = timed(raw_label, ROWS, raw, times=3, between=lambda: empty(model))
    assert model.objects.count() == ROWS
    empty(model)

    stock = modelresource_factory(model)
    default_data = formats.CSV().create_dataset(prefix(data, DEFAULT_PREFIX))
    default_rate = timed(
        f"import-export default (first {DEFAULT_PREFIX:,} rows)",
        DEFAULT_PREFIX,
        lambda: stock().import_data(default_data, raise_errors=True),
    )
    empty(model)

    # Bulk mode as import-export's documentation tunes it for new rows:
    # bulk_create in batches, no diff, no lookup of an existing instance.
    bulk = modelresource_factory(
        model,
        meta_options={
            "use_bulk": True,
            "batch_size": 1000,
            "skip_diff": True,
            "force_init_instance": True,
        },
    )
    bulk_data = formats.CSV().create_dataset(prefix(data, BULK_PREFIX))
    bulk_rate = timed(
        f"import-export bulk (first {BULK_PREFIX:,} rows)",
        BULK_PREFIX,
        lambda: bulk().import_data(bulk_data, raise_errors=True),
    )
    empty(model)

    print()
    print(f"ours / raw:                   {ours_rate / raw_rate:>7.2f}  (goal: at least 0.25)")
    print(f"ours (checks only) / raw:     {check_rate / raw_rate:>7.2f}")
    print(f"ours / import-export default: {ours_rate / default_rate:>7.1f}x")
    print(f"ours / import-export bulk:    {ours_rate / bulk_rate:>7.1f}x")
    md.delete()


if __name__ == "__main__":
    main()
