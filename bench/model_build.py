"""How long building a model class takes, beside a static model's equivalent.

Prints, for tables of 10 and 50 fields: a cold build through the engine
(reading the definition rows and building the class), building the same
class with type() as Django does for a static model at import, and the cost of
md.model_class() on a warm cache (one version query) beside apps.get_model()
for a static model and beside the cheapest query on the same connection.

    .venv/bin/python bench/model_build.py                    # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1/mutant .venv/bin/python bench/model_build.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch  # noqa: E402

vendor = scratch.setup()

from django.apps import apps  # noqa: E402
from django.db import connection, models  # noqa: E402

from mutant import catalogue, classes  # noqa: E402
from mutant.models import ModelDefinition  # noqa: E402

SIMPLE_TYPES = [
    t
    for t in catalogue.field_types()
    if t.__name__ not in {"DecimalFieldDefinition"}
    and not t._meta.defined_field_options
    or t.__name__ == "CharFieldDefinition"
]


def per_call(fn, seconds: float = 1.0) -> float:
    """Mean seconds per call of fn, over about `seconds`."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            fn()
        calls += 20
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def make_table(size: int) -> ModelDefinition:
    md = ModelDefinition.objects.create(object_name=f"Bench{size}")
    with md.batch():
        for i in range(size):
            kind = SIMPLE_TYPES[i % len(SIMPLE_TYPES)]
            kind.objects.create(model_def=md, name=f"f{i}", null=True)
    return md


def static_build(size: int, counter=[0]) -> None:  # noqa: B006 - a call counter
    counter[0] += 1
    attrs = {
        "__module__": "bench.static",
        "Meta": type("Meta", (), {"app_label": "bench_static", "managed": False}),
    }
    for i in range(size):
        attrs[f"f{i}"] = models.CharField(max_length=50, null=True)
    name = f"Static{size}x{counter[0]}"
    model = type(name, (models.Model,), attrs)
    # Leave the registry as we found it.
    del apps.all_models["bench_static"][model._meta.model_name]


def main() -> None:
    print(f"model_build on {vendor}")
    print(f"{'fields':>6} {'engine build':>14} {'static build':>14} {'ratio':>7}")
    tables = {}
    for size in (10, 50):
        md = make_table(size)
        tables[size] = md

        def cold(md=md):
            classes.forget(md.pk)
            md.model_class()

        engine = per_call(cold)
        static = per_call(lambda size=size: static_build(size))
        print(
            f"{size:>6} {engine * 1000:>11.2f} ms {static * 1000:>11.2f} ms"
            f" {engine / static:>6.1f}x"
        )

    md = tables[10]
    md.model_class()
    warm = per_call(md.model_class)
    lookup = per_call(lambda: apps.get_model("mutant", "ModelDefinition"))

    def ping():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    query = per_call(ping)
    print()
    print(f"warm md.model_class():            {warm * 1e6:>9.1f} us")
    print(f"static apps.get_model():          {lookup * 1e6:>9.1f} us")
    print(f"SELECT 1 on the same connection:  {query * 1e6:>9.1f} us")
    print(f"warm model_class() / SELECT 1:    {warm / query:>9.2f}x")
    for md in tables.values():
        md.delete()


if __name__ == "__main__":
    main()
