"""The engine's contract: definitions make, change and drop real tables."""

from __future__ import annotations

import warnings
from io import StringIO

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection

from mutant.errors import DataLossError, SchemaError
from mutant.models import (
    CharFieldDefinition,
    DecimalFieldDefinition,
    IntegerFieldDefinition,
    ModelDefinition,
    TextFieldDefinition,
)
from tests.schema_helpers import columns, is_unique, table_exists

pytestmark = pytest.mark.usefixtures("schema_db")


def make_penguin() -> ModelDefinition:
    md = ModelDefinition.objects.create(object_name="Penguin", verbose_name="penguin")
    CharFieldDefinition.objects.create(model_def=md, name="species", max_length=60)
    return md


def test_the_contract_creates_renames_and_drops_real_tables():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "already registered" warnings
        md = make_penguin()
        assert table_exists("tables_penguin")
        Penguin = md.model_class()
        Penguin.objects.create(species="Adelie")
        assert apps.get_model(Penguin._meta.label) is md.model_class()

        f = CharFieldDefinition.objects.get(model_def=md, name="species")
        f.name = "kind"
        f.save()
        assert "kind" in columns("tables_penguin")
        assert "species" not in columns("tables_penguin")
        assert list(md.model_class().objects.values_list("kind", flat=True)) == ["Adelie"]

        f.delete()
        assert set(columns("tables_penguin")) == {"id"}
        md.delete()
        assert not table_exists("tables_penguin")
    with pytest.raises(LookupError):
        apps.get_model("tables", "Penguin")


def test_every_change_bumps_the_version_and_rebuilds_the_class():
    md = make_penguin()
    first = md.model_class()
    version = md.version
    IntegerFieldDefinition.objects.create(model_def=md, name="age", null=True)
    md.refresh_from_db()
    assert md.version == version + 1
    second = md.model_class()
    assert second is not first
    assert [f.name for f in second._meta.get_fields()] == ["id", "species", "age"]
    assert md.model_class() is second  # warm cache


def test_dynamic_models_are_unmanaged_and_stay_out_of_migrations():
    md = make_penguin()
    model = md.model_class()
    assert model._meta.managed is False
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_renaming_a_table_keeps_its_rows():
    md = make_penguin()
    md.model_class().objects.create(species="Emperor")
    md.object_name = "Bird"
    md.save()
    assert table_exists("tables_bird") and not table_exists("tables_penguin")
    Bird = apps.get_model("tables", "Bird")
    assert Bird.objects.get().species == "Emperor"
    with pytest.raises(LookupError):
        apps.get_model("tables", "Penguin")


def test_a_batch_is_one_operation_with_one_version_bump():
    md = make_penguin()
    version = md.version
    with md.batch():
        IntegerFieldDefinition.objects.create(model_def=md, name="age", null=True)
        TextFieldDefinition.objects.create(model_def=md, name="notes", blank=True)
        species = CharFieldDefinition.objects.get(model_def=md, name="species")
        species.name = "kind"
        species.save()
    md.refresh_from_db()
    assert md.version == version + 1
    assert set(columns("tables_penguin")) == {"id", "kind", "age", "notes"}


def test_a_failing_batch_changes_nothing():
    md = make_penguin()
    version = md.version
    with pytest.raises(ValidationError):
        with md.batch():
            IntegerFieldDefinition.objects.create(model_def=md, name="age", null=True)
            IntegerFieldDefinition.objects.create(model_def=md, name="class")  # keyword
    md.refresh_from_db()
    assert md.version == version
    assert set(columns("tables_penguin")) == {"id", "species"}
    assert not IntegerFieldDefinition.objects.filter(name="age").exists()


def test_two_fields_can_swap_names_in_one_batch():
    md = make_penguin()
    CharFieldDefinition.objects.create(model_def=md, name="colour", max_length=20, default="")
    md.model_class().objects.create(species="Adelie", colour="black")
    with md.batch():
        a = CharFieldDefinition.objects.get(model_def=md, name="species")
        b = CharFieldDefinition.objects.get(model_def=md, name="colour")
        a.name, b.name = "tmp", "species"
        a.save()
        b.save()
        a.name = "colour"
        a.save()
    row = md.model_class().objects.get()
    assert (row.species, row.colour) == ("black", "Adelie")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "id",
        "pk",
        "class",
        "save",
        "objects",
        "x" * 64,
        "a b",
        "naïve",
        'x"; DROP TABLE x; --',
        "double__under",
        "trailing_",
        "9lives",
        "Species",
    ],
)
def test_bad_field_names_are_refused_and_change_nothing(name):
    md = make_penguin()
    version = md.version
    with pytest.raises(ValidationError) as error:
        CharFieldDefinition.objects.create(model_def=md, name=name, max_length=10)
    assert error.value.message_dict["name"]
    md.refresh_from_db()
    assert md.version == version
    assert set(columns("tables_penguin")) == {"id", "species"}
    assert CharFieldDefinition.objects.filter(model_def=md).count() == 1


@pytest.mark.parametrize("name", ["", "penguin", "Bad Name", "class", "Robert'); DROP TABLE x"])
def test_bad_table_names_are_refused(name):
    make_penguin()
    with pytest.raises(ValidationError) as error:
        ModelDefinition.objects.create(object_name=name)
    assert error.value.message_dict["object_name"]
    assert ModelDefinition.objects.count() == 1


def test_labels_may_hold_any_text():
    md = ModelDefinition.objects.create(
        object_name="Quote", verbose_name="Citations «l'été»; DROP TABLE x"
    )
    field = CharFieldDefinition.objects.create(
        model_def=md, name="said", verbose_name='Il a dit "non"; --', max_length=50
    )
    model = md.model_class()
    assert model._meta.verbose_name == "Citations «l'été»; DROP TABLE x"
    assert model._meta.get_field("said").verbose_name == field.verbose_name


def test_shrinking_max_length_below_stored_data_is_refused():
    md = make_penguin()
    Penguin = md.model_class()
    Penguin.objects.create(species="Adelie")
    Penguin.objects.create(species="Chinstrap penguin")
    species = CharFieldDefinition.objects.get(model_def=md)
    species.max_length = 8
    with pytest.raises(DataLossError) as error:
        species.save()
    assert "1 of 2 rows" in str(error.value)
    assert "Chinstrap penguin" in str(error.value)
    species.refresh_from_db()
    assert species.max_length == 60
    assert columns("tables_penguin")["species"][0].lower().replace(" ", "") in {
        "varchar(60)",
        "charactervarying(60)",
    }


def test_making_a_column_required_names_the_rows_that_are_empty():
    md = make_penguin()
    age = IntegerFieldDefinition.objects.create(model_def=md, name="age", null=True)
    Penguin = md.model_class()
    Penguin.objects.create(species="a", age=3)
    empty = Penguin.objects.create(species="b")
    age.null = False
    with pytest.raises(DataLossError) as error:
        age.save()
    assert f"row {empty.pk}" in str(error.value)
    assert columns("tables_penguin")["age"][1] is True
    Penguin.objects.filter(pk=empty.pk).update(age=1)
    age.save()
    assert columns("tables_penguin")["age"][1] is False


def test_making_a_column_unique_names_the_duplicate_rows():
    md = make_penguin()
    Penguin = md.model_class()
    first = Penguin.objects.create(species="Adelie")
    second = Penguin.objects.create(species="Adelie")
    species = CharFieldDefinition.objects.get(model_def=md)
    species.unique = True
    with pytest.raises(DataLossError) as error:
        species.save()
    message = str(error.value)
    assert f"row {second.pk}" in message and f"row {first.pk}" in message
    assert not is_unique("tables_penguin", "species")
    second.delete()
    species.save()
    assert is_unique("tables_penguin", "species")


def test_adding_a_required_field_without_default_to_a_filled_table_is_refused():
    md = make_penguin()
    md.model_class().objects.create(species="Adelie")
    with pytest.raises(DataLossError) as error:
        IntegerFieldDefinition.objects.create(model_def=md, name="age")
    assert "give a default" in str(error.value)
    assert "age" not in columns("tables_penguin")
    assert not IntegerFieldDefinition.objects.exists()
    IntegerFieldDefinition.objects.create(model_def=md, name="age", default="4")
    assert md.model_class().objects.get().age == 4


def test_changing_a_type_converts_values_or_refuses_with_examples():
    md = make_penguin()
    count = CharFieldDefinition.objects.create(model_def=md, name="count", max_length=10, null=True)
    Penguin = md.model_class()
    Penguin.objects.create(species="a", count="12")
    bad = Penguin.objects.create(species="b", count="twelve")
    Penguin.objects.create(species="c", count=None)

    report = count.change_type(IntegerFieldDefinition, dry_run=True)
    assert not report.ok
    [problem] = report.problems
    assert (problem.total, problem.problem_count) == (3, 1)
    assert problem.problems[0].pk == bad.pk and problem.problems[0].value == "twelve"
    assert columns("tables_penguin")["count"][0].lower().startswith(("varchar", "character"))

    with pytest.raises(DataLossError) as error:
        count.change_type(IntegerFieldDefinition)
    assert "twelve" in str(error.value) and "1 of 3 rows" in str(error.value)
    assert CharFieldDefinition.objects.filter(pk=count.pk).exists()

    Penguin.objects.filter(pk=bad.pk).update(count=" 7 ")
    report = count.change_type(IntegerFieldDefinition)
    assert report.ok
    assert not CharFieldDefinition.objects.filter(pk=count.pk).exists()
    assert IntegerFieldDefinition.objects.get(pk=count.pk).name == "count"
    values = dict(md.model_class().objects.values_list("species", "count"))
    assert values == {"a": 12, "b": 7, "c": None}
    assert columns("tables_penguin")["count"][0].lower() in {"integer"}


def test_integer_to_decimal_and_back_only_when_nothing_is_lost():
    md = make_penguin()
    price = IntegerFieldDefinition.objects.create(model_def=md, name="price", null=True)
    md.model_class().objects.create(species="a", price=5)
    price.change_type(DecimalFieldDefinition, max_digits=8, decimal_places=2)
    price = DecimalFieldDefinition.objects.get(pk=price.pk)
    Penguin = md.model_class()
    row = Penguin.objects.create(species="b", price="2.50")
    with pytest.raises(DataLossError) as error:
        price.change_type(IntegerFieldDefinition)
    assert f"row {row.pk}" in str(error.value)
    Penguin.objects.filter(pk=row.pk).update(price=3)
    price.change_type(IntegerFieldDefinition)
    assert sorted(md.model_class().objects.values_list("price", flat=True)) == [3, 5]


def test_a_schema_change_inside_an_sqlite_transaction_is_refused_clearly():
    if connection.vendor != "sqlite":
        pytest.skip("only SQLite refuses DDL inside an open transaction")
    from django.db import transaction

    with transaction.atomic(), pytest.raises(SchemaError, match="inside a transaction"):
        make_penguin()


def test_mutant_check_reports_drift_and_exits_non_zero():
    md = make_penguin()
    call_command("mutant_check", stdout=StringIO())
    with connection.schema_editor() as editor:
        model = md.model_class()
        editor.remove_field(model, model._meta.get_field("species"))
    out = StringIO()
    with pytest.raises(Exception) as error:
        call_command("mutant_check", stdout=out)
    assert "column species is missing" in out.getvalue()
    assert "1 difference" in str(error.value)
