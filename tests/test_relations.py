"""Links between tables: ForeignKey, OneToOne and ManyToMany."""

from __future__ import annotations

import gc
import os

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError

from mutant.errors import SchemaError
from mutant.introspection import drift
from mutant.models import (
    CharFieldDefinition,
    ForeignKeyDefinition,
    ManyToManyFieldDefinition,
    ModelDefinition,
    OneToOneFieldDefinition,
)
from tests.schema_helpers import columns, constraints, table_exists

pytestmark = pytest.mark.usefixtures("schema_db")


def table(name: str, *fields: str) -> ModelDefinition:
    md = ModelDefinition.objects.create(object_name=name)
    for field in fields:
        CharFieldDefinition.objects.create(model_def=md, name=field, max_length=50, blank=True)
    return md


def fk_targets(table_name: str) -> set[tuple[str, str]]:
    """(column, referenced table) for every foreign key constraint in the database."""
    return {
        (c["columns"][0], c["foreign_key"][0])
        for c in constraints(table_name).values()
        if c["foreign_key"]
    }


def test_a_foreign_key_links_rows_both_ways_and_is_a_real_constraint():
    customer = table("Customer", "name")
    order = table("Order", "ref")
    ForeignKeyDefinition.objects.create(
        model_def=order, name="customer", to_definition=customer, on_delete="CASCADE", null=True
    )
    assert ("customer_id", "tables_customer") in fk_targets("tables_order")
    Customer, Order = customer.model_class(), order.model_class()
    alice = Customer.objects.create(name="Alice")
    Order.objects.create(ref="A1", customer=alice)
    Order.objects.create(ref="A2", customer=alice)
    assert sorted(Order.objects.filter(customer__name="Alice").values_list("ref", flat=True)) == [
        "A1",
        "A2",
    ]
    fresh = customer.model_class().objects.get()
    assert fresh.order_via_customer.count() == 2
    assert list(
        customer.model_class()
        .objects.filter(order_via_customer__ref="A2")
        .values_list("name", flat=True)
    ) == ["Alice"]


@pytest.mark.parametrize(
    ("on_delete", "outcome"),
    [
        ("CASCADE", "deleted"),
        ("PROTECT", ProtectedError),
        ("RESTRICT", RestrictedError),
        ("SET_NULL", "emptied"),
        ("SET_DEFAULT", "default"),
    ],
)
def test_each_on_delete_behaviour(on_delete, outcome):
    customer = table("Customer", "name")
    order = table("Order", "ref")
    Customer = customer.model_class()
    fallback = Customer.objects.create(name="Fallback")
    ForeignKeyDefinition.objects.create(
        model_def=order,
        name="customer",
        to_definition=customer,
        on_delete=on_delete,
        null=on_delete in {"SET_NULL", "SET_DEFAULT"},
        default=str(fallback.pk) if on_delete == "SET_DEFAULT" else None,
    )
    Customer, Order = customer.model_class(), order.model_class()
    bob = Customer.objects.create(name="Bob")
    row = Order.objects.create(ref="B1", customer=bob)
    if isinstance(outcome, type):
        with pytest.raises(outcome) as error:
            bob.delete()
        assert "B1" in str(error.value.args[1]) or row in error.value.args[1]
        assert Customer.objects.filter(pk=bob.pk).exists()
        return
    bob.delete()
    if outcome == "deleted":
        assert not Order.objects.exists()
    elif outcome == "emptied":
        assert Order.objects.get().customer is None
    else:
        assert Order.objects.get().customer_id == fallback.pk


def test_on_delete_needs_what_it_uses():
    customer = table("Customer")
    order = table("Order")
    with pytest.raises(ValidationError, match="allow empty"):
        ForeignKeyDefinition.objects.create(
            model_def=order, name="customer", to_definition=customer, on_delete="SET_NULL"
        )
    with pytest.raises(ValidationError, match="default"):
        ForeignKeyDefinition.objects.create(
            model_def=order, name="customer", to_definition=customer, on_delete="SET_DEFAULT"
        )
    with pytest.raises(ValidationError, match="Choose the table"):
        ForeignKeyDefinition.objects.create(model_def=order, name="customer")
    with pytest.raises(ValidationError, match="no model"):
        ForeignKeyDefinition.objects.create(model_def=order, name="owner", to_model="nope.Nothing")
    assert "customer_id" not in columns("tables_order")


def test_a_link_name_cannot_clash_with_its_column():
    customer = table("Customer")
    order = table("Order", "customer_id")
    with pytest.raises(ValidationError, match="already has a field"):
        ForeignKeyDefinition.objects.create(
            model_def=order, name="customer", to_definition=customer, null=True
        )


def test_one_to_one_refuses_a_second_link_to_the_same_row():
    person = table("Person", "name")
    passport = table("Passport", "number")
    OneToOneFieldDefinition.objects.create(
        model_def=passport, name="holder", to_definition=person, on_delete="CASCADE", null=True
    )
    Person, Passport = person.model_class(), passport.model_class()
    ann = Person.objects.create(name="Ann")
    Passport.objects.create(number="P1", holder=ann)
    assert person.model_class().objects.get().passport_via_holder.number == "P1"
    with pytest.raises(IntegrityError), transaction.atomic():
        Passport.objects.create(number="P2", holder=ann)


def test_many_to_many_creates_renames_and_drops_its_through_table():
    product = table("Product", "name")
    order = table("Order", "ref")
    items = ManyToManyFieldDefinition.objects.create(
        model_def=order, name="items", to_definition=product
    )
    assert table_exists("tables_order_items")
    assert drift() == []  # the link table belongs to the field
    Product, Order = product.model_class(), order.model_class()
    pen, ink = Product.objects.create(name="pen"), Product.objects.create(name="ink")
    first = Order.objects.create(ref="O1")
    first.items.add(pen, ink)
    assert sorted(p.name for p in Order.objects.get().items.all()) == ["ink", "pen"]
    assert product.model_class().objects.get(name="pen").order_via_items.get().ref == "O1"

    items.name = "products"
    items.save()
    assert table_exists("tables_order_products") and not table_exists("tables_order_items")
    assert order.model_class().objects.get().products.count() == 2

    order.object_name = "Purchase"
    order.save()
    assert table_exists("tables_purchase_products")
    assert apps.get_model("tables.Purchase").objects.get().products.count() == 2

    ManyToManyFieldDefinition.objects.get(pk=items.pk).delete()
    assert not table_exists("tables_purchase_products")


def test_self_reference_and_deep_chains():
    person = table("Person", "name")
    ForeignKeyDefinition.objects.create(
        model_def=person, name="parent", to_definition=person, null=True, on_delete="SET_NULL"
    )
    ManyToManyFieldDefinition.objects.create(model_def=person, name="friends", to_definition=person)
    Person = person.model_class()
    root = Person.objects.create(name="root")
    child = Person.objects.create(name="child", parent=root)
    child.friends.add(root)
    assert list(person.model_class().objects.get(name="root").person_via_parent.all()) == [child]
    root.delete()
    assert person.model_class().objects.get().parent is None


def test_a_link_to_a_static_model_adds_no_accessor_to_it():
    note = table("Note", "text")
    ForeignKeyDefinition.objects.create(
        model_def=note, name="author", to_model="auth.user", on_delete="CASCADE", null=True
    )
    ManyToManyFieldDefinition.objects.create(model_def=note, name="readers", to_model="auth.User")
    assert ("author_id", "auth_user") in fk_targets("tables_note")
    user = User.objects.create(username="u")
    Note = note.model_class()
    n = Note.objects.create(text="hi", author=user)
    n.readers.add(user)
    assert Note.objects.filter(author__username="u").count() == 1
    assert not [name for name in dir(User) if "_via_" in name]
    user.delete()  # the collector knows the hidden link: the note goes too
    assert not note.model_class().objects.exists()


def test_deleting_a_linked_table_is_refused_unless_links_go_too():
    customer = table("Customer", "name")
    order = table("Order", "ref")
    ForeignKeyDefinition.objects.create(
        model_def=order, name="customer", to_definition=customer, null=True
    )
    with pytest.raises(SchemaError, match="customer"):
        customer.delete()
    assert table_exists("tables_customer")
    customer.delete(remove_links=True)
    assert not table_exists("tables_customer")
    assert "customer_id" not in columns("tables_order")
    assert order.model_class()._meta.get_fields()


def test_renaming_a_linked_table_keeps_the_links():
    customer = table("Customer", "name")
    order = table("Order", "ref")
    ForeignKeyDefinition.objects.create(
        model_def=order, name="customer", to_definition=customer, null=True
    )
    alice = customer.model_class().objects.create(name="Alice")
    order.model_class().objects.create(ref="A1", customer=alice)
    customer.object_name = "Client"
    customer.save()
    assert ("customer_id", "tables_client") in fk_targets("tables_order")
    Order = order.model_class()
    assert Order.objects.get().customer.name == "Alice"
    assert Order._meta.get_field("customer").related_model is apps.get_model("tables.Client")


def test_changing_one_end_refreshes_both_ends_in_one_transaction():
    customer = table("Customer", "name")
    order = table("Order", "ref")
    versions = lambda: dict(ModelDefinition.objects.values_list("object_name", "version"))  # noqa: E731
    before = versions()
    ForeignKeyDefinition.objects.create(
        model_def=order, name="customer", to_definition=customer, null=True
    )
    after = versions()
    assert after["Customer"] == before["Customer"] + 1
    assert after["Order"] == before["Order"] + 1
    CharFieldDefinition.objects.create(model_def=customer, name="email", max_length=50, null=True)
    assert versions()["Order"] == after["Order"] + 1
    Order = order.model_class()
    assert Order._meta.get_field("customer").related_model is customer.model_class()
    assert "email" in [f.name for f in Order._meta.get_field("customer").related_model._meta.fields]


def test_a_second_process_sees_a_new_reverse_relation(child):
    customer = table("Customer", "name")
    order = table("Order", "ref")
    child.run("from django.apps import apps")
    reverse = (
        "result = sorted(r.get_accessor_name() for r in "
        "apps.get_model('tables.Customer')._meta.related_objects)"
    )
    assert child.run(reverse) == []
    ForeignKeyDefinition.objects.create(
        model_def=order, name="customer", to_definition=customer, null=True
    )
    assert child.run(reverse) == ["order_via_customer"]
    customer.model_class().objects.create(name="Zed")
    child.run(
        "C = apps.get_model('tables.Customer'); O = apps.get_model('tables.Order');"
        "O.objects.create(ref='Z1', customer=C.objects.get())"
    )
    assert customer.model_class().objects.get().order_via_customer.get().ref == "Z1"


def test_cascading_delete_across_three_tables_after_rebuilds():
    a, b, c = table("Alpha", "name"), table("Beta", "name"), table("Gamma", "name")
    ForeignKeyDefinition.objects.create(
        model_def=b, name="alpha", to_definition=a, on_delete="CASCADE", null=True
    )
    ForeignKeyDefinition.objects.create(
        model_def=c, name="beta", to_definition=b, on_delete="CASCADE", null=True
    )
    for md in (a, b, c):
        for i in range(3):
            field = CharFieldDefinition.objects.create(
                model_def=md, name=f"extra{i}", max_length=5, null=True
            )
            field.name = f"renamed{i}"
            field.save()
            field.delete()
    A, B, C = a.model_class(), b.model_class(), c.model_class()
    root = A.objects.create(name="root")
    middle = B.objects.create(name="middle", alpha=root)
    C.objects.create(name="leaf", beta=middle)
    a.model_class().objects.get().delete()
    assert not b.model_class().objects.exists()
    assert not c.model_class().objects.exists()


def test_rebuilding_a_many_to_many_table_keeps_the_registry_and_memory_bounded():
    from mutant import classes

    product = table("Product", "name")
    order = table("Order", "ref")
    ManyToManyFieldDefinition.objects.create(model_def=order, name="items", to_definition=product)
    order.model_class()
    registered = set(apps.all_models["tables"])
    assert registered == {"order", "order_items", "product"}

    def rebuild(times: int) -> None:
        for _ in range(times):
            classes.forget(order.pk)
            order.model_class()

    def live_classes() -> int:
        gc.collect()
        return sum(
            1 for o in gc.get_objects() if isinstance(o, type) and hasattr(o, "_definition_id")
        )

    def rss() -> int:
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    rebuild(100)
    classes_before, memory_before = live_classes(), rss()
    rebuild(1000)
    # Leaked classes would show as 2,000 more live classes and tens of MB.
    assert live_classes() <= classes_before + 2
    assert rss() - memory_before < 20_000_000
    assert set(apps.all_models["tables"]) == registered
    assert not [key for key in apps._pending_operations if key[0] == "tables"]
    Order = order.model_class()
    row = Order.objects.create(ref="x")
    row.items.add(product.model_class().objects.create(name="p"))
    assert Order.objects.get().items.count() == 1
