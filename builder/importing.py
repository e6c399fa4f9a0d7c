"""The fast import path: every cell converted and checked in Python by the
field definitions, then all rows written in one transaction (PostgreSQL
COPY, or batched executemany elsewhere).

An import is all or nothing: `TableImport.check()` finds every problem
(row, column, value, reason) before anything is written, and `write()`
refuses to run while there is one. A database error while writing rolls
the whole file back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import repeat
from operator import itemgetter
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.core.validators import (
    DecimalValidator,
    MaxLengthValidator,
    MaxValueValidator,
    MinValueValidator,
)
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models.fields import NOT_PROVIDED
from django.utils import timezone
from django.utils.translation import gettext as _

from builder.formats import gc_paused, restore_formula
from mutant.models import FieldDefinition, ModelDefinition

logger = logging.getLogger(__name__)

NULL_MARKERS = frozenset({"na", "n/a", "null"})
"""Cells that mean "no value" in a field that may be empty (case-insensitive)."""

PREVIEW_ROWS = 20
MAX_PROBLEMS = 1000
"""Problems kept for the report; the count goes on beyond it."""

BATCH_ROWS = 2000
TEXT_CELLS = {str, type(None)}

Progress = Callable[[str, int, int], None]
"""progress(phase, done, total): phase is "checking" or "writing"."""


@dataclass
class Problem:
    """One cell (or one row, or the whole file) that cannot be imported."""

    row: int | None  # 1 for the first row under the column names; None: the file
    column: str | None
    value: Any
    reason: str

    def describe(self) -> str:
        if self.row is None:
            return self.reason
        if self.column is None:
            return _("Row %(row)s: %(reason)s") % {"row": self.row, "reason": self.reason}
        return _("Row %(row)s, column %(column)s, value %(value)r: %(reason)s") % {
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "reason": self.reason,
        }


@dataclass
class PreviewRow:
    number: int
    new: bool
    values: list[Any]


@dataclass
class Report:
    """What an import did or would do."""

    headers: list[str] = field(default_factory=list)
    total: int = 0
    new: int = 0
    updated: int = 0
    file_problems: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    invalid_rows: int = 0
    preview: list[PreviewRow] = field(default_factory=list)
    written: bool = False
    version: int | None = None  # the table's version the rows were checked against
    table_changed: bool = False  # not written: the table is not the one previewed

    @property
    def ok(self) -> bool:
        return not self.file_problems and not self.problem_count

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def describe(self) -> str:
        lines = [p.describe() for p in self.file_problems + self.problems]
        hidden = self.problem_count - len(self.problems)
        if hidden > 0:
            lines.append(_("... and %(count)d more problems.") % {"count": hidden})
        return "\n".join(lines)


# -- one column -------------------------------------------------------------------


class Invalid(tuple):
    """A cell that cannot be stored: (None, None), with the reason why."""

    reason: str

    def __new__(cls, reason: str) -> Invalid:
        invalid = super().__new__(cls, (None, None))
        invalid.reason = reason
        return invalid


class Column:
    """Converts the cells of one file column into one field's stored values."""

    def __init__(
        self,
        header: str,
        index: int,
        model_field: models.Field,
        definition: FieldDefinition | None,
        connection: Any,
    ):
        self.header = header
        self.index = index
        self.field = model_field
        self.definition = definition.frozen() if definition else None
        self.connection = connection
        self.holds_text = isinstance(model_field, (models.CharField, models.TextField))
        # A link's value is a row of another table: checked for all rows at
        # once (see TableImport.check), not with one query per cell.
        self.links_to = model_field.remote_field.model if model_field.many_to_one else None
        self.keeps_floats = isinstance(model_field, models.FloatField)
        self.default = model_field.get_default() if model_field.has_default() else NOT_PROVIDED
        self.convert = self._converter()

    def _converter(self) -> Callable[[Any], tuple[Any, Any]]:
        """convert(cell): (Python value, database value), or an Invalid.

        Built once per column, because it runs once per cell: the plain cells
        of the common types take a shortcut that gives what the definition
        gives (see `fast_converter`); anything else goes through the
        definition itself.
        """
        checked = self.convert_checked
        fast = fast_converter(self.field, self.definition, checked)
        self.has_shortcut = fast is not None
        return fast or checked

    def convert_all(self, cells: list[Any]) -> list[tuple[Any, Any]]:
        """Every cell of the column converted; each distinct text only once
        when the column repeats itself (dates, choices, yes/no...)."""
        # JSON values are mutable: never share one between rows. And only
        # text is grouped: 1, 1.0 and True are one key of a dict.
        # A shortcut costs less than a lookup unless the column repeats a lot;
        # the definition's own conversion always costs more.
        worth_it = not self.has_shortcut or len(set(cells[:1000])) <= 500
        if (
            worth_it
            and not isinstance(self.field, models.JSONField)
            and set(map(type, cells)) <= TEXT_CELLS
        ):
            distinct = dict.fromkeys(cells)
            if not self.has_shortcut or 2 * len(distinct) <= len(cells):
                convert = self.convert
                for cell in distinct:
                    distinct[cell] = convert(cell)
                return list(map(distinct.__getitem__, cells))
        return list(map(self.convert, cells))

    def convert_checked(self, cell: Any) -> tuple[Any, Any]:
        """The definition's conversion of one cell, or an Invalid saying why not."""
        try:
            return self.convert_or_raise(cell)
        except ValidationError as error:
            return Invalid(" ".join(error.messages))

    def convert_or_raise(self, cell: Any) -> tuple[Any, Any]:
        field = self.field
        if isinstance(cell, str):
            if self.holds_text:
                cell = restore_formula(cell)
            marker = cell.strip()
            if not marker or (
                marker.casefold() in NULL_MARKERS and (field.null or not self.holds_text)
            ):
                cell = None
        elif isinstance(cell, float) and not self.keeps_floats:
            # Spreadsheets hold every number as a float: 3.0 is 3, and 0.1 is
            # "0.1" (a decimal field must not see 0.1000000000000000055).
            cell = int(cell) if cell.is_integer() else repr(cell)
        if cell is None:
            value = self.empty_value()
        else:
            try:
                value = self.parse(cell)
            except ValidationError:
                raise
            except (TypeError, ValueError, ArithmeticError) as error:
                raise ValidationError(str(error) or _("Not a valid value.")) from None
        value = self.clean(value)
        if isinstance(value, models.Model):
            value = value.pk
        return value, field.get_db_prep_save(value, self.connection)

    def empty_value(self) -> Any:
        if self.field.null:
            return None
        if self.default is not NOT_PROVIDED:
            return self.default
        if self.holds_text:
            return ""
        if getattr(self.field, "auto_now", False) or getattr(self.field, "auto_now_add", False):
            return timezone.now()
        return None

    def parse(self, cell: Any) -> Any:
        if self.definition is not None:
            return self.definition.parse_value(cell)
        return self.field.to_python(cell)

    def clean(self, value: Any) -> Any:
        if self.links_to is not None:
            if value is None and not self.field.null:
                raise ValidationError(self.field.error_messages["null"], code="null")
            return value
        if self.definition is not None:
            return self.definition.clean_stored_value(value)
        return self.field.clean(value, None)


def _plain_definition(definition: FieldDefinition | None) -> bool:
    """Whether the definition converts values the way the base type does."""
    base = FieldDefinition
    return definition is not None and (
        type(definition).parse_value is base.parse_value
        and type(definition).clean_stored_value is base.clean_stored_value
    )


Converter = Callable[[Any], tuple[Any, Any]]


def fast_converter(
    field: models.Field, definition: FieldDefinition | None, otherwise: Converter
) -> Converter | None:
    """A shortcut for the plain cells of a common field type, or None.

    It converts only the cells whose result is certain: the value that
    `parse_value` then `clean_stored_value` give, whose database value is
    the value itself on every backend. Any other cell (empty, a null marker,
    a value a validator may refuse...) goes to `otherwise`, the definition's
    own conversion, which also says what is wrong with it.
    """
    if not _plain_definition(definition) or field.choices or field.remote_field:
        return None
    validators = field.validators
    kind = type(field)
    if kind in (models.CharField, models.TextField):
        if not all(isinstance(v, MaxLengthValidator) for v in validators):
            return None
        limit = min((v.limit_value for v in validators), default=None)
        nullable = field.null

        def text(cell: Any) -> tuple[Any, Any]:
            if (
                type(cell) is not str
                or not cell
                or cell[0] == "'"
                or cell.isspace()
                or (limit is not None and len(cell) > limit)
                or (nullable and len(cell) < 8 and cell.strip().casefold() in NULL_MARKERS)
            ):
                return otherwise(cell)
            return cell, cell

        return text
    if kind in INTEGER_FIELDS:
        low, high = _bounds(validators)
        if low is None:
            return None

        def whole(cell: Any) -> tuple[Any, Any]:
            if type(cell) is str:
                try:
                    value = int(cell)  # as IntegerField.to_python: spaces and _ allowed
                except ValueError:
                    return otherwise(cell)
            elif type(cell) is int:
                value = cell
            else:
                return otherwise(cell)
            if low <= value <= high:
                return value, value
            return otherwise(cell)

        return whole
    if kind is models.DecimalField:
        if not all(isinstance(v, DecimalValidator) for v in validators):
            return None
        # Text of this shape has few enough digits on either side of the
        # point for every one of the validators: no need to ask them.
        limits = [(v.max_digits, v.decimal_places) for v in validators]
        fits = None
        if limits and all(d is not None and p is not None for d, p in limits):
            whole = min(d - p for d, p in limits)
            places = min(p for _d, p in limits)
            if whole > 0:
                fits = re.compile(rf"[+-]?\d{{1,{whole}}}(?:\.\d{{0,{places}}})?").fullmatch

        def decimal_number(cell: Any) -> tuple[Any, Any]:
            if type(cell) is not str:
                return otherwise(cell)
            try:
                value = Decimal(cell)
                if fits is None or not fits(cell):
                    if not value.is_finite():
                        return otherwise(cell)
                    for validator in validators:
                        validator(value)
            except (ArithmeticError, ValueError, ValidationError):
                return otherwise(cell)
            return value, value

        return decimal_number
    if kind is models.FloatField and not validators:

        def float_number(cell: Any) -> tuple[Any, Any]:
            if type(cell) is str:
                try:
                    value = float(cell)
                except ValueError:
                    return otherwise(cell)
                return value, value
            if type(cell) is float:
                return cell, cell
            return otherwise(cell)

        return float_number
    return None


INTEGER_FIELDS = (
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
)


def _bounds(validators: list[Any]) -> tuple[int | None, int | None]:
    """The range that min/max validators allow, or (None, None) if others run too."""
    low, high = -(2**63), 2**63 - 1
    for validator in validators:
        limit = validator.limit_value
        limit = limit() if callable(limit) else limit
        if type(validator) is MinValueValidator:
            low = max(low, limit)
        elif type(validator) is MaxValueValidator:
            high = min(high, limit)
        else:
            return None, None
    return low, high


# -- the file -----------------------------------------------------------------------


def rows_of(dataset: Any) -> list[Sequence[Any]]:
    """The data rows of a tablib dataset, without copying each one."""
    data = getattr(dataset, "_data", None)
    if data is not None:
        return [getattr(row, "_row", row) for row in data]
    return list(dataset)


class TableImport:
    """One file's rows checked against one version of a table, then written."""

    def __init__(
        self,
        model: type[models.Model],
        dataset: Any,
        *,
        using: str = DEFAULT_DB_ALIAS,
        progress: Progress | None = None,
    ):
        self.model = model
        self.using = using
        self.connection = connections[using]
        self.progress = progress or (lambda phase, done, total: None)
        self.headers = [("" if h is None else str(h)) for h in (dataset.headers or [])]
        self.rows = rows_of(dataset)
        self.report = Report(total=len(self.rows))
        self.pk_column: Column | None = None
        self.columns: list[Column] = []
        self.filled: list[models.Field] = []  # fields missing from the file, filled per row
        self._inserts: list[tuple[Any, ...]] = []
        self._inserts_with_pk: list[tuple[Any, ...]] = []
        self._updates: list[tuple[Any, ...]] = []
        self.checked = False
        self._updated_pks: set[Any] = set()
        self._invalid: set[int] = set()
        definition = ModelDefinition.objects.using(using).get(pk=model._definition_id)
        self.definitions = {d.name: d for d in definition.field_definitions()}
        self.report.version = model._definition_version
        self._map_columns()

    # -- columns ------------------------------------------------------------------

    def _map_columns(self) -> None:
        opts = self.model._meta
        keys: dict[str, models.Field] = {}
        fields = [f for f in opts.concrete_fields if not f.primary_key]
        for f in fields:
            definition = self.definitions.get(f.name)
            names = [f.name, f.attname, str(f.verbose_name)]
            if definition is not None:
                names.append(definition.label)
            for name in names:
                keys.setdefault(name.strip().casefold(), f)
        for name in ("id", "pk", str(opts.pk.verbose_name)):
            keys.setdefault(name.casefold(), opts.pk)
        for f in opts.many_to_many:
            keys.setdefault(f.name.casefold(), f)
            keys.setdefault(str(f.verbose_name).strip().casefold(), f)
        problems = []
        taken: dict[models.Field, str] = {}
        for index, header in enumerate(self.headers):
            key = header.strip().casefold()
            if not key:
                if any(self._cell(row, index) not in (None, "") for row in self.rows):
                    problems.append(
                        Problem(
                            None,
                            None,
                            None,
                            _("Column %(number)d has values but no name in the first row.")
                            % {"number": index + 1},
                        )
                    )
                continue
            model_field = keys.get(key)
            if model_field is None:
                problems.append(
                    Problem(
                        None,
                        header,
                        None,
                        _(
                            "The column %(column)r matches no field of %(table)s. "
                            "Rename it to a field's name or label, or remove it."
                        )
                        % {"column": header, "table": opts.verbose_name},
                    )
                )
                continue
            if model_field.many_to_many:
                problems.append(
                    Problem(
                        None,
                        header,
                        None,
                        _(
                            "The column %(column)r links to several rows, "
                            "which a file cannot fill yet."
                        )
                        % {"column": header},
                    )
                )
                continue
            if model_field in taken:
                problems.append(
                    Problem(
                        None,
                        header,
                        None,
                        _("The columns %(first)r and %(second)r both fill the field %(field)s.")
                        % {
                            "first": taken[model_field],
                            "second": header,
                            "field": model_field.name,
                        },
                    )
                )
                continue
            taken[model_field] = header
            column = Column(
                header, index, model_field, self.definitions.get(model_field.name), self.connection
            )
            if model_field.primary_key:
                self.pk_column = column
            else:
                self.columns.append(column)
        for f in fields:
            if f in taken:
                continue
            column = Column(f.name, -1, f, self.definitions.get(f.name), self.connection)
            try:
                column.clean(column.empty_value())
            except ValidationError:
                problems.append(
                    Problem(
                        None,
                        f.name,
                        None,
                        _(
                            "The file has no column for %(field)s, which must have a value. "
                            "Add the column, or give the field a default."
                        )
                        % {
                            "field": self.definitions[f.name].label
                            if f.name in self.definitions
                            else f.name
                        },
                    )
                )
                continue
            self.filled.append(f)
        self.report.file_problems += problems
        self.report.headers = ([self.pk_column.header] if self.pk_column else []) + [
            c.header for c in self.columns
        ]

    def raw_cells(self, number: int) -> tuple[Any, ...]:
        """The cells of row `number` (1: the first under the column names) that
        fill fields, in the order of the report's headers."""
        row = self.rows[number - 1]
        columns = ([self.pk_column] if self.pk_column else []) + self.columns
        return tuple(self._cell(row, c.index) for c in columns)

    @staticmethod
    def _cell(row: Sequence[Any], index: int) -> Any:
        return row[index] if index < len(row) else None

    def _fill_values(self) -> list[Any]:
        values = []
        for f in self.filled:
            column = Column(f.name, -1, f, None, self.connection)
            value = column.empty_value()
            values.append(f.get_db_prep_save(value, self.connection))
        return values

    # -- checking -----------------------------------------------------------------------

    def check(self) -> Report:
        """Convert and check every cell; the report lists every problem."""
        with gc_paused():
            return self._check()

    def _check(self) -> Report:
        report = self.report
        self.checked = True
        if report.file_problems:
            return report
        rows = self.rows
        total = len(rows)
        steps = len(self.columns) + 1
        pks = self._check_pks() if self.pk_column is not None else None
        # Column by column: map() runs each column's converter over its cells
        # without a Python loop per cell.
        stored: list[list[Any]] = []
        values: dict[Column, list[Any]] = {}  # for the checks across rows
        shown: dict[Column, list[Any]] = {}  # for the preview
        for step, column in enumerate(self.columns, 1):
            results = column.convert_all(list(map(itemgetter(column.index), rows)))
            if Invalid in set(map(type, results)):
                for number, result in enumerate(results, 1):
                    if type(result) is Invalid:
                        cell = rows[number - 1][column.index]
                        self._fail(number, column.header, cell, result.reason)
            if column.field.unique or column.links_to is not None:
                values[column] = list(map(itemgetter(0), results))
            shown[column] = [value for value, _stored in results[:PREVIEW_ROWS]]
            stored.append(list(map(itemgetter(1), results)))
            self.progress("checking", total * step // steps, total)
        for column in self.columns:
            if column.field.unique:
                self._check_unique(column, values[column])
        self._plan_rows(pks, stored)
        for column in self.columns:
            if column.field.unique:
                self._check_unique_against_table(column, values[column])
            if column.links_to is not None:
                self._check_links(column, values[column])
        self._preview(pks, shown)
        report.invalid_rows = len(self._invalid)
        report.problems.sort(key=lambda p: p.row or 0)
        self.progress("checking", total, total)
        return report

    def _fail(self, number: int, column: str, value: Any, reason: str) -> None:
        self._invalid.add(number)
        self.report.add(Problem(number, column, value, reason))

    def _check_pks(self) -> list[Any]:
        """Each row's id (None: a new row); rows with a bad or repeated id fail."""
        column = self.pk_column
        pks = []
        first: dict[Any, int] = {}
        for number, row in enumerate(self.rows, 1):
            cell = row[column.index]
            try:
                pk = self._convert_pk(cell)
            except ValidationError as error:
                self._fail(number, column.header, cell, " ".join(error.messages))
                pk = None
            if pk is not None and first.setdefault(pk, number) != number:
                self._fail(
                    number,
                    column.header,
                    cell,
                    _("the same id as row %(row)d") % {"row": first[pk]},
                )
            pks.append(pk)
        return pks

    def _check_unique(self, column: Column, values: list[Any]) -> None:
        first: dict[Any, int] = {}
        for number, value in enumerate(values, 1):
            if value is None:
                continue
            earlier = first.setdefault(value, number)
            if earlier != number:
                self._fail(
                    number,
                    column.header,
                    self.rows[number - 1][column.index],
                    _("the same value as row %(row)d, and the field must be unique")
                    % {"row": earlier},
                )

    def _convert_pk(self, cell: Any) -> Any:
        if isinstance(cell, str):
            cell = cell.strip()
        elif isinstance(cell, float) and cell.is_integer():
            cell = int(cell)
        if cell in (None, ""):
            return None
        return self.pk_column.field.to_python(cell)

    def _plan_rows(self, pks: list[Any] | None, stored: list[list[Any]]) -> None:
        """Sort the rows into inserts and updates (rows whose id is in the table)."""
        fill = self._fill_values()
        if stored:
            # zip stops with the columns; the fill values repeat for every row.
            rows = list(zip(*stored, *map(repeat, fill), strict=False))
        else:
            rows = [tuple(fill)] * len(self.rows)
        if pks is None:
            self._inserts = rows
            self.report.new = len(rows)
            return
        existing: set[Any] = set()
        given = [pk for pk in pks if pk is not None]
        manager = self.model._base_manager.using(self.using)
        for start in range(0, len(given), 500):
            existing.update(
                manager.filter(pk__in=given[start : start + 500]).values_list("pk", flat=True)
            )
        width = len(stored)
        for pk, row in zip(pks, rows, strict=True):
            if pk is None:
                self._inserts.append(row)
            elif pk in existing:
                self._updates.append((*row[:width], pk))
            else:
                self._inserts_with_pk.append((pk, *row))
        self._updated_pks = {u[-1] for u in self._updates}
        self.report.updated = len(self._updates)
        self.report.new = len(self._inserts) + len(self._inserts_with_pk)

    def _preview(self, pks: list[Any] | None, shown: dict[Column, list[Any]]) -> None:
        """The first rows, as the fields will hold them (if every row is valid)."""
        if not self.report.ok:
            return
        for index in range(min(PREVIEW_ROWS, len(self.rows))):
            pk = pks[index] if pks is not None else None
            row = [shown[c][index] for c in self.columns]
            self.report.preview.append(
                PreviewRow(
                    index + 1,
                    pk not in self._updated_pks,
                    ([pk] if pks is not None else []) + row,
                )
            )

    def _check_unique_against_table(self, column: Column, values: list[Any]) -> None:
        rows_by_value: dict[Any, int] = {}
        for number, value in enumerate(values, 1):
            if value is not None:
                rows_by_value.setdefault(value, number)
        manager = self.model._base_manager.using(self.using)
        name = column.field.name
        distinct = list(rows_by_value)
        for start in range(0, len(distinct), 500):
            clashes = (
                manager.filter(**{f"{name}__in": distinct[start : start + 500]})
                .exclude(pk__in=self._updated_pks)
                .values_list(name, "pk")
            )
            for value, pk in clashes:
                self._fail(
                    rows_by_value[value],
                    column.header,
                    value,
                    _("row %(pk)s of the table already has this value, which must be unique")
                    % {"pk": pk},
                )

    def _check_links(self, column: Column, values: list[Any]) -> None:
        """Every linked row must exist (one query per 500 values, not per cell)."""
        rows_by_value: dict[Any, list[int]] = {}
        for number, value in enumerate(values, 1):
            if value is not None:
                rows_by_value.setdefault(value, []).append(number)
        target = column.links_to._base_manager.using(self.using)
        distinct = list(rows_by_value)
        found: set[Any] = set()
        for start in range(0, len(distinct), 500):
            found.update(
                target.filter(pk__in=distinct[start : start + 500]).values_list("pk", flat=True)
            )
        for value in distinct:
            if value in found:
                continue
            for number in rows_by_value[value]:
                self._fail(
                    number,
                    column.header,
                    value,
                    _("%(table)s has no row %(pk)s")
                    % {"table": column.links_to._meta.verbose_name, "pk": value},
                )

    # -- writing ------------------------------------------------------------------------

    def write(self) -> Report:
        """Write every checked row in one transaction; nothing if any is invalid."""
        if not self.checked:
            self.check()
        report = self.report
        if not report.ok:
            return report
        opts = self.model._meta
        qn = self.connection.ops.quote_name
        table = qn(opts.db_table)
        columns = [c.field.column for c in self.columns] + [f.column for f in self.filled]
        total = len(self._inserts) + len(self._inserts_with_pk) + len(self._updates)
        done = 0
        with transaction.atomic(using=self.using):
            with self.connection.cursor() as cursor:
                if self._updates:
                    assignments = ", ".join(f"{qn(c.field.column)} = %s" for c in self.columns)
                    # Quoted names from the definitions; the values are parameters.
                    sql = f"UPDATE {table} SET {assignments} WHERE {qn(opts.pk.column)} = %s"  # noqa: S608
                    for batch in _batches(self._updates):
                        cursor.executemany(sql, batch)
                        done += len(batch)
                        self.progress("writing", done, total)
                for rows, names in (
                    (self._inserts_with_pk, [opts.pk.column, *columns]),
                    (self._inserts, columns),
                ):
                    if rows:
                        done = self._insert(cursor, table, names, rows, done, total)
                if self._inserts_with_pk:
                    for sql in self.connection.ops.sequence_reset_sql(no_style(), [self.model]):
                        cursor.execute(sql)
        report.written = True
        self.progress("writing", total, total)
        return report

    def _column_types(self, cursor, names: list[str]) -> list[int]:
        """The PostgreSQL type (oid) of each of the table's columns `names`."""
        cursor.execute(
            "SELECT attname, atttypid FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [self.connection.ops.quote_name(self.model._meta.db_table)],
        )
        types = dict(cursor.fetchall())
        return [types[name] for name in names]

    def _insert(self, cursor, table: str, names: list[str], rows, done: int, total: int) -> int:
        qn = self.connection.ops.quote_name
        column_list = ", ".join(qn(n) for n in names)
        if self.connection.vendor == "postgresql":
            # Binary COPY, each value in its column's own type: no text to
            # format here and parse on the server.
            types = self._column_types(cursor, names)  # before COPY holds the connection
            sql = f"COPY {table} ({column_list}) FROM STDIN (FORMAT BINARY)"
            with cursor.cursor.copy(sql) as copy:
                copy.set_types(types)
                for index, row in enumerate(rows, 1):
                    copy.write_row(row)
                    if index % BATCH_ROWS == 0:
                        self.progress("writing", done + index, total)
            return done + len(rows)
        if not names:
            sql = f"INSERT INTO {table} DEFAULT VALUES"
            for _row in rows:
                cursor.execute(sql)
            return done + len(rows)
        placeholders = ", ".join(["%s"] * len(names))
        sql = f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})"  # noqa: S608
        for batch in _batches(rows):
            cursor.executemany(sql, batch)
            done += len(batch)
            self.progress("writing", done, total)
        return done


def _batches(rows: list[Any], size: int = BATCH_ROWS) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
