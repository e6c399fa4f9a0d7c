"""Proposing a table's fields from a spreadsheet, and importing it into them."""

from __future__ import annotations

import datetime

import pytest
import tablib

from builder import formats
from builder.inference import field_name, infer_fields, infer_from_file
from builder.resources import resource_for
from mutant.models import (
    BigIntegerFieldDefinition,
    BooleanFieldDefinition,
    CharFieldDefinition,
    DateFieldDefinition,
    DateTimeFieldDefinition,
    DecimalFieldDefinition,
    EmailFieldDefinition,
    IntegerFieldDefinition,
    ModelDefinition,
    TextFieldDefinition,
    URLFieldDefinition,
)

CSV = """\
Name,Count,Price,Born,Active,E-mail,Home page,Size,Seen at,Population,Notes,Empty
Adelie,3,12.50,2020-01-02,yes,a@example.org,https://a.org,small,2024-01-01 10:00,3000000000,"two
lines",
Gentoo,,0.5,2021-03-04,no,b@example.org,http://example.com/x,large,2024-01-02T11:30:00,12,,
Emperor,-7,NA,,Y,c@example.org,https://example.net,small,,5,x,
King,12,1000,2019-12-31,n,d@example.org,https://example.org/k,small,2024-02-03 00:00:00,7,,
"""


def by_name(fields):
    return {f.name: f for f in fields}


def test_each_column_gets_the_narrowest_type_that_reads_all_its_values():
    fields = by_name(infer_from_file(CSV.encode(), "penguins.csv"))
    assert list(fields) == [
        "name",
        "count",
        "price",
        "born",
        "active",
        "e_mail",
        "home_page",
        "size",
        "seen_at",
        "population",
        "notes",
        "empty",
    ]
    expected = {
        "name": CharFieldDefinition,
        "count": IntegerFieldDefinition,
        "price": DecimalFieldDefinition,
        "born": DateFieldDefinition,
        "active": BooleanFieldDefinition,
        "e_mail": EmailFieldDefinition,
        "home_page": URLFieldDefinition,
        "size": CharFieldDefinition,
        "seen_at": DateTimeFieldDefinition,
        "population": BigIntegerFieldDefinition,
        "notes": TextFieldDefinition,
        "empty": CharFieldDefinition,
    }
    assert {name: f.definition for name, f in fields.items()} == expected
    assert fields["e_mail"].label == "E-mail"
    assert fields["count"].options == {"null": True, "blank": True}
    assert fields["price"].options == {
        "max_digits": 12,
        "decimal_places": 2,
        "null": True,
        "blank": True,
    }
    assert fields["size"].options["choices"] == [["small", "small"], ["large", "large"]]
    assert "choices" not in fields["name"].options  # every value differs: no choices
    assert fields["name"].examples == ["Adelie", "Gentoo", "Emperor"]


def test_spreadsheet_cells_keep_their_types():
    book = tablib.Dataset(headers=["when", "count", "ratio", "ok"])
    book.append([datetime.datetime(2020, 1, 2), 3, 0.25, True])
    book.append([datetime.datetime(2020, 1, 3), 4.0, 1.5, False])
    fields = by_name(infer_from_file(book.export("xlsx"), "book.xlsx"))
    assert fields["when"].definition is DateFieldDefinition
    assert fields["count"].definition is IntegerFieldDefinition
    assert fields["ratio"].definition is DecimalFieldDefinition
    assert fields["ok"].definition is BooleanFieldDefinition


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("Date of birth", "date_of_birth"),
        ("Prénom", "prenom"),
        ("2nd place", "field_2nd_place"),
        ("class", "class_field"),
        ("id", "id_field"),
        ("   ", "field"),
        ("a__b_", "a_b"),
    ],
)
def test_column_labels_become_valid_field_names(label, name):
    assert field_name(label) == name


def test_repeated_labels_get_distinct_names():
    dataset = tablib.Dataset(["1", "2", "3"], headers=["Size", "size", "SIZE"])
    assert [f.name for f in infer_fields(dataset)] == ["size", "size_2", "size_3"]


@pytest.mark.usefixtures("schema_db")
def test_a_table_made_from_the_proposal_imports_the_same_file():
    proposal = infer_from_file(CSV.encode(), "penguins.csv")
    md = ModelDefinition.objects.create(object_name="Penguin")
    with md.batch():
        for proposed in proposal:
            proposed.build(model_def=md).save()
    dataset = formats.CSV().create_dataset(CSV.encode())
    result = resource_for(md.model_class())().import_data(dataset)
    assert result.report.written, result.report.describe()
    model = md.model_class()
    assert model.objects.count() == 4
    adelie = model.objects.get(name="Adelie")
    assert (adelie.population, adelie.notes, adelie.active) == (3000000000, "two\nlines", True)
