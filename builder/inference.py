"""Propose a new table's fields from a spreadsheet: "create a table from this file".

Each column gets the narrowest field type whose definition reads every one
of its values (so that importing the same file into the proposed table
succeeds): yes/no, whole number, decimal number, date, date and time,
email address, web address, a short text with choices when the column
repeats a few values, and text otherwise.
"""

from __future__ import annotations

import datetime
import keyword
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from builder import formats
from builder.importing import NULL_MARKERS, rows_of
from mutant.models import (
    BigIntegerFieldDefinition,
    BooleanFieldDefinition,
    CharFieldDefinition,
    DateFieldDefinition,
    DateTimeFieldDefinition,
    DecimalFieldDefinition,
    EmailFieldDefinition,
    FieldDefinition,
    IntegerFieldDefinition,
    TextFieldDefinition,
    URLFieldDefinition,
)
from mutant.models.definitions import MAX_FIELD_NAME, RESERVED_FIELD_NAMES

MAX_ROWS = 20_000
"""Rows looked at; a larger file is judged by its first rows."""

MAX_CHOICES = 12
SHORT_TEXT = 255
INT32 = 2**31 - 1

WORDS_TRUE = {"true", "yes", "y", "t", "on"}
WORDS_FALSE = {"false", "no", "n", "f", "off"}
INTEGER = re.compile(r"^[+-]?\d+$")
DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")


@dataclass
class ProposedField:
    """A field the builder may create: its definition class and options."""

    name: str
    label: str
    definition: type[FieldDefinition]
    options: dict[str, Any] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def build(self, **extra: Any) -> FieldDefinition:
        """An unsaved definition of this field (add `model_def` and save it)."""
        return self.definition(name=self.name, verbose_name=self.label, **{**self.options, **extra})


def infer_from_file(
    data: bytes, file_name: str, format_name: str | None = None
) -> list[ProposedField]:
    """Fields for the columns of an uploaded file (FileProblem if unreadable)."""
    dataset = formats.format_for(format_name, file_name)().create_dataset(data)
    return infer_fields(dataset)


def infer_fields(dataset: Any) -> list[ProposedField]:
    """Fields for the columns of a dataset (its headers name them)."""
    rows = rows_of(dataset)[:MAX_ROWS]
    headers = list(dataset.headers or [])
    taken: set[str] = set()
    proposed = []
    for index, header in enumerate(headers):
        label = "" if header is None else str(header).strip()
        cells = [row[index] if index < len(row) else None for row in rows]
        if not label and all(_is_empty(c) for c in cells):
            continue
        name = field_name(label or f"column {index + 1}", taken)
        taken.add(name.lower())
        proposed.append(infer_column(name, label or name, cells))
    return proposed


def field_name(label: str, taken: Iterable[str] = ()) -> str:
    """An identifier for a column's label: lower case ASCII words joined by _."""
    # Accents come off (é is e), other letters go.
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    words = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_label).strip("_")
    name = re.sub(r"_+", "_", words).lower() or "field"
    if not name[0].isalpha():
        name = f"field_{name}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in RESERVED_FIELD_NAMES:
        name = f"{name}_field"
    name = name[:MAX_FIELD_NAME].rstrip("_")
    taken = {t.lower() for t in taken}
    candidate, number = name, 2
    while candidate.lower() in taken:
        suffix = f"_{number}"
        candidate = name[: MAX_FIELD_NAME - len(suffix)] + suffix
        number += 1
    return candidate


def _is_empty(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, str):
        text = cell.strip()
        return not text or text.casefold() in NULL_MARKERS
    return False


def infer_column(name: str, label: str, cells: list[Any]) -> ProposedField:
    values = [c for c in cells if not _is_empty(c)]
    empty = len(values) < len(cells)
    texts = [_text(v) for v in values]
    examples = list(dict.fromkeys(texts))[:3]

    def propose(definition: type[FieldDefinition], **options: Any) -> ProposedField:
        if empty:
            if definition in (CharFieldDefinition, TextFieldDefinition):
                options.setdefault("blank", True)
            else:
                options.update(null=True, blank=True)
        return ProposedField(name, label, definition, options, examples)

    if not values:
        return propose(CharFieldDefinition, max_length=SHORT_TEXT)
    distinct = set(texts)
    for check in (_yes_no, _whole_number, _decimal, _date, _datetime):
        found = check(values, distinct)
        if found is not None:
            definition, options = found
            return propose(definition, **options)
    if all(isinstance(v, str) for v in values):
        longest = max(len(t) for t in texts)
        if _all_valid(EmailValidator(), distinct):
            return propose(EmailFieldDefinition, max_length=max(254, longest))
        if _all_valid(URLValidator(), distinct):
            return propose(URLFieldDefinition, max_length=max(200, longest))
        if longest > SHORT_TEXT or any("\n" in t for t in distinct):
            return propose(TextFieldDefinition)
        if len(distinct) <= MAX_CHOICES and len(values) >= 2 * len(distinct):
            choices = [[t, t] for t in dict.fromkeys(texts)]
            return propose(CharFieldDefinition, max_length=max(longest, 1), choices=choices)
    longest = max(len(t) for t in texts)
    if longest > SHORT_TEXT:
        return propose(TextFieldDefinition)
    return propose(CharFieldDefinition, max_length=SHORT_TEXT)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value).strip() if isinstance(value, str) else str(value)


def _all_valid(validator: Any, values: Iterable[str]) -> bool:
    try:
        for value in values:
            validator(value)
    except ValidationError:
        return False
    return True


def _parses(definition: FieldDefinition, values: Iterable[Any]) -> bool:
    try:
        for value in values:
            if definition.parse_value(value) is None:
                return False
    except (ValidationError, TypeError, ValueError, ArithmeticError):
        return False
    return True


def _yes_no(values: list[Any], distinct: set[str]):
    if all(isinstance(v, bool) for v in values) or (
        all(isinstance(v, str) for v in values)
        and {t.lower() for t in distinct} <= WORDS_TRUE | WORDS_FALSE
        and _parses(BooleanFieldDefinition(), distinct)
    ):
        return BooleanFieldDefinition, {}
    return None


def _whole_number(values: list[Any], distinct: set[str]):
    numbers = []
    for value in values:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            numbers.append(value)
        elif isinstance(value, float) and value.is_integer():
            numbers.append(int(value))
        elif isinstance(value, str) and INTEGER.match(value.strip()):
            numbers.append(int(value.strip()))
        else:
            return None
    if max(abs(n) for n in numbers) > INT32:
        return BigIntegerFieldDefinition, {}
    return IntegerFieldDefinition, {}


def _decimal(values: list[Any], distinct: set[str]):
    whole_digits = places = 0
    for value in values:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, str) and DECIMAL.match(value.strip()):
            text = value.strip()
        else:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
        if not number.is_finite():
            return None
        sign, digits, exponent = number.as_tuple()
        decimals = max(0, -exponent)
        places = max(places, decimals)
        whole_digits = max(whole_digits, len(digits) - decimals if len(digits) > decimals else 0)
    places = max(places, 2) if places else 2
    return DecimalFieldDefinition, {
        "max_digits": max(whole_digits + places, 12),
        "decimal_places": places,
    }


def _date(values: list[Any], distinct: set[str]):
    def is_date(value: Any) -> bool:
        if isinstance(value, datetime.datetime):
            return value.time() == datetime.time()
        if isinstance(value, datetime.date):
            return True
        return isinstance(value, str) and bool(ISO_DATE.match(value.strip()))

    if all(is_date(v) for v in values) and _parses(
        DateFieldDefinition(), [v for v in values if isinstance(v, str)]
    ):
        return DateFieldDefinition, {}
    return None


def _datetime(values: list[Any], distinct: set[str]):
    def is_moment(value: Any) -> bool:
        if isinstance(value, datetime.datetime):
            return True
        return isinstance(value, str) and bool(ISO_DATETIME.match(value.strip()))

    if all(is_moment(v) for v in values) and _parses(
        DateTimeFieldDefinition(), [v for v in values if isinstance(v, str)]
    ):
        return DateTimeFieldDefinition, {}
    return None
