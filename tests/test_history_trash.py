"""Nothing lost: schema history, trash and restore, undo."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from mutant import catalogue, history
from mutant.errors import DataLossError, SchemaError
from mutant.models import (
    CharFieldDefinition,
    FieldDefinition,
    ForeignKeyDefinition,
    IntegerFieldDefinition,
    ManyToManyFieldDefinition,
    ModelDefinition,
    SchemaEvent,
)
from tests.schema_helpers import columns, table_exists
from tests.test_field_types import FieldTypeContract

pytestmark = pytest.mark.usefixtures("schema_db")


def orders() -> ModelDefinition:
    md = ModelDefinition.objects.create(object_name="Orders", verbose_name="Orders")
    CharFieldDefinition.objects.create(model_def=md, name="Qty", max_length=20, null=True)
    return md


def last_event() -> SchemaEvent:
    return SchemaEvent.objects.order_by("pk").last()


def test_every_operation_is_recorded_in_words_with_its_author():
    user = User.objects.create(username="ann")
    with history.actor(user):
        md = orders()
    assert "Created table Orders" in SchemaEvent.objects.order_by("pk").first().description
    field = CharFieldDefinition.objects.get(model_def=md)
    field.name = "Quantity"
    field.save()
    event = last_event()
    assert event.description == "Renamed field Qty to Quantity in Orders"
    assert list(event.tables.all()) == [md]
    assert event.user is None
    with history.actor(user):
        IntegerFieldDefinition.objects.create(model_def=md, name="price", null=True)
    assert last_event().user == user
    assert "Added whole number field price to Orders" == last_event().description
    assert md.history.count() == 4


def test_a_refused_change_leaves_no_history():
    md = orders()
    md.model_class().objects.create(Qty="many")
    count = SchemaEvent.objects.count()
    with pytest.raises(DataLossError):
        CharFieldDefinition.objects.get(model_def=md).change_type(IntegerFieldDefinition)
    assert SchemaEvent.objects.count() == count


def test_a_trashed_field_keeps_its_values_and_frees_its_name():
    md = orders()
    Orders = md.model_class()
    row = Orders.objects.create(Qty="3")
    field = CharFieldDefinition.objects.get(model_def=md)
    field.trash()
    assert "Qty" not in columns(md.db_table)
    assert "Moved field Qty of Orders to the trash" in last_event().description
    assert not CharFieldDefinition.objects.filter(pk=field.pk).exists()
    CharFieldDefinition.objects.create(model_def=md, name="Qty", max_length=5, null=True)
    md.model_class().objects.filter(pk=row.pk).update(Qty="new")

    with pytest.raises(ValidationError) as error:
        field.restore()
    assert "another name" in str(error.value)
    field.restore(name="old_qty")
    assert md.model_class().objects.get(pk=row.pk).old_qty == "3"
    assert md.model_class().objects.get(pk=row.pk).Qty == "new"


def test_restoring_a_required_field_names_the_rows_added_meanwhile():
    md = orders()
    code = CharFieldDefinition.objects.create(model_def=md, name="code", max_length=5, default="x")
    md.model_class().objects.create(Qty="1", code="A")
    code.trash()
    later = md.model_class().objects.create(Qty="2")
    code = CharFieldDefinition.all_objects.get(pk=code.pk)
    with pytest.raises(DataLossError) as error:
        code.restore()
    assert f"row {later.pk}" in str(error.value)
    assert CharFieldDefinition.all_objects.get(pk=code.pk).trashed_at is not None


def test_purging_a_field_drops_its_values():
    md = orders()
    field = CharFieldDefinition.objects.get(model_def=md)
    field.trash()
    assert table_exists(f"mutant_trash_field_{field.pk}")
    field.purge()
    assert not table_exists(f"mutant_trash_field_{field.pk}")
    assert not FieldDefinition.all_objects.filter(pk=field.pk).exists()
    with pytest.raises(SchemaError):
        CharFieldDefinition.objects.create(model_def=md, name="x", max_length=3, null=True).purge()


def test_a_trashed_table_keeps_its_rows_and_links_until_restored():
    customer = ModelDefinition.objects.create(object_name="Customer")
    CharFieldDefinition.objects.create(model_def=customer, name="name", max_length=20)
    order = orders()
    ForeignKeyDefinition.objects.create(
        model_def=order, name="customer", to_definition=customer, null=True
    )
    ManyToManyFieldDefinition.objects.create(
        model_def=customer, name="favourites", to_definition=order
    )
    alice = customer.model_class().objects.create(name="Alice")
    first = order.model_class().objects.create(Qty="1", customer=alice)
    customer.model_class().objects.get().favourites.add(first)

    with pytest.raises(SchemaError, match="customer"):
        customer.trash()
    customer.trash(remove_links=True)
    assert not table_exists("tables_customer")
    assert "customer_id" not in columns(order.db_table)
    assert not ModelDefinition.objects.filter(object_name="Customer").exists()
    other = ModelDefinition.objects.create(object_name="Customer")  # the name is free
    other.delete()

    customer = ModelDefinition.all_objects.get(pk=customer.pk)
    customer.restore()
    assert table_exists("tables_customer")
    Customer, Order = customer.model_class(), order.model_class()
    assert Customer.objects.get().name == "Alice"
    assert Order.objects.get().customer.name == "Alice"
    assert [o.Qty for o in Customer.objects.get().favourites.all()] == ["1"]


def test_purging_a_table_others_still_link_to_from_the_trash_is_refused():
    customer = ModelDefinition.objects.create(object_name="Customer")
    order = orders()
    link = ForeignKeyDefinition.objects.create(
        model_def=order, name="customer", to_definition=customer, null=True
    )
    customer.trash(remove_links=True)
    customer = ModelDefinition.all_objects.get(pk=customer.pk)
    with pytest.raises(SchemaError, match="customer"):
        customer.purge()
    ForeignKeyDefinition.all_objects.get(pk=link.pk).purge()
    customer.purge()
    assert not table_exists(f"mutant_trash_table_{customer.pk}")
    assert not ModelDefinition.all_objects.filter(pk=customer.pk).exists()


SAMPLES = {cls.definition_class: cls for cls in FieldTypeContract.__subclasses__()}


@pytest.mark.parametrize(
    "kind", [t for t in catalogue.field_types() if not t.is_relation], ids=lambda t: t.__name__
)
def test_trash_and_restore_keep_every_value_of_every_field_type(kind):
    contract = SAMPLES[kind]
    md = ModelDefinition.objects.create(object_name="Sample")
    field = kind.objects.create(model_def=md, name="value", null=True, **contract.options)
    Model = md.model_class()
    rows = [Model.objects.create(value=v) for v in contract.values]
    empty = Model.objects.create()
    field.trash()
    kind.all_objects.get(pk=field.pk).restore()
    Model = md.model_class()
    for row, value in zip(rows, contract.values, strict=True):
        assert Model.objects.get(pk=row.pk).value == value
    assert Model.objects.get(pk=empty.pk).value is None


def test_undo_renames_reorders_options_and_additions():
    md = orders()
    qty = CharFieldDefinition.objects.get(model_def=md)
    IntegerFieldDefinition.objects.create(model_def=md, name="price", null=True)
    md.model_class().objects.create(Qty="4", price=10)

    qty.name = "Quantity"
    qty.save()
    history.undo(last_event())
    assert "Qty" in columns(md.db_table)
    assert md.model_class().objects.get().Qty == "4"
    assert last_event().description.startswith("Undid: Renamed field Qty")
    assert not last_event().undoable

    with md.batch():
        FieldDefinition.objects.filter(pk=qty.pk).update(position=5)
    assert "Reordered" in last_event().description
    history.undo(last_event())
    assert [f.name for f in md.model_class()._meta.concrete_fields] == ["id", "Qty", "price"]

    qty = CharFieldDefinition.objects.get(pk=qty.pk)
    qty.max_length = 50
    qty.save()
    history.undo(last_event())
    assert CharFieldDefinition.objects.get(pk=qty.pk).max_length == 20

    note = CharFieldDefinition.objects.create(model_def=md, name="note", max_length=9, null=True)
    history.undo(last_event())
    assert "note" not in columns(md.db_table)
    assert not FieldDefinition.all_objects.filter(pk=note.pk).exists()


def test_undo_of_a_trashed_field_restores_it():
    md = orders()
    md.model_class().objects.create(Qty="7")
    CharFieldDefinition.objects.get(model_def=md).trash()
    history.undo(last_event())
    assert md.model_class().objects.get().Qty == "7"


def test_undo_is_refused_when_it_would_lose_data_or_later_changes_depend_on_it():
    md = orders()
    note = CharFieldDefinition.objects.create(model_def=md, name="note", max_length=9, null=True)
    added = last_event()
    md.model_class().objects.create(note="kept")
    with pytest.raises(SchemaError, match="holds values"):
        history.undo(added)
    assert "note" in columns(md.db_table)

    note.name = "remark"
    note.save()
    with pytest.raises(SchemaError, match="Later changes"):
        history.undo(added)

    qty = CharFieldDefinition.objects.get(model_def=md, name="Qty")
    qty.delete()
    assert not last_event().undoable
    with pytest.raises(SchemaError, match="cannot be undone"):
        history.undo(last_event())


def test_history_entries_name_the_values_they_describe():
    md = orders()
    md.verbose_name = "Commandes"
    md.save()
    assert "Changed the name or description of Commandes" in last_event().description
    md.object_name = "Purchases"
    md.save()
    assert "Renamed table Orders to Purchases" in last_event().description
    history.undo(last_event())
    assert table_exists("tables_orders")
    assert ModelDefinition.objects.get(pk=md.pk).object_name == "Orders"


def test_decimal_and_date_values_survive_a_trip_through_the_trash():
    # Checked separately: these are the types whose text forms differ by backend.
    md = ModelDefinition.objects.create(object_name="Money")
    from mutant.models import DateTimeFieldDefinition, DecimalFieldDefinition, UUIDFieldDefinition

    amount = DecimalFieldDefinition.objects.create(model_def=md, name="amount", null=True)
    when = DateTimeFieldDefinition.objects.create(model_def=md, name="when", null=True)
    key = UUIDFieldDefinition.objects.create(model_def=md, name="key", null=True)
    moment = datetime.datetime(2021, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    md.model_class().objects.create(
        amount=decimal.Decimal("12.34"), when=moment, key=uuid.UUID(int=7)
    )
    for field in (amount, when, key):
        field.trash()
        type(field).all_objects.get(pk=field.pk).restore()
    row = md.model_class().objects.get()
    assert (row.amount, row.when, row.key) == (decimal.Decimal("12.34"), moment, uuid.UUID(int=7))


def test_the_purge_command_keeps_what_is_younger_than_the_retention():
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    md = orders()
    old = CharFieldDefinition.objects.get(model_def=md)
    young = CharFieldDefinition.objects.create(model_def=md, name="young", max_length=3, null=True)
    old.trash()
    young.trash()
    FieldDefinition.all_objects.filter(pk=old.pk).update(
        trashed_at=timezone.now() - datetime.timedelta(days=40)
    )
    out = StringIO()
    call_command("mutant_purge_trash", "--days", "30", stdout=out)
    assert "purged" in out.getvalue() and "Qty" in out.getvalue()
    assert not FieldDefinition.all_objects.filter(pk=old.pk).exists()
    assert FieldDefinition.all_objects.filter(pk=young.pk).exists()
    assert table_exists(f"mutant_trash_field_{young.pk}")


def test_undoing_a_type_change_brings_back_the_exact_old_values():
    md = orders()
    Orders = md.model_class()
    zero = Orders.objects.create(Qty="007")
    plain = Orders.objects.create(Qty=" 12 ")
    qty = CharFieldDefinition.objects.get(model_def=md)
    qty.change_type(IntegerFieldDefinition)
    event = last_event()
    assert event.undoable and event.backups
    backup = event.backups[str(qty.pk)]
    assert table_exists(backup)
    added_later = md.model_class().objects.create(Qty=5)

    history.undo(event)
    field = CharFieldDefinition.objects.get(pk=qty.pk)
    assert (field.name, field.max_length) == ("Qty", 20)
    values = dict(md.model_class().objects.values_list("pk", "Qty"))
    assert values == {zero.pk: "007", plain.pk: " 12 ", added_later.pk: "5"}
    assert not table_exists(backup)
    assert columns(md.db_table)["Qty"][0].lower().replace(" ", "") in {
        "varchar(20)",
        "charactervarying(20)",
    }


def test_the_purge_command_drops_old_type_change_backups():
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    md = orders()
    md.model_class().objects.create(Qty="1")
    CharFieldDefinition.objects.get(model_def=md).change_type(IntegerFieldDefinition)
    event = last_event()
    [backup] = event.backups.values()
    SchemaEvent.objects.filter(pk=event.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=9)
    )
    call_command("mutant_purge_trash", "--days", "7", stdout=StringIO())
    assert not table_exists(backup)
    event.refresh_from_db()
    assert not event.undoable
    with pytest.raises(SchemaError, match="backup was purged"):
        history.undo(event)
