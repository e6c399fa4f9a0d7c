"""Runs one schema operation and SIGKILLs itself before its Nth SQL statement.

Usage: crash_worker.py SCENARIO N   (N = 0: never kill). The test's database
comes from DATABASE_URL. Exits 0 when the operation finished.
"""

import os
import signal
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from mutant.models import (  # noqa: E402
    CharFieldDefinition,
    ForeignKeyDefinition,
    IntegerFieldDefinition,
    ModelDefinition,
)

scenario, crash_at = sys.argv[1], int(sys.argv[2])
count = 0


def killer(execute, sql, params, many, context):
    global count
    count += 1
    if count == crash_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return execute(sql, params, many, context)


orders = ModelDefinition.objects.get(object_name="Orders")
customer = ModelDefinition.objects.get(object_name="Customer")
with connection.execute_wrapper(killer):
    if scenario == "batch":
        with orders.batch(also=[customer.pk]):
            qty = CharFieldDefinition.objects.get(model_def=orders, name="qty")
            qty.change_type(IntegerFieldDefinition)
            note = CharFieldDefinition.objects.get(model_def=orders, name="note")
            note.name = "remark"
            note.save()
            ForeignKeyDefinition.objects.create(
                model_def=orders, name="buyer", to_definition=customer, null=True
            )
            CharFieldDefinition.objects.get(model_def=orders, name="code").trash()
    elif scenario == "trash_table":
        customer.trash(remove_links=True)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
print("finished", count, flush=True)
