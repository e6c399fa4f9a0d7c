"""A process killed (SIGKILL) in the middle of a schema operation loses nothing.

A worker process runs one operation and kills itself before its Nth SQL
statement, for many N; after each kill the definitions and the database
must agree (mutant_check finds no drift) and the operation must have
happened wholly or not at all.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from mutant.introspection import drift
from mutant.models import (
    CharFieldDefinition,
    ForeignKeyDefinition,
    ModelDefinition,
)
from tests.schema_helpers import columns, table_exists

pytestmark = pytest.mark.slow

CRASH_POINTS = [1, 2, 3, 4, 6, 8, 11, 14, 18, 23, 29, 36, 44, 53, 63, 75, 90, 110, 135, 170]


def prepare() -> tuple[ModelDefinition, ModelDefinition]:
    customer = ModelDefinition.objects.create(object_name="Customer")
    CharFieldDefinition.objects.create(model_def=customer, name="name", max_length=20)
    orders = ModelDefinition.objects.create(object_name="Orders")
    with orders.batch():
        for name in ("qty", "note", "code"):
            CharFieldDefinition.objects.create(model_def=orders, name=name, max_length=20)
        ForeignKeyDefinition.objects.create(
            model_def=orders, name="customer", to_definition=customer, null=True
        )
    alice = customer.model_class().objects.create(name="Alice")
    Orders = orders.model_class()
    for i in range(20):
        Orders.objects.create(qty=str(i), note=f"n{i}", code=f"c{i}", customer=alice)
    return customer, orders


def state() -> tuple:
    """What a person could observe: definitions, versions, columns, values."""
    tables = tuple(
        ModelDefinition.all_objects.order_by("pk").values_list("pk", "version", "trashed_at")
    )
    shape = {}
    for md in ModelDefinition.objects.all():
        shape[md.object_name] = sorted(columns(md.db_table))
    return tables, shape


def run_worker(db_env, scenario: str, crash_at: int) -> int:
    result = subprocess.run(
        [sys.executable, "tests/crash_worker.py", scenario, str(crash_at)],
        env=db_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(result.stderr)
    return result.returncode


@pytest.mark.parametrize("scenario", ["batch", "trash_table"])
def test_a_killed_schema_operation_leaves_everything_consistent(schema_db, db_env, scenario):
    customer, orders = prepare()
    start = state()
    kills = 0
    for crash_at in CRASH_POINTS:
        code = run_worker(db_env, scenario, crash_at)
        assert drift() == [], f"drift after a kill at statement {crash_at}"
        if code == 0:
            break
        kills += 1
        now = state()
        if now != start:
            break  # killed after the commit: the change is whole (checked below)
    else:
        pytest.fail("the operation never finished: raise the crash points")
    assert kills >= 5
    if state() == start:
        assert run_worker(db_env, scenario, 0) == 0
    assert drift() == []
    if scenario == "batch":
        assert set(columns("tables_orders")) == {"id", "qty", "remark", "customer_id", "buyer_id"}
        Orders = orders.model_class()
        assert sorted(Orders.objects.values_list("qty", flat=True)) == list(range(20))
        assert Orders.objects.filter(remark="n3").exists()
        code = CharFieldDefinition.all_objects.get(model_def=orders, name="code")
        code.restore()
        assert orders.model_class().objects.filter(code="c7").exists()
    else:
        assert not table_exists("tables_customer")
        ModelDefinition.all_objects.get(pk=customer.pk).restore()
        assert orders.model_class().objects.filter(customer__name="Alice").count() == 20
