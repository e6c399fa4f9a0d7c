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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models.fields import NOT_PROVIDED
from django.utils import timezone
from django.utils.translation import gettext as _

from builder.formats import restore_formula
from mutant.models import FieldDefinition, ModelDefinition

logger = logging.getLogger(__name__)

NULL_MARKERS = frozenset({"na", "n/a", "null"})
"""Cells that mean "no value" in a field that may be empty (case-insensitive)."""

PREVIEW_ROWS = 20
MAX_PROBLEMS = 1000
"""Problems kept for the report; the count goes on beyond it."""

BATCH_ROWS = 2000
MEMO_SIZE = 20_000

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


class FileError(Exception):
    """The file as a whole cannot be imported (see `problems`)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(p.describe() for p in problems))


# -- one column -------------------------------------------------------------------


def _with_fields_built_once(definition: FieldDefinition) -> FieldDefinition:
    """The definition with its Django fields built once, not on every call.

    `parse_value` and `clean_stored_value` build a Django field per call,
    which is most of their cost; the definition here is this import's own
    copy, read from the database for it, so pinning them is safe.
    """
    plain, full = definition.plain_field(), definition.construct_field()
    definition.plain_field = lambda: plain
    definition.construct_field = lambda: full
    return definition


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
        self.definition = _with_fields_built_once(definition) if definition else None
        self.connection = connection
        self.holds_text = isinstance(model_field, (models.CharField, models.TextField))
        # A link's value is a row of another table: checked for all rows at
        # once (see TableImport.check), not with one query per cell.
        self.links_to = model_field.remote_field.model if model_field.many_to_one else None
        self.keeps_floats = isinstance(model_field, models.FloatField)
        self.default = model_field.get_default() if model_field.has_default() else NOT_PROVIDED
        # JSON values are mutable: never share one between rows.
        self.memo: dict[str, tuple[Any, Any]] | None = (
            None if isinstance(model_field, models.JSONField) else {}
        )

    def convert(self, cell: Any) -> tuple[Any, Any]:
        """(Python value, database value) of one cell; ValidationError if invalid."""
        memo = self.memo
        if memo is not None and type(cell) is str:
            hit = memo.get(cell)
            if hit is not None:
                return hit
            converted = self._convert(cell)
            if len(memo) < MEMO_SIZE:
                memo[cell] = converted
            return converted
        return self._convert(cell)

    def _convert(self, cell: Any) -> tuple[Any, Any]:
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
        self._inserts: list[list[Any]] = []
        self._inserts_with_pk: list[list[Any]] = []
        self._updates: list[list[Any]] = []
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
        report = self.report
        self.checked = True
        if report.file_problems:
            return report
        total = len(self.rows)
        fill = self._fill_values()
        columns = self.columns
        unique = [c for c in columns if c.field.unique]
        links = [c for c in columns if c.links_to is not None]
        seen: dict[Column, dict[Any, int]] = {c: {} for c in unique}
        linked: dict[Column, dict[Any, list[int]]] = {c: {} for c in links}
        pk_column = self.pk_column
        explicit_pks: dict[Any, int] = {}
        pk_rows: list[tuple[int, Any, list[Any]]] = []
        for number, row in enumerate(self.rows, 1):
            bad = False
            pk = None
            if pk_column is not None:
                cell = row[pk_column.index] if pk_column.index < len(row) else None
                try:
                    pk = self._convert_pk(cell)
                except ValidationError as error:
                    bad = True
                    report.add(Problem(number, pk_column.header, cell, " ".join(error.messages)))
                else:
                    first = explicit_pks.setdefault(pk, number) if pk is not None else number
                    if first != number:
                        bad = True
                        report.add(
                            Problem(
                                number,
                                pk_column.header,
                                cell,
                                _("the same id as row %(row)d") % {"row": first},
                            )
                        )
            values = []
            python_values = [pk] if pk_column is not None else []
            for column in columns:
                cell = row[column.index] if column.index < len(row) else None
                try:
                    value, db_value = column.convert(cell)
                except ValidationError as error:
                    bad = True
                    report.add(Problem(number, column.header, cell, " ".join(error.messages)))
                    continue
                values.append(db_value)
                python_values.append(value)
                if column in linked and value is not None:
                    linked[column].setdefault(value, []).append(number)
                if column in seen and value is not None:
                    first = seen[column].setdefault(value, number)
                    if first != number:
                        bad = True
                        report.add(
                            Problem(
                                number,
                                column.header,
                                cell,
                                _("the same value as row %(row)d, and the field must be unique")
                                % {"row": first},
                            )
                        )
            if number % BATCH_ROWS == 0:
                self.progress("checking", number, total)
            if bad:
                self._invalid.add(number)
                continue
            values += fill
            if len(report.preview) < PREVIEW_ROWS:
                report.preview.append(PreviewRow(number, True, python_values))
            if pk is None:
                self._inserts.append(values)
            else:
                pk_rows.append((number, pk, values))
        self._sort_explicit_pks(pk_rows)
        self._check_unique_against_table(unique, seen)
        self._check_links(linked)
        report.invalid_rows = len(self._invalid)
        self.progress("checking", total, total)
        return report

    def _convert_pk(self, cell: Any) -> Any:
        if isinstance(cell, str):
            cell = cell.strip()
        elif isinstance(cell, float) and cell.is_integer():
            cell = int(cell)
        if cell in (None, ""):
            return None
        return self.pk_column.field.to_python(cell)

    def _sort_explicit_pks(self, pk_rows: list[tuple[int, Any, list[Any]]]) -> None:
        """Rows whose id is in the table update it; the others insert with their id."""
        existing: set[Any] = set()
        pks = [pk for _n, pk, _v in pk_rows]
        manager = self.model._base_manager.using(self.using)
        for start in range(0, len(pks), 500):
            existing.update(
                manager.filter(pk__in=pks[start : start + 500]).values_list("pk", flat=True)
            )
        updated_rows = set()
        for number, pk, values in pk_rows:
            if pk in existing:
                self._updates.append([*values[: len(self.columns)], pk])
                updated_rows.add(number)
            else:
                self._inserts_with_pk.append([pk, *values])
        for preview in self.report.preview:
            if preview.number in updated_rows:
                preview.new = False
        self.report.updated = len(self._updates)
        self.report.new = len(self._inserts) + len(self._inserts_with_pk)
        self._updated_pks = {u[-1] for u in self._updates}

    def _check_unique_against_table(
        self, unique: list[Column], seen: dict[Column, dict[Any, int]]
    ) -> None:
        manager = self.model._base_manager.using(self.using)
        for column in unique:
            values = list(seen[column])
            name = column.field.name
            for start in range(0, len(values), 500):
                clashes = (
                    manager.filter(**{f"{name}__in": values[start : start + 500]})
                    .exclude(pk__in=self._updated_pks)
                    .values_list(name, "pk")
                )
                for value, pk in clashes:
                    self._invalid.add(seen[column][value])
                    self.report.add(
                        Problem(
                            seen[column][value],
                            column.header,
                            value,
                            _(
                                "row %(pk)s of the table already has this value, "
                                "which must be unique"
                            )
                            % {"pk": pk},
                        )
                    )

    def _check_links(self, linked: dict[Column, dict[Any, list[int]]]) -> None:
        """Every linked row must exist (one query per 500 values, not per cell)."""
        for column, rows_by_value in linked.items():
            values = list(rows_by_value)
            target = column.links_to._base_manager.using(self.using)
            found: set[Any] = set()
            for start in range(0, len(values), 500):
                found.update(
                    target.filter(pk__in=values[start : start + 500]).values_list("pk", flat=True)
                )
            for value in values:
                if value in found:
                    continue
                for number in rows_by_value[value]:
                    self._invalid.add(number)
                    self.report.add(
                        Problem(
                            number,
                            column.header,
                            value,
                            _("%(table)s has no row %(pk)s")
                            % {"table": column.links_to._meta.verbose_name, "pk": value},
                        )
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

    def _insert(self, cursor, table: str, names: list[str], rows, done: int, total: int) -> int:
        qn = self.connection.ops.quote_name
        column_list = ", ".join(qn(n) for n in names)
        if self.connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
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
