"""A child process for the lock tests, on the test database (DATABASE_URL).

`python tests/lock_worker.py` prints {"ready": true}, then runs each JSON line
of Python code read from stdin in one namespace and answers with one JSON
line: {"result": the variable `result`} or {"error": a traceback}.

`python tests/lock_worker.py writer PK NAME STOP_FILE [THREADS]` inserts, reads
back and updates rows of table PK through subscribe(), from THREADS threads
(1), until STOP_FILE exists, then prints what it wrote.
`python tests/lock_worker.py changer PK CHANGES STOP_FILE` makes CHANGES schema
changes to table PK, then creates STOP_FILE.
"""

import json
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from mutant import locks  # noqa: E402
from mutant.models import CharFieldDefinition, ModelDefinition  # noqa: E402

# How long the lock session keeps a table it was asked for unkept; shorter in
# the stress test, so that subscriptions between changes come from memory.
locks.LockSession.COOLDOWN = float(os.environ.get("LOCK_SESSION_COOLDOWN", "1.0"))


def serve() -> None:
    namespace: dict = {}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        namespace.pop("result", None)
        try:
            exec(json.loads(line), namespace)  # noqa: S102 - test driver
            answer = {"result": namespace.get("result")}
        except Exception:
            answer = {"error": traceback.format_exc()}
        print(json.dumps(answer, default=repr), flush=True)


def writer(pk: int, name: str, stop_file: str, threads: int = 1) -> None:
    """Write as below from `threads` threads, which share the process's lock session."""
    reports: list[dict] = []

    def run(n: int) -> None:
        try:
            reports.append(write(pk, f"{name}.{n}", stop_file))
        finally:
            connection.close()

    started = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    report = {
        "iterations": min(r["iterations"] for r in reports),
        "errors": [error for r in reports for error in r["errors"]],
        "written": {token: values for r in reports for token, values in r["written"].items()},
    }
    print(json.dumps(report), flush=True)


def write(pk: int, name: str, stop_file: str) -> dict:
    """Insert, read back and update rows through subscribe() while the schema changes.

    Fields are recorded by definition pk, so a value written under one name
    is still checked after a rename. The token field is never changed.
    """
    md = ModelDefinition.objects.get(pk=pk)
    written: dict[str, dict[int, str]] = {}  # token -> {field pk: last value written}
    field_pks: dict[int, dict[str, int]] = {}  # version -> {name: field pk}
    errors: list[str] = []
    iterations = 0
    while not os.path.exists(stop_file) and len(errors) < 5:
        iterations += 1
        try:
            with md.subscribe() as Model:
                version = Model._definition_version
                if version not in field_pks:
                    field_pks[version] = {f.name: f.pk for f in md.field_definitions()}
                fields = {k: v for k, v in field_pks[version].items() if k != "token"}
                token = f"{name}-{iterations}"
                values = {field: f"{token}/{fields[field]}" for field in fields}
                Model.objects.create(token=token, **values)
                written[token] = {fields[field]: value for field, value in values.items()}
                row = Model.objects.get(token=token)
                for field, value in values.items():
                    if getattr(row, field) != value:
                        errors.append(f"{token}.{field}: read {getattr(row, field)!r}")
                if fields and len(written) > 1:
                    other = random.choice(list(written))
                    field = random.choice(list(fields))
                    value = f"{other}/{fields[field]}/updated-{iterations}"
                    Model.objects.filter(token=other).update(**{field: value})
                    written[other][fields[field]] = value
        except Exception:
            errors.append(traceback.format_exc())
    return {"iterations": iterations, "errors": errors, "written": written}


def changer(pk: int, changes: int, stop_file: str) -> None:
    """Add, rename, re-default and remove fields and rename the table, `changes` times."""
    md = ModelDefinition.objects.get(pk=pk)
    errors: list[str] = []
    done = 0
    serial = 0
    try:
        while done < changes:
            serial += 1
            mine = list(
                CharFieldDefinition.objects.filter(model_def=md)
                .exclude(name="token")
                .order_by("pk")
            )
            step = serial % 5
            if step == 0 or len(mine) < 2:
                CharFieldDefinition.objects.create(
                    model_def=md, name=f"added{serial}", max_length=100, null=True
                )
            elif step == 1:
                field = mine[-1]
                field.name = f"renamed{serial}"
                field.save()
            elif step == 2:
                field = mine[0]
                field.default = f"default{serial}"
                field.save()
            elif step == 3:
                mine[0].delete()
            else:
                md.object_name = f"Stress{serial}"
                md.save()
            done += 1
            time.sleep(0.05)
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        Path(stop_file).touch()
    print(json.dumps({"changes": done, "errors": errors}), flush=True)


if __name__ == "__main__":
    role, *args = sys.argv[1:] or ["serve"]
    if role == "serve":
        serve()
    elif role == "writer":
        writer(int(args[0]), args[1], args[2], *map(int, args[3:]))
    elif role == "changer":
        changer(int(args[0]), int(args[1]), args[2])
    else:
        raise SystemExit(f"unknown role {role}")
