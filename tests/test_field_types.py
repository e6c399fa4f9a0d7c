"""One contract, run for every field type, checked in the database itself."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from mutant import catalogue
from mutant.introspection import _normal
from mutant.models import (
    BigIntegerFieldDefinition,
    BooleanFieldDefinition,
    CharFieldDefinition,
    DateFieldDefinition,
    DateTimeFieldDefinition,
    DecimalFieldDefinition,
    DurationFieldDefinition,
    EmailFieldDefinition,
    FieldDefinition,
    FloatFieldDefinition,
    GenericIPAddressFieldDefinition,
    IntegerFieldDefinition,
    JSONFieldDefinition,
    ModelDefinition,
    PositiveIntegerFieldDefinition,
    SlugFieldDefinition,
    TextFieldDefinition,
    TimeFieldDefinition,
    URLFieldDefinition,
    UUIDFieldDefinition,
)
from tests.schema_helpers import columns, is_indexed, is_unique

UTC = datetime.UTC


class FieldTypeContract:
    """Subclasses set the type, two distinct values and a default (text, value)."""

    definition_class: type[FieldDefinition]
    values: tuple
    default: tuple[str, object]
    options: dict = {}

    @pytest.fixture(autouse=True)
    def table(self, schema_db):
        self.md = ModelDefinition.objects.create(object_name="Sample")
        self.table_name = self.md.db_table

    def add(self, name="value", **kwargs):
        return self.definition_class.objects.create(
            model_def=self.md, name=name, **{**self.options, **kwargs}
        )

    def model(self):
        return self.md.model_class()

    def column(self, name="value"):
        return columns(self.table_name)[name]

    def test_create_makes_a_column_of_the_right_type(self):
        definition = self.add(null=True)
        field = self.model()._meta.get_field("value")
        assert isinstance(field, self.definition_class._meta.defined_field_class)
        declared, nullable = self.column()
        assert _normal(declared) == _normal(field.db_type(connection))
        assert nullable is True
        assert definition.field_type == self.definition_class._meta.model_name

    def test_values_are_saved_and_read_back(self):
        self.add(null=True)
        model = self.model()
        for value in self.values:
            row = model.objects.create(value=value)
            assert model.objects.get(pk=row.pk).value == value
        empty = model.objects.create(value=None)
        assert model.objects.get(pk=empty.pk).value is None

    def test_default_applies_to_new_rows_and_to_rows_already_there(self):
        self.add(name="other", null=True)
        existing = self.model().objects.create()
        text, value = self.default
        self.add(default=text)
        model = self.model()
        assert model.objects.create().value == value
        assert model.objects.get(pk=existing.pk).value == value
        assert self.column()[1] is False

    def test_renaming_keeps_the_data(self):
        definition = self.add(null=True)
        row = self.model().objects.create(value=self.values[0])
        definition.name = "renamed"
        definition.save()
        assert "renamed" in columns(self.table_name)
        assert "value" not in columns(self.table_name)
        assert self.model().objects.get(pk=row.pk).renamed == self.values[0]

    def test_altering_null_and_index_changes_the_column(self):
        definition = self.add(null=True)
        self.model().objects.create(value=self.values[0])
        definition.null = False
        definition.db_index = True
        definition.save()
        assert self.column()[1] is False
        assert is_indexed(self.table_name, "value")
        assert self.model().objects.get().value == self.values[0]

    def test_null_is_refused_by_the_database_when_not_allowed(self):
        self.add()
        assert self.column()[1] is False
        with pytest.raises(IntegrityError), transaction.atomic():
            self.model().objects.create(value=None)

    def test_unique_is_enforced_by_the_database(self):
        definition = self.add(null=True)
        model = self.model()
        model.objects.create(value=self.values[0])
        model.objects.create(value=self.values[1])
        definition.unique = True
        definition.save()
        assert is_unique(self.table_name, "value")
        with pytest.raises(IntegrityError), transaction.atomic():
            self.model().objects.create(value=self.values[0])

    def test_removing_drops_the_column_and_keeps_the_rest(self):
        keep = CharFieldDefinition.objects.create(model_def=self.md, name="keep", null=True)
        definition = self.add(null=True)
        self.model().objects.create(value=self.values[0], keep="kept")
        definition.delete()
        assert set(columns(self.table_name)) == {"id", "keep"}
        assert self.model().objects.get().keep == "kept"
        assert keep.pk


NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


class TestCharField(FieldTypeContract):
    definition_class = CharFieldDefinition
    options = {"max_length": 40}
    values = ("Adelie", "Emperor")
    default = ("unknown", "unknown")


class TestTextField(FieldTypeContract):
    definition_class = TextFieldDefinition
    values = ("two\nlines", "é ü «»")
    default = ("none yet", "none yet")


class TestSlugField(FieldTypeContract):
    definition_class = SlugFieldDefinition
    values = ("a-slug", "b_slug")
    default = ("new", "new")


class TestIntegerField(FieldTypeContract):
    definition_class = IntegerFieldDefinition
    values = (-5, 2_000_000_000)
    default = ("7", 7)


class TestBigIntegerField(FieldTypeContract):
    definition_class = BigIntegerFieldDefinition
    values = (-(2**62), 2**62)
    default = ("9000000000", 9_000_000_000)


class TestPositiveIntegerField(FieldTypeContract):
    definition_class = PositiveIntegerFieldDefinition
    values = (0, 12)
    default = ("3", 3)


class TestDecimalField(FieldTypeContract):
    definition_class = DecimalFieldDefinition
    options = {"max_digits": 8, "decimal_places": 3}
    values = (decimal.Decimal("12.345"), decimal.Decimal("-0.500"))
    default = ("1.5", decimal.Decimal("1.500"))


class TestFloatField(FieldTypeContract):
    definition_class = FloatFieldDefinition
    values = (1.25, -3.5)
    default = ("0.5", 0.5)


class TestBooleanField(FieldTypeContract):
    definition_class = BooleanFieldDefinition
    values = (True, False)
    default = ("yes", True)


class TestDateField(FieldTypeContract):
    definition_class = DateFieldDefinition
    values = (datetime.date(2024, 2, 29), datetime.date(1999, 12, 31))
    default = ("2020-01-02", datetime.date(2020, 1, 2))


class TestDateTimeField(FieldTypeContract):
    definition_class = DateTimeFieldDefinition
    values = (NOW, NOW + datetime.timedelta(days=1))
    default = ("2020-01-02 03:04:05", datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))


class TestTimeField(FieldTypeContract):
    definition_class = TimeFieldDefinition
    values = (datetime.time(7, 30), datetime.time(23, 59, 59))
    default = ("12:00", datetime.time(12, 0))


class TestDurationField(FieldTypeContract):
    definition_class = DurationFieldDefinition
    values = (datetime.timedelta(hours=1, minutes=30), datetime.timedelta(days=2))
    default = ("0:10:00", datetime.timedelta(minutes=10))


class TestEmailField(FieldTypeContract):
    definition_class = EmailFieldDefinition
    values = ("a@example.com", "b@example.org")
    default = ("nobody@example.com", "nobody@example.com")


class TestURLField(FieldTypeContract):
    definition_class = URLFieldDefinition
    values = ("https://example.com/a", "http://example.org/?q=1")
    default = ("https://example.com/", "https://example.com/")


class TestGenericIPAddressField(FieldTypeContract):
    definition_class = GenericIPAddressFieldDefinition
    values = ("192.0.2.1", "2001:db8::1")
    default = ("127.0.0.1", "127.0.0.1")


class TestUUIDField(FieldTypeContract):
    definition_class = UUIDFieldDefinition
    values = (uuid.UUID(int=1), uuid.UUID(int=2))
    default = (
        "12345678-1234-5678-1234-567812345678",
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
    )


class TestJSONField(FieldTypeContract):
    definition_class = JSONFieldDefinition
    values = ({"a": [1, 2]}, [1, "two"])
    default = ('{"new": true}', {"new": True})


def test_every_field_type_has_a_contract_run():
    # Links have their own tests (tests/test_relations.py).
    covered = {cls.definition_class for cls in FieldTypeContract.__subclasses__()}
    assert {t for t in catalogue.field_types() if not t.is_relation} <= covered


def test_every_field_type_has_a_category_and_a_description():
    for definition in catalogue.field_types():
        assert definition._meta.defined_field_category in catalogue.CATEGORIES
        assert str(definition._meta.defined_field_description)
    names = {t.__name__ for t in catalogue.field_types()}
    assert {"CharFieldDefinition", "JSONFieldDefinition", "UUIDFieldDefinition"} <= names
