"""Schema changes: the definition rows say what a table is; the DDL follows.

A change opens the schema editor's transaction, lets the caller edit
definition rows, then compares the table as the rows described it before
with what they describe now. The difference becomes Django's own migration
operations (CreateModel, AddField, RenameField, AlterField, ...), run with
`database_forwards` between two ProjectStates, so every backend gets its own
DDL (SQLite's table rebuilds included). Stored values that a change would
lose are checked first: the change is refused, or only reported in a dry run.
The version bump, the rows and the DDL commit together or not at all.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.migrations import operations as ops
from django.db.migrations.state import ModelState, ProjectState
from django.db.models import F
from django.utils.translation import gettext as _

from mutant import classes, signals
from mutant.errors import ChangeReport, DataLossError, FieldReport, RowProblem, SchemaError
from mutant.models.definitions import APP_LABEL, FieldDefinition, ModelDefinition

if TYPE_CHECKING:
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor

logger = logging.getLogger(__name__)

_active = threading.local()


# -- what the rows describe -----------------------------------------------------


@dataclass(frozen=True)
class FieldState:
    pk: int
    name: str
    field_type: str
    definition: FieldDefinition

    def field(self) -> models.Field:
        return self.definition.construct_field()

    def signature(self) -> tuple:
        return self.field_type, self.name, self.field().deconstruct()[1:]


@dataclass(frozen=True)
class TableState:
    """One table as its definition rows describe it at one moment."""

    pk: int
    object_name: str
    fields: tuple[FieldState, ...]
    meta: tuple

    @classmethod
    def load(cls, pk: int | None) -> TableState | None:
        definition = ModelDefinition.objects.filter(pk=pk).first() if pk else None
        if definition is None:
            return None
        return cls(
            pk=definition.pk,
            object_name=definition.object_name,
            fields=tuple(
                FieldState(d.pk, d.name, d.field_type, d) for d in definition.field_definitions()
            ),
            meta=(
                definition.verbose_name,
                definition.verbose_name_plural,
                definition.description,
            ),
        )

    def model_state(self) -> ModelState:
        fields = [
            (
                "id",
                models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                ),
            )
        ]
        fields += [(f.name, f.field()) for f in self.fields]
        return ModelState(APP_LABEL, self.object_name, fields)

    def by_pk(self) -> dict[int, FieldState]:
        return {f.pk: f for f in self.fields}

    def signature(self) -> tuple:
        return (
            self.object_name,
            self.meta,
            tuple((f.pk, f.signature()) for f in self.fields),
        )


# -- running operations ---------------------------------------------------------


class Migrator:
    """Runs Django migration operations on one table, keeping the state in step."""

    def __init__(self, editor: BaseDatabaseSchemaEditor, before: TableState | None):
        self.editor = editor
        self.state = ProjectState()
        if before is not None:
            self.state.add_model(before.model_state())

    def run(self, operation: ops.base.Operation) -> None:
        new_state = self.state.clone()
        operation.state_forwards(APP_LABEL, new_state)
        operation.database_forwards(APP_LABEL, self.editor, self.state, new_state)
        logger.info("%s", operation.describe())
        self.state = new_state

    def model(self, name: str) -> type[models.Model]:
        return self.state.apps.get_model(APP_LABEL, name)


# -- checking stored values -----------------------------------------------------


class ValueCheck:
    """Reads one column and checks (or converts) every stored value."""

    # Options whose change can make stored values invalid.
    CONSTRAINING = {
        "null",
        "unique",
        "max_length",
        "choices",
        "max_digits",
        "decimal_places",
        "protocol",
    }

    def __init__(self, model: type[models.Model], old: FieldState, new: FieldState):
        self.model = model
        self.old = old
        self.new = new
        self.converted: list[tuple[Any, Any]] = []

    @classmethod
    def needed(cls, old: FieldState, new: FieldState) -> bool:
        if old.field_type != new.field_type:
            return True
        old_kwargs = old.field().deconstruct()[3]
        new_kwargs = new.field().deconstruct()[3]
        return any(old_kwargs.get(k) != new_kwargs.get(k) for k in cls.CONSTRAINING)

    def run(self, report: ChangeReport) -> None:
        retyped = self.old.field_type != self.new.field_type
        action = (
            _("change its type to %(type)s") % {"type": self.new.definition._meta.verbose_name}
            if retyped
            else _("change its options")
        )
        result = FieldReport(field=self.new.definition.label, action=action)
        target = self.new.definition
        field = target.construct_field()
        rows = self.model._base_manager.order_by("pk").values_list("pk", self.old.name)
        seen: Counter = Counter()
        first_pk: dict[Any, Any] = {}
        for pk, value in rows.iterator(chunk_size=2000):
            result.total += 1
            try:
                if retyped:
                    new_value = target.convert_value(value, self.old.definition)
                else:
                    new_value = target.clean_stored_value(value)
            except ValidationError as error:
                result.add_problem(RowProblem(pk, value, " ".join(error.messages)))
                continue
            if retyped:
                self.converted.append((pk, new_value))
                if len(result.examples) < 5 and value is not None:
                    result.examples.append((value, new_value))
            if field.unique and new_value is not None:
                key = new_value if isinstance(new_value, Hashable) else repr(new_value)
                if seen[key]:
                    result.add_problem(
                        RowProblem(
                            pk,
                            value,
                            _("the same value as row %(pk)s, and the field must be unique")
                            % {"pk": first_pk[key]},
                        )
                    )
                else:
                    first_pk[key] = pk
                seen[key] += 1
        report.fields.append(result)


def check_added(
    model: type[models.Model],
    new: FieldState,
    editor: BaseDatabaseSchemaEditor,
    report: ChangeReport,
) -> None:
    """A new column must have a value for the rows already there."""
    field = new.field()
    pks = list(model._base_manager.order_by("pk").values_list("pk", flat=True)[:6])
    if not pks:
        return
    total = model._base_manager.count()
    result = FieldReport(field=new.definition.label, action=_("add it"), total=total)
    default = editor.effective_default(field)
    if default is None and not field.null:
        reason = _("no value: allow empty values or give a default")
        for pk in pks[:5]:
            result.add_problem(RowProblem(pk, None, reason))
        result.problem_count = total
    elif field.unique and default is not None and total > 1:
        reason = _("every row would get the same default, and the field must be unique")
        for pk in pks[1:6]:
            result.add_problem(RowProblem(pk, default, reason))
        result.problem_count = total - 1
    report.fields.append(result)


# -- the change -----------------------------------------------------------------


class SchemaChange:
    """One schema operation on one table: rows edited inside, DDL derived on exit."""

    def __init__(self, definition: ModelDefinition, *, dry_run: bool = False):
        self.definition = definition
        self.dry_run = dry_run
        self.report = ChangeReport()
        self.using = definition._state.db or DEFAULT_DB_ALIAS
        self.before: TableState | None = None
        self.editor: BaseDatabaseSchemaEditor | None = None

    @classmethod
    def for_definition(cls, definition: ModelDefinition, *, dry_run: bool = False):
        """The change already open on this table in this thread, or a new one."""
        for change in getattr(_active, "changes", []):
            if change.definition is definition or (
                definition.pk and change.definition.pk == definition.pk
            ):
                if dry_run and not change.dry_run:
                    raise SchemaError(_("A dry run cannot be nested in a real change."))
                return _Joined(change)
        return cls(definition, dry_run=dry_run)

    def __enter__(self) -> SchemaChange:
        connection = connections[self.using]
        if connection.vendor == "sqlite" and connection.in_atomic_block:
            raise SchemaError(
                _(
                    "Tables cannot be changed inside a transaction on SQLite: "
                    "run the change outside transaction.atomic()."
                )
            )
        self.editor = connection.schema_editor(atomic=True)
        self.editor.__enter__()
        try:
            if connection.vendor == "postgresql":
                # An ALTER TABLE stuck behind a long transaction would queue
                # every reader of the table behind it: give up instead.
                timeout_ms = int(settings.MUTANT_DDL_LOCK_TIMEOUT * 1000)
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = {timeout_ms}")
            self.before = TableState.load(self.definition.pk)
        except BaseException as error:
            self.editor.__exit__(type(error), error, error.__traceback__)
            raise
        _active.changes = [*getattr(_active, "changes", []), self]
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        _active.changes = [c for c in _active.changes if c is not self]
        if exc_type is None:
            try:
                self._apply()
            except _DryRun as stop:
                self.editor.__exit__(_DryRun, stop, None)
                return False
            except BaseException as error:
                self.editor.__exit__(type(error), error, error.__traceback__)
                raise
        self.editor.__exit__(exc_type, exc, tb)
        if exc_type is None and self.definition.pk:
            classes.forget(self.definition.pk)
        if exc_type is None and self.before is not None and self.definition.pk is None:
            classes.forget(self.before.pk)
        return False

    def _apply(self) -> None:
        pk = self.definition.pk or (self.before.pk if self.before else None)
        after = TableState.load(pk)
        before = self.before
        if before is not None and after is not None:
            if before.signature() == after.signature():
                if self.dry_run:
                    raise _DryRun
                return
        plan = Plan(self.editor, before, after)
        plan.check(self.report)
        if self.dry_run:
            raise _DryRun
        if not self.report.ok:
            raise DataLossError(self.report)
        plan.apply()
        if after is None:
            signals.table_deleted.send(
                ModelDefinition, pk=before.pk, object_name=before.object_name
            )
            return
        ModelDefinition.objects.filter(pk=after.pk).update(version=F("version") + 1)
        self.definition.version = (
            ModelDefinition.objects.filter(pk=after.pk).values_list("version", flat=True).get()
        )
        if before is None:
            signals.table_created.send(ModelDefinition, definition=self.definition)
        elif before.object_name != after.object_name:
            signals.table_renamed.send(
                ModelDefinition,
                definition=self.definition,
                old_object_name=before.object_name,
            )
        signals.table_changed.send(ModelDefinition, definition=self.definition, report=self.report)


class _Joined:
    """A nested `batch()`: its changes belong to the change already open."""

    def __init__(self, change: SchemaChange):
        self.change = change

    def __enter__(self) -> SchemaChange:
        return self.change

    def __exit__(self, *exc_info) -> bool:
        return False


class _DryRun(Exception):
    """Rolls a dry run back."""


class Plan:
    """The operations that take a table from `before` to `after`."""

    def __init__(
        self,
        editor: BaseDatabaseSchemaEditor,
        before: TableState | None,
        after: TableState | None,
    ):
        self.editor = editor
        self.before = before
        self.after = after
        self.migrator = Migrator(editor, before)
        self.checks: list[ValueCheck] = []
        old = before.by_pk() if before else {}
        new = after.by_pk() if after else {}
        self.removed = [old[pk] for pk in old if pk not in new]
        self.added = [new[pk] for pk in new if pk not in old]
        kept = [(old[pk], new[pk]) for pk in new if pk in old]
        self.retyped = [(o, n) for o, n in kept if o.field_type != n.field_type]
        self.renamed = [
            (o, n) for o, n in kept if o.field_type == n.field_type and o.name != n.name
        ]
        self.altered = [
            (o, n)
            for o, n in kept
            if o.field_type == n.field_type
            and o.field().deconstruct()[3] != n.field().deconstruct()[3]
        ]

    def check(self, report: ChangeReport) -> None:
        if self.before is None or self.after is None:
            return
        model = self.migrator.model(self.before.object_name)
        for old, new in self.retyped + self.altered:
            if ValueCheck.needed(old, new):
                check = ValueCheck(model, old, new)
                check.run(report)
                self.checks.append(check)
        for new in self.added:
            check_added(model, new, self.editor, report)

    def apply(self) -> None:
        before, after, run = self.before, self.after, self.migrator.run
        if before is None and after is not None:
            state = after.model_state()
            run(ops.CreateModel(state.name, list(state.fields.items())))
            return
        if after is None:
            run(ops.DeleteModel(before.object_name))
            return
        name = before.object_name
        if after.object_name != name:
            run(ops.RenameModel(name, after.object_name))
            name = after.object_name
        for old in self.removed:
            run(ops.RemoveField(name, old.name))
        self._rename(name)
        for _old, new in self.altered:
            run(ops.AlterField(name, new.name, new.field()))
        for old, new in self.retyped:
            self._retype(name, old, new)
        for new in self.added:
            run(ops.AddField(name, new.name, new.field()))

    def _rename(self, model_name: str) -> None:
        current = {f.name for f in self.before.fields} - {f.name for f in self.removed}
        staying = current - {old.name for old, _new in self.renamed}
        for _old, new in self.renamed:
            if new.name in staying:
                raise SchemaError(
                    _("Two fields cannot both be named %(name)s.") % {"name": new.name}
                )
        # Two fields may swap names: move the ones whose name is wanted aside.
        wanted = {new.name for _old, new in self.renamed}
        moves = []
        for old, new in self.renamed:
            source = old.name
            if source in wanted:
                aside = f"mutant_rename_{old.pk}"
                self.migrator.run(ops.RenameField(model_name, source, aside))
                source = aside
            moves.append((source, new.name))
        for source, target in moves:
            self.migrator.run(ops.RenameField(model_name, source, target))

    def _retype(self, model_name: str, old: FieldState, new: FieldState) -> None:
        """Change a column's type through a new column filled in Python.

        The values were converted (and checked) in Python, so the database
        stores exactly what the check reported, on every backend.
        """
        check = next(c for c in self.checks if c.new.pk == new.pk)
        scratch = f"mutant_retype_{new.pk}"
        target = new.field()
        name, path, args, kwargs = target.deconstruct()
        kwargs.update(null=True, unique=False, db_index=False)
        kwargs.pop("default", None)
        loose = type(target)(*args, **kwargs)
        run = self.migrator.run
        run(ops.AddField(model_name, scratch, loose))
        model = self.migrator.model(model_name)
        column = model._meta.get_field(scratch)
        connection = self.editor.connection
        qn = connection.ops.quote_name
        table, pk_column = qn(model._meta.db_table), qn(model._meta.pk.column)
        sql = f"UPDATE {table} SET {qn(column.column)} = %s WHERE {pk_column} = %s"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.executemany(
                sql,
                [
                    (column.get_db_prep_save(value, connection), pk)
                    for pk, value in check.converted
                    if value is not None
                ],
            )
        run(ops.RemoveField(model_name, old.name))
        run(ops.RenameField(model_name, scratch, new.name))
        run(ops.AlterField(model_name, new.name, target))
