"""Spreadsheet import and export of user tables: all or nothing, exact round
trips, any common encoding and delimiter, formulas neutralised, and the
stock import/export commands by label."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import threading
import uuid
from decimal import Decimal

import pytest
import tablib
from django.db import connection

from builder import formats
from builder.formats import FileProblem
from builder.importing import TableImport
from builder.resources import resource_for
from mutant.models import (
    BigIntegerFieldDefinition,
    BooleanFieldDefinition,
    CharFieldDefinition,
    DateFieldDefinition,
    DateTimeFieldDefinition,
    DecimalFieldDefinition,
    DurationFieldDefinition,
    EmailFieldDefinition,
    FloatFieldDefinition,
    ForeignKeyDefinition,
    GenericIPAddressFieldDefinition,
    IntegerFieldDefinition,
    JSONFieldDefinition,
    ManyToManyFieldDefinition,
    ModelDefinition,
    PositiveIntegerFieldDefinition,
    SlugFieldDefinition,
    TextFieldDefinition,
    TimeFieldDefinition,
    URLFieldDefinition,
    UUIDFieldDefinition,
)

pytestmark = pytest.mark.usefixtures("schema_db")


def make_penguins(object_name: str = "Penguin"):
    md = ModelDefinition.objects.create(object_name=object_name, verbose_name="penguin")
    with md.batch():
        CharFieldDefinition.objects.create(
            model_def=md, name="species", verbose_name="Species", max_length=20, unique=True
        )
        IntegerFieldDefinition.objects.create(model_def=md, name="age", null=True)
        DateFieldDefinition.objects.create(
            model_def=md, name="born", verbose_name="Date of birth", null=True
        )
        BooleanFieldDefinition.objects.create(model_def=md, name="tagged", default="no")
    md.refresh_from_db()
    return md


def import_text(model, text: str | bytes, *, dry_run: bool = False, fmt=formats.CSV):
    data = text.encode() if isinstance(text, str) else text
    dataset = fmt().create_dataset(data)
    return resource_for(model)().import_data(dataset, dry_run=dry_run)


def problems(result) -> list[tuple]:
    return [(p.row, p.column, p.value) for p in result.report.problems]


# -- all or nothing --------------------------------------------------------------------


def test_a_valid_file_is_imported_with_its_columns_matched_by_label_or_name():
    model = make_penguins().model_class()
    result = import_text(
        model, "SPECIES,Age,date of birth,TAGGED\nAdelie,3,2020-01-02,yes\nGentoo,,,no\n"
    )
    assert result.report.written and not result.has_validation_errors()
    assert result.totals["new"] == 2
    rows = list(model.objects.order_by("species").values_list("species", "age", "born", "tagged"))
    assert rows == [
        ("Adelie", 3, datetime.date(2020, 1, 2), True),
        ("Gentoo", None, None, False),
    ]


def test_one_invalid_row_saves_nothing_and_the_report_names_row_and_column():
    model = make_penguins().model_class()
    text = "species,age,born\nAdelie,3,2020-01-02\nGentoo,old,2020-02-30\nEmperor,5,\n"
    result = import_text(model, text)
    assert not result.report.written
    assert model.objects.count() == 0
    assert problems(result) == [(2, "age", "old"), (2, "born", "2020-02-30")]
    [row] = result.invalid_rows
    assert row.number == 2
    assert set(row.field_specific_errors) == {"age", "born"}
    assert "integer" in row.field_specific_errors["age"][0]
    assert row.values == ("Gentoo", "old", "2020-02-30")
    # The description a command prints says the same.
    assert "Row 2, column age, value 'old'" in result.report.describe()


def test_a_dry_run_checks_every_row_and_writes_nothing():
    model = make_penguins().model_class()
    result = import_text(model, "species,age\nAdelie,3\nGentoo,4\n", dry_run=True)
    assert result.report.ok and not result.report.written
    assert [r.diff for r in result.valid_rows()] == [["Adelie", "3"], ["Gentoo", "4"]]
    assert model.objects.count() == 0


def test_unique_values_are_checked_within_the_file_and_against_the_table():
    model = make_penguins().model_class()
    model.objects.create(species="Adelie")
    result = import_text(model, "species\nGentoo\nAdelie\nGentoo\n")
    # In the order of the rows, whichever check found them.
    assert problems(result) == [(2, "species", "Adelie"), (3, "species", "Gentoo")]
    assert model.objects.count() == 1


def test_unknown_and_duplicate_columns_refuse_the_file_with_a_clear_message():
    model = make_penguins().model_class()
    result = import_text(model, "species,colour,Species\nAdelie,black,Adelie\n")
    messages = [str(e.error) for e in result.base_errors]
    assert any("'colour' matches no field" in m for m in messages)
    assert any("'species' and 'Species' both fill" in m for m in messages)
    assert model.objects.count() == 0


def test_a_missing_required_column_is_named():
    md = make_penguins()
    IntegerFieldDefinition.objects.create(model_def=md, name="weight", default="0")
    DecimalFieldDefinition.objects.create(model_def=md, name="height")  # required, no default
    result = import_text(md.model_class(), "species\nAdelie\n")
    [error] = result.base_errors
    assert "no column for height" in str(error.error)


def test_empty_cells_and_null_markers_are_empty_in_nullable_fields_only():
    md = make_penguins()
    CharFieldDefinition.objects.create(model_def=md, name="note", max_length=10, null=True)
    model = md.model_class()
    text = "species,age,born,note\nNA,NA,null,N/A\nnull, ,,\nN/a,Null,n/a,na\n"
    result = import_text(model, text)
    assert result.report.written, result.report.describe()
    rows = list(model.objects.order_by("pk").values_list("species", "age", "born", "note"))
    # species may not be empty: the markers stay text there.
    assert rows == [("NA", None, None, None), ("null", None, None, None), ("N/a", None, None, None)]


def test_an_id_column_updates_existing_rows_and_keeps_new_ids():
    model = make_penguins().model_class()
    first = model.objects.create(species="Adelie", age=1)
    result = import_text(model, f"id,species,age\n{first.pk},Adelie,2\n500,Gentoo,3\n,Emperor,4\n")
    assert result.report.written
    assert (result.totals["update"], result.totals["new"]) == (1, 2)
    assert model.objects.get(pk=first.pk).age == 2
    assert model.objects.get(pk=500).species == "Gentoo"
    emperor = model.objects.get(species="Emperor")
    assert emperor.pk != 500
    # The id sequence moved past the imported ids.
    assert model.objects.create(species="King").pk > 500


def test_the_rows_are_checked_against_the_table_as_it_is_now():
    md = make_penguins()
    resource = resource_for(md.model_class())()
    IntegerFieldDefinition.objects.create(model_def=md, name="weight", null=True)
    result = resource.import_data(
        formats.CSV().create_dataset(b"species,weight\nAdelie,12\n"), dry_run=False
    )
    assert result.report.written
    assert md.model_class().objects.get().weight == 12


def test_a_confirmation_for_an_older_version_writes_nothing():
    md = make_penguins()
    model = md.model_class()
    preview = import_text(model, "species\nAdelie\n", dry_run=True)
    IntegerFieldDefinition.objects.create(model_def=md, name="weight", null=True)
    dataset = formats.CSV().create_dataset(b"species\nAdelie\n")
    result = resource_for(model)().import_data(
        dataset, dry_run=False, expected_version=preview.report.version
    )
    assert result.report.table_changed and not result.report.written
    assert result.report.version == preview.report.version + 1
    assert md.model_class().objects.count() == 0


def test_an_import_into_a_table_being_changed_reports_busy_and_saves_nothing(child, settings):
    md = make_penguins()
    child.run(f"from mutant.models import *\nmd = ModelDefinition.objects.get(pk={md.pk})")
    child.run("held = md.modify()\nheld.__enter__()")
    settings.MUTANT_LOCK_TIMEOUT = 0.3
    try:
        result = import_text(md.model_class(), "species\nAdelie\n")
    finally:
        child.run("held.__exit__(None, None, None)")
    [error] = result.base_errors
    assert "being changed" in str(error.error)
    assert md.model_class().objects.count() == 0


def test_a_schema_change_waits_for_an_import_to_finish():
    md = make_penguins()
    model = md.model_class()
    checked, go_on, changed = threading.Event(), threading.Event(), threading.Event()
    outcome = {}

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "checking" and done == total:
            checked.set()
            go_on.wait(30)

    def run_import() -> None:
        dataset = formats.CSV().create_dataset(b"species,age\nAdelie,1\nGentoo,2\n")
        try:
            outcome["result"] = resource_for(model)().import_data(dataset, progress=progress)
        finally:
            connection.close()

    def change() -> None:
        try:
            IntegerFieldDefinition.objects.create(model_def=md, name="weight", null=True)
            changed.set()
        finally:
            connection.close()

    importing = threading.Thread(target=run_import)
    importing.start()
    assert checked.wait(30)
    changing = threading.Thread(target=change)
    changing.start()
    assert not changed.wait(0.5)  # the change waits while the import holds the table
    go_on.set()
    importing.join(30)
    changing.join(30)
    assert outcome["result"].report.written and changed.is_set()
    assert sorted(md.model_class().objects.values_list("species", "weight")) == [
        ("Adelie", None),
        ("Gentoo", None),
    ]


def test_links_are_imported_by_the_linked_rows_id_and_must_exist():
    customer = ModelDefinition.objects.create(object_name="Customer")
    CharFieldDefinition.objects.create(model_def=customer, name="name", max_length=20)
    order = ModelDefinition.objects.create(object_name="Order")
    with order.batch():
        CharFieldDefinition.objects.create(model_def=order, name="item", max_length=20)
        ForeignKeyDefinition.objects.create(
            model_def=order, name="customer", to_definition=customer, on_delete="PROTECT"
        )
        ManyToManyFieldDefinition.objects.create(
            model_def=order, name="friends", to_definition=customer
        )
    alice = customer.model_class().objects.create(name="Alice")
    orders = ModelDefinition.objects.get(pk=order.pk).model_class()

    refused = import_text(orders, f"item,customer\ntea,{alice.pk}\ncake,99\nbread,99\npie,\n")
    assert problems(refused) == [(2, "customer", 99), (3, "customer", 99), (4, "customer", "")]
    assert "no row 99" in refused.report.problems[0].reason
    assert orders.objects.count() == 0

    imported = import_text(orders, f"item,customer\ntea,{alice.pk}\n")
    assert imported.report.written
    assert orders.objects.get().customer == alice
    exported = resource_for(orders)().export()
    assert exported.headers == ["id", "item", "customer"]
    assert list(exported[0])[1:] == ["tea", str(alice.pk)]

    many = import_text(orders, "item,friends\ntea,1\n")
    assert "links to several rows" in str(many.base_errors[0].error)


TRICKY_CELLS = [
    "", " ", "NA", "na", "null", "N/A", "'=x", "=x", "''=x", "abcdef", "abc", " 12 ", "1_000",
    "12.5", "-0", "+7", "1e3", "nan", "inf", "-inf", "9223372036854775808", "2147483648", "-1",
    "0.001", "123.45", "1234.5", "٣", "\t5\n", "\x00", 5, 5.0, 5.5, -3, True, None, 2**70,
    "999.99", "-999.99", "999.999", "1000", "0000.00", "12.", ".5", "+1.50", "1.5 ",
]  # fmt: skip


@pytest.mark.parametrize(
    ("definition", "options"),
    [
        (CharFieldDefinition, {"max_length": 5}),
        (CharFieldDefinition, {"max_length": 5, "null": True}),
        (TextFieldDefinition, {"null": True}),
        (IntegerFieldDefinition, {"null": True}),
        (BigIntegerFieldDefinition, {}),
        (PositiveIntegerFieldDefinition, {"null": True}),
        (DecimalFieldDefinition, {"max_digits": 5, "decimal_places": 2, "null": True}),
        (FloatFieldDefinition, {"default": "1.5"}),
    ],
)
def test_the_shortcuts_convert_every_cell_as_the_definition_does(definition, options):
    md = ModelDefinition.objects.create(object_name="Cells")
    definition.objects.create(model_def=md, name="cell", **options)
    dataset = tablib.Dataset(headers=["cell"])
    job = TableImport(md.model_class(), dataset)
    [column] = job.columns
    assert column.has_shortcut
    for cell in TRICKY_CELLS:
        quick, exact = column.convert(cell), column.convert_checked(cell)
        assert type(quick) is type(exact), cell
        assert type(quick[0]) is type(exact[0]), cell
        # The database value: the same, perhaps in the driver's own int type.
        assert isinstance(exact[1], type(quick[1])), cell
        assert quick == exact or str(quick) == str(exact), cell  # nan != nan
        assert getattr(quick, "reason", None) == getattr(exact, "reason", None), cell


# -- reading files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "species;age\nPingüino;3\n".encode("utf-8-sig"),
        "species;age\nPingüino;3\n".encode("latin-1"),
        "species;age\nPingüino;3\n".encode("cp1252"),
        "species\tage\nPingüino\t3\n".encode("utf-16"),
        "species,age\r\nPingüino,3\r\n".encode(),
        "species|age\nPingüino|3\n".encode(),
    ],
    ids=["utf8-bom-semicolon", "latin1", "cp1252", "utf16-tab", "crlf-comma", "pipe"],
)
def test_common_encodings_and_delimiters_are_read_exactly(data):
    dataset = formats.CSV().create_dataset(data)
    assert dataset.headers == ["species", "age"]
    assert list(dataset[0]) == ["Pingüino", "3"]


def test_a_tab_separated_file_imports():
    model = make_penguins().model_class()
    result = import_text(model, "species\tage\nAdelie\t3\n")
    assert result.report.written
    assert model.objects.get().age == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04\x00\x00binary", "not look like a text file"),
        (b"species,age\nAdelie,3,extra\n", "Row 1 has more cells"),
        (b"\x81\x8d\x8f", "unknown encoding"),
        (b"", "empty"),
    ],
)
def test_unreadable_files_are_refused_with_a_clear_message(data, message):
    with pytest.raises(FileProblem, match=message):
        formats.CSV().create_dataset(data)


def test_a_named_encoding_that_does_not_fit_is_refused():
    with pytest.raises(FileProblem, match="cannot be read as utf-8"):
        formats.CSV(encoding="utf-8").create_dataset("é".encode("latin-1"))


def test_an_xlsx_file_must_be_a_workbook():
    with pytest.raises(FileProblem, match="not an Excel"):
        formats.XLSX().create_dataset(b"species,age\n")


def test_xlsx_numbers_keep_their_value():
    model = make_penguins().model_class()
    book = tablib.Dataset(headers=["species", "age", "born"])
    book.append(["Adelie", 3.0, datetime.datetime(2020, 1, 2)])
    book.append(["Gentoo", 3.5, None])
    result = import_text(model, book.export("xlsx"), fmt=formats.XLSX)
    # 3.5 is not a whole number: refused, never cut to 3.
    assert problems(result) == [(2, "age", 3.5)]


# -- exporting --------------------------------------------------------------------------------


def test_export_neutralises_formulas_and_import_restores_them():
    md = make_penguins()
    model = md.model_class()
    names = ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "'=quoted", "plain", "it's"]
    for name in names:
        model.objects.create(species=name, age=-5)
    exported = resource_for(model)().export()
    cells = {row[1] for row in exported}
    assert cells == {"'=1+1", "'+cmd", "'-2+3", "'@SUM(A1)", "''=quoted", "plain", "it's"}
    assert {row[2] for row in exported} == {"-5"}  # numbers are not formulas
    xlsx = formats.XLSX().export_data(resource_for(model)().export(force_native_type=True))
    copy = ModelDefinition.objects.get(pk=make_penguins("Copy").pk).model_class()
    result = import_text(copy, xlsx, fmt=formats.XLSX)
    assert result.report.written, result.report.describe()
    assert sorted(copy.objects.values_list("species", flat=True)) == sorted(names)


ROUND_TRIP_TYPES = [
    (CharFieldDefinition, {"max_length": 50}),
    (TextFieldDefinition, {}),
    (SlugFieldDefinition, {}),
    (IntegerFieldDefinition, {"null": True}),
    (BigIntegerFieldDefinition, {"null": True}),
    (PositiveIntegerFieldDefinition, {"null": True}),
    (DecimalFieldDefinition, {"null": True, "max_digits": 30, "decimal_places": 10}),
    (FloatFieldDefinition, {"null": True}),
    (BooleanFieldDefinition, {"null": True}),
    (DateFieldDefinition, {"null": True}),
    (DateTimeFieldDefinition, {"null": True}),
    (TimeFieldDefinition, {"null": True}),
    (DurationFieldDefinition, {"null": True}),
    (EmailFieldDefinition, {"null": True}),
    (URLFieldDefinition, {"null": True}),
    (GenericIPAddressFieldDefinition, {"null": True}),
    (UUIDFieldDefinition, {"null": True}),
    (JSONFieldDefinition, {"null": True}),
]

ROUND_TRIP_ROWS = [
    [
        "Pingüino, \"the\" =first",
        "two\nlines; tab\there",
        "a-slug_1",
        -2147483648,
        -(2**62),
        0,
        Decimal("-12345678901234567890.0123456789"),
        0.1,
        True,
        datetime.date(1900, 2, 28),
        datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC),
        datetime.time(23, 59, 59, 999999),
        datetime.timedelta(days=-1, seconds=5, microseconds=7),
        "someone@example.org",
        "https://example.org/a?b=c&d=é",
        "2001:db8::1",
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        {"list": [1, 2.5, None, "x"], "nested": {"ok": False}},
    ],
    [
        "-minus",
        "@at",
        "s",
        2147483647,
        2**62,
        2147483647,
        Decimal("0.0000000001"),
        -1.5e-300,
        False,
        datetime.date(2999, 12, 31),
        datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC),
        datetime.time(0, 0),
        datetime.timedelta(days=400, hours=3),
        "a.b+c@example.co.uk",
        "http://localhost:8000/",
        "192.168.0.1",
        uuid.UUID(int=0),
        "plain string",
    ],
    ["", "", "", None, None, None, None, None, None, None, None, None, None, None, None, None,
     None, None],
]  # fmt: skip


def make_every_type(object_name: str):
    md = ModelDefinition.objects.create(object_name=object_name)
    with md.batch():
        for index, (definition, options) in enumerate(ROUND_TRIP_TYPES):
            definition.objects.create(
                model_def=md, name=f"f{index}", verbose_name=definition.__name__, **options
            )
    return md.model_class()


@pytest.mark.parametrize("fmt", [formats.CSV, formats.XLSX, formats.JSON, formats.TSV])
def test_export_then_import_keeps_every_value_of_every_field_type(fmt):
    source = make_every_type("Source")
    names = [f"f{i}" for i in range(len(ROUND_TRIP_TYPES))]
    for values in ROUND_TRIP_ROWS:
        source.objects.create(**dict(zip(names, values, strict=True)))
    file_format = fmt()
    exported = file_format.export_data(
        resource_for(source)().export(force_native_type=file_format.is_binary())
    )
    data = exported if isinstance(exported, bytes) else exported.encode()

    target = make_every_type("Target")
    result = import_text(target, data, fmt=fmt)
    assert result.report.written, result.report.describe()
    original = list(source.objects.order_by("pk").values_list("pk", *names))
    assert list(target.objects.order_by("pk").values_list("pk", *names)) == original


# -- the stock commands ---------------------------------------------------------------------


def manage(db_env, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=db_env,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_the_stock_export_and_import_commands_work_by_label(db_env, tmp_path):
    model = make_penguins().model_class()
    model.objects.create(species="=Adelie", age=3, born=datetime.date(2020, 1, 2))

    exported = manage(db_env, "export", "CSV", "tables.Penguin")
    assert exported.returncode == 0, exported.stderr.decode()
    lines = exported.stdout.decode().splitlines()
    assert lines == ["id,Species,age,Date of birth,tagged", "1,'=Adelie,3,2020-01-02,False"]

    good = tmp_path / "good.csv"
    good.write_text("species;age\nGentoo;4\nKing;5\n", encoding="latin-1")
    imported = manage(db_env, "import", "tables.penguin", str(good), "--no-input")
    assert imported.returncode == 0, imported.stderr.decode()
    assert "imported 2 new" in imported.stderr.decode()
    assert model.objects.count() == 3

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"species": "Emperor", "age": "x"}, {"species": "Chinstrap"}]))
    failed = manage(db_env, "import", "tables.Penguin", str(bad), "--no-input")
    assert failed.returncode == 1
    assert "Row 1, column age, value 'x'" in failed.stderr.decode()
    assert model.objects.count() == 3

    xlsx = manage(db_env, "export", "XLSX", "tables.Penguin")
    assert xlsx.returncode == 0
    assert formats.XLSX().create_dataset(xlsx.stdout).height == 3
