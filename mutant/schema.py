"""Schema changes: the definition rows say what the tables are; the DDL follows.

A change opens the schema editor's transaction, lets the caller edit
definition rows, then compares the tables as the rows described them before
with what they describe now. The difference becomes Django's own migration
operations (CreateModel, AddField, RenameField, AlterField, ...), run with
`database_forwards` between ProjectStates, so every backend gets its own DDL
(SQLite's table rebuilds included). Stored values that a change would lose
are checked first: the change is refused, or only reported in a dry run. The
rows, the DDL and the version bumps commit together or not at all.

A change covers a table's whole linked group (`mutant.graph`): links are
columns of one table that depend on another, and every class in the group
holds the others' classes, so the group changes, and is rebuilt, as one.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.migrations import operations as ops
from django.db.migrations.state import ModelState, ProjectState
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from mutant import classes, graph, history, locks, signals, trash
from mutant.errors import ChangeReport, DataLossError, FieldReport, RowProblem, SchemaError
from mutant.models.definitions import APP_LABEL, FieldDefinition, ModelDefinition

if TYPE_CHECKING:
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor

logger = logging.getLogger(__name__)

_active = threading.local()


# -- what the rows describe -----------------------------------------------------


@dataclass(frozen=True)
class FieldState:
    """One field as its definition described it when loaded (built eagerly:
    a link's target may be renamed later in the same change)."""

    pk: int
    name: str
    field_type: str
    definition: FieldDefinition
    built: models.Field
    targets: frozenset[int]

    @classmethod
    def of(cls, definition: FieldDefinition) -> FieldState:
        return cls(
            definition.pk,
            definition.name,
            definition.field_type,
            definition,
            definition.construct_field(),
            frozenset(definition.target_pks()),
        )

    def field(self) -> models.Field:
        """A new, unbound copy of the field."""
        return self.built.clone()

    def kwargs(self) -> dict[str, Any]:
        return self.built.deconstruct()[3]

    @property
    def is_relation(self) -> bool:
        return self.definition.is_relation

    @property
    def many_to_many(self) -> bool:
        return bool(self.built.many_to_many)

    def signature(self) -> tuple:
        return self.field_type, self.name, self.built.deconstruct()[1:]


@dataclass(frozen=True)
class TableState:
    """One table as its definition rows describe it at one moment."""

    pk: int
    object_name: str
    fields: tuple[FieldState, ...]
    meta: tuple

    @classmethod
    def of(cls, definition: ModelDefinition) -> TableState:
        return cls(
            pk=definition.pk,
            object_name=definition.object_name,
            fields=tuple(FieldState.of(d) for d in definition.field_definitions()),
            meta=(
                definition.verbose_name,
                definition.verbose_name_plural,
                definition.description,
            ),
        )

    def model_state(self, relations: bool = True) -> ModelState:
        fields = [
            (
                "id",
                models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                ),
            )
        ]
        fields += [(f.name, f.field()) for f in self.fields if relations or not f.is_relation]
        return ModelState(APP_LABEL, self.object_name, fields)

    def by_pk(self) -> dict[int, FieldState]:
        return {f.pk: f for f in self.fields}

    def static_apps(self) -> set[str]:
        return {
            f.definition.to_model.split(".")[0]
            for f in self.fields
            if f.is_relation and not f.targets
        }

    def signature(self) -> tuple:
        return (
            self.object_name,
            self.meta,
            tuple((f.pk, f.signature()) for f in self.fields),
        )


def load_tables(pks: Iterable[int]) -> dict[int, TableState]:
    """The tables among `pks` that exist, as their rows describe them now."""
    return {d.pk: TableState.of(d) for d in ModelDefinition.objects.filter(pk__in=list(pks))}


# -- running operations ---------------------------------------------------------


class Migrator:
    """Runs Django migration operations on user tables, keeping the state in step."""

    def __init__(
        self,
        editor: BaseDatabaseSchemaEditor,
        tables: Iterable[TableState],
        real_apps: set[str],
    ):
        self.editor = editor
        self.state = ProjectState(real_apps=real_apps)
        for table in tables:
            self.state.add_model(table.model_state())

    def run(self, operation: ops.base.Operation, *, database: bool = True) -> None:
        new_state = self.state.clone()
        operation.state_forwards(APP_LABEL, new_state)
        if database:
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

    def __init__(
        self,
        model: type[models.Model],
        old: FieldState,
        new: FieldState,
        covered: set[Any] = frozenset(),
    ):
        self.model = model
        self.old = old
        self.new = new
        # Rows whose value comes back from a backup (undo of a type change).
        self.covered = covered
        self.converted: list[tuple[Any, Any]] = []

    @classmethod
    def needed(cls, old: FieldState, new: FieldState) -> bool:
        if new.many_to_many:
            return False
        if old.field_type != new.field_type or old.targets != new.targets:
            return True
        old_kwargs, new_kwargs = old.kwargs(), new.kwargs()
        return any(old_kwargs.get(k) != new_kwargs.get(k) for k in cls.CONSTRAINING)

    def run(self, report: ChangeReport) -> None:
        retyped = self.old.field_type != self.new.field_type
        action = (
            _("change its type to %(type)s") % {"type": self.new.definition._meta.verbose_name}
            if retyped
            else _("change its options")
        )
        retargeted = self.old.targets != self.new.targets
        if retargeted:
            action = _("link it to another table")
        result = FieldReport(field=self.new.definition.label, action=action)
        # Built once, not once per row.
        target, source = self.new.definition.frozen(), self.old.definition.frozen()
        field = target.construct_field()
        rows = self.model._base_manager.order_by("pk").values_list("pk", self.old.name)
        seen: Counter = Counter()
        first_pk: dict[Any, Any] = {}
        for pk, value in rows.iterator(chunk_size=2000):
            result.total += 1
            if pk in self.covered:
                continue
            if retargeted and value is not None:
                result.add_problem(RowProblem(pk, value, _("links to a row of the old table")))
                continue
            try:
                if retyped:
                    new_value = target.convert_value(value, source)
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
    if field.many_to_many:
        return
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
    """One schema operation: definition rows edited inside, DDL derived on exit."""

    def __init__(
        self, definition: ModelDefinition, *, dry_run: bool = False, also: Iterable[int] = ()
    ):
        self.members = [definition]
        self.dry_run = dry_run
        self.report = ChangeReport()
        self.using = definition._state.db or DEFAULT_DB_ALIAS
        self.before: dict[int, TableState] = {}
        self.created: list[ModelDefinition] = []
        self.absent: set[int] = set()
        self.editor: BaseDatabaseSchemaEditor | None = None
        self._pending = {definition.pk, *also}

    @property
    def definition(self) -> ModelDefinition:
        return self.members[0]

    @classmethod
    def for_definition(
        cls, definition: ModelDefinition, *, dry_run: bool = False, also: Iterable[int] = ()
    ):
        """The change already open in this thread (joined), or a new one."""
        for change in getattr(_active, "changes", []):
            if dry_run and not change.dry_run:
                raise SchemaError(_("A dry run cannot be nested in a real change."))
            return _Joined(change, definition, also)
        return cls(definition, dry_run=dry_run, also=also)

    def lock_keys(self) -> list[int]:
        """The tables this change may touch, in the order they must be locked."""
        return graph.linked_group({*self.before, *self._pending})

    def include(self, definition: ModelDefinition, also: Iterable[int] = ()) -> None:
        """Take a table (and the tables linked to it) into this change."""
        if all(member is not definition for member in self.members):
            self.members.append(definition)
        if not definition.pk:
            if all(d is not definition for d in self.created):
                self.created.append(definition)
        # A table created in this change has no "before", even once saved.
        created = {d.pk for d in self.created}
        wanted = {pk for pk in {definition.pk, *also} if pk and pk not in created}
        if wanted - set(self.before) - self.absent:
            group = graph.linked_group(wanted | set(self.before))
            self.lock.extend(group)
            loading = [pk for pk in group if pk not in self.before]
            self.before.update(load_tables(loading))
            # In the trash (or gone) when the change began: not "before".
            self.absent |= {pk for pk in [*loading, *wanted] if pk not in self.before}

    def __enter__(self) -> SchemaChange:
        # Locked before the schema transaction opens: the "before" state must
        # be the committed one, and on SQLite a modifier must not wait for its
        # lock inside the write transaction that its subscribers need.
        self.lock = locks.modify(self.lock_keys(), using=self.using)
        self.lock.__enter__()
        try:
            return self._begin()
        except BaseException as error:
            self.lock.__exit__(type(error), error, error.__traceback__)
            raise

    def _begin(self) -> SchemaChange:
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
            self.include(self.definition, self._pending)
        except BaseException as error:
            self.editor.__exit__(type(error), error, error.__traceback__)
            raise
        _active.changes = [*getattr(_active, "changes", []), self]
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self._end(exc_type, exc, tb)
        except BaseException as error:
            self.lock.__exit__(type(error), error, error.__traceback__)
            raise
        # Released after the commit: the subscribers that waited read the new version.
        self.lock.__exit__(exc_type, exc, tb)
        return False

    def _end(self, exc_type, exc, tb) -> bool:
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
        if exc_type is None:
            for pk in set(self.before) | {d.pk for d in self.members if d.pk}:
                classes.forget(pk)
        return False

    def _apply(self) -> None:
        before = self.before
        existing = {d.pk for d in self.members if d.pk} | set(before)
        group = graph.linked_group(existing)
        # Tables linked during this change join it unchanged.
        created = {d.pk for d in self.created if d.pk} | self.absent
        before.update(load_tables(pk for pk in group if pk not in before and pk not in created))
        after = load_tables(group)
        unchanged = before.keys() == after.keys() and all(
            before[pk].signature() == after[pk].signature() for pk in after
        )
        if unchanged:
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
        self._bump(after)
        history.record(self, plan)
        self._signal(before, after)

    def _bump(self, after: dict[int, TableState]) -> None:
        if not after:
            return
        # A queryset update skips auto_now: "changed" is set here, with the version.
        ModelDefinition.objects.filter(pk__in=list(after)).update(
            version=F("version") + 1, updated_at=timezone.now()
        )
        versions = dict(
            ModelDefinition.objects.filter(pk__in=list(after)).values_list("pk", "version")
        )
        for member in self.members:
            if member.pk in versions:
                member.version = versions[member.pk]

    def _signal(self, before: dict[int, TableState], after: dict[int, TableState]) -> None:
        for pk, table in before.items():
            if pk not in after:
                signals.table_deleted.send(ModelDefinition, pk=pk, object_name=table.object_name)
        if not after:
            return
        definitions = {d.pk: d for d in self.members if d.pk in after}
        for definition in ModelDefinition.objects.filter(pk__in=list(after)):
            definition = definitions.get(definition.pk, definition)
            old = before.get(definition.pk)
            if old is None:
                signals.table_created.send(ModelDefinition, definition=definition)
            elif old.object_name != definition.object_name:
                signals.table_renamed.send(
                    ModelDefinition,
                    definition=definition,
                    old_object_name=old.object_name,
                )
            signals.table_changed.send(ModelDefinition, definition=definition, report=self.report)


class _Joined:
    """A nested `batch()`: its changes belong to the change already open."""

    def __init__(self, change: SchemaChange, definition: ModelDefinition, also: Iterable[int]):
        self.change = change
        change.include(definition, also)

    def __enter__(self) -> SchemaChange:
        return self.change

    def __exit__(self, *exc_info) -> bool:
        return False


class _DryRun(Exception):
    """Rolls a dry run back."""


@dataclass
class TableDiff:
    """What changed in one table that exists before and after."""

    old: TableState
    new: TableState

    def __post_init__(self):
        old, new = self.old.by_pk(), self.new.by_pk()
        self.removed = [old[pk] for pk in old if pk not in new]
        self.added = [new[pk] for pk in new if pk not in old]
        kept = [(old[pk], new[pk]) for pk in new if pk in old]
        for o, n in kept:
            if o.field_type != n.field_type and (o.is_relation or n.is_relation):
                raise SchemaError(
                    _(
                        "%(field)s cannot change between a link and another type: "
                        "add a new field instead."
                    )
                    % {"field": n.definition.label}
                )
        self.retyped = [(o, n) for o, n in kept if o.field_type != n.field_type]
        same_type = [(o, n) for o, n in kept if o.field_type == n.field_type]
        self.renamed = [(o, n) for o, n in same_type if o.name != n.name]
        self.altered = [(o, n) for o, n in same_type if o.kwargs() != n.kwargs()]


class Plan:
    """The operations that take a group of tables from `before` to `after`."""

    def __init__(
        self,
        editor: BaseDatabaseSchemaEditor,
        before: dict[int, TableState],
        after: dict[int, TableState],
    ):
        self.editor = editor
        self.before = before
        self.after = after
        real_apps = set()
        for table in [*before.values(), *after.values()]:
            real_apps |= table.static_apps()
        self.migrator = Migrator(editor, before.values(), real_apps)
        self.checks: list[ValueCheck] = []
        # {field pk: backup table} made by this plan, and read by it on undo.
        self.backups: dict[int, str] = {}
        self.restore_from = history.restoring()
        self.created = [after[pk] for pk in after if pk not in before]
        self.deleted = [before[pk] for pk in before if pk not in after]
        self.diffs = [TableDiff(before[pk], after[pk]) for pk in after if pk in before]
        # What goes to, or comes back from, the trash rather than away for good.
        removed = [f.pk for d in self.diffs for f in d.removed]
        removed += [f.pk for t in self.deleted for f in t.fields if f.is_relation]
        self.trashed_fields = set(
            FieldDefinition.all_objects.filter(
                pk__in=removed, trashed_at__isnull=False
            ).values_list("pk", flat=True)
        )
        self.trashed_tables = set(
            ModelDefinition.all_objects.filter(
                pk__in=[t.pk for t in self.deleted], trashed_at__isnull=False
            ).values_list("pk", flat=True)
        )
        with editor.connection.cursor() as cursor:
            existing = set(editor.connection.introspection.table_names(cursor))
        added = [f.pk for d in self.diffs for f in d.added]
        added += [f.pk for t in self.created for f in t.fields if f.is_relation]
        self.restored_fields = {pk for pk in added if trash.field_table(pk) in existing}
        self.restored_tables = {t.pk for t in self.created if trash.table_name(t.pk) in existing}

    def check(self, report: ChangeReport) -> None:
        for diff in self.diffs:
            model = self.migrator.model(diff.old.object_name)
            for old, new in diff.retyped + diff.altered:
                if ValueCheck.needed(old, new):
                    covered = set()
                    if new.pk in self.restore_from:
                        covered = trash.backed_up_rows(self.editor, self.restore_from[new.pk])
                    check = ValueCheck(model, old, new, covered)
                    check.run(report)
                    self.checks.append(check)
            for new in diff.added:
                if new.pk not in self.restored_fields:
                    check_added(model, new, self.editor, report)

    def apply(self) -> None:
        run = self.migrator.run
        # Links go first and come last, so no step meets a missing table.
        for diff in self.diffs:
            for old in diff.removed:
                self._remove(diff.old.object_name, old)
        for table in self.deleted:
            if table.pk in self.trashed_tables:
                self._trash_table(table)
            else:
                run(ops.DeleteModel(table.object_name))
        for diff in self.diffs:
            if diff.new.object_name != diff.old.object_name:
                run(ops.RenameModel(diff.old.object_name, diff.new.object_name))
        for table in self.created:
            state = table.model_state(relations=False)
            create = ops.CreateModel(state.name, list(state.fields.items()))
            if table.pk in self.restored_tables:
                self.migrator.run(create, database=False)
                model = self.migrator.model(table.object_name)
                self.editor.alter_db_table(model, trash.table_name(table.pk), model._meta.db_table)
            else:
                run(create)
        for diff in self.diffs:
            name = diff.new.object_name
            self._rename(name, diff)
            for _old, new in diff.altered:
                run(ops.AlterField(name, new.name, new.field()))
            for old, new in diff.retyped:
                self._retype(name, old, new)
        for diff in self.diffs:
            for new in diff.added:
                self._add(diff.new.object_name, new)
        for table in self.created:
            for new in table.fields:
                if new.is_relation:
                    self._add(table.object_name, new)

    def _remove(self, model_name: str, old: FieldState) -> None:
        if old.pk in self.trashed_fields:
            trash.copy_out(self.editor, self.migrator.model(model_name), old.name, old.pk)
        self.migrator.run(ops.RemoveField(model_name, old.name))

    def _trash_table(self, table: TableState) -> None:
        for old in table.fields:
            if old.is_relation:
                self._remove(table.object_name, old)
        model = self.migrator.model(table.object_name)
        self.editor.alter_db_table(model, model._meta.db_table, trash.table_name(table.pk))
        self.migrator.run(ops.DeleteModel(table.object_name), database=False)

    def _add(self, model_name: str, new: FieldState) -> None:
        if new.pk not in self.restored_fields:
            self.migrator.run(ops.AddField(model_name, new.name, new.field()))
            return
        target = new.field()
        if target.many_to_many:
            # AddField makes the through table; the trash fills it.
            self.migrator.run(ops.AddField(model_name, new.name, target))
            trash.copy_in(self.editor, self.migrator.model(model_name), new.name, new.pk)
            return
        self.migrator.run(ops.AddField(model_name, new.name, trash.loose(target)))
        trash.copy_in(self.editor, self.migrator.model(model_name), new.name, new.pk)
        model = self.migrator.model(model_name)
        if not target.null:
            missing = list(
                model._base_manager.filter(**{f"{new.name}__isnull": True}).values_list(
                    "pk", flat=True
                )[:6]
            )
            if missing:
                result = FieldReport(
                    field=new.definition.label,
                    action=_("restore it"),
                    total=model._base_manager.count(),
                )
                for pk in missing[:5]:
                    result.add_problem(
                        RowProblem(pk, None, _("no value: added after it went to the trash"))
                    )
                result.problem_count = model._base_manager.filter(
                    **{f"{new.name}__isnull": True}
                ).count()
                raise DataLossError(ChangeReport([result]))
        self.migrator.run(ops.AlterField(model_name, new.name, target))

    def _rename(self, model_name: str, diff: TableDiff) -> None:
        current = {f.name for f in diff.old.fields} - {f.name for f in diff.removed}
        staying = current - {old.name for old, _new in diff.renamed}
        for _old, new in diff.renamed:
            if new.name in staying:
                raise SchemaError(
                    _("Two fields cannot both be named %(name)s.") % {"name": new.name}
                )
        # Two fields may swap names: move the ones whose name is wanted aside.
        wanted = {new.name for _old, new in diff.renamed}
        moves = []
        for old, new in diff.renamed:
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
        if new.pk not in self.restore_from:
            # The old values are kept, so that the change can be undone exactly.
            backup = trash.backup_table(new.pk)
            trash.copy_out(self.editor, self.migrator.model(model_name), old.name, new.pk, backup)
            self.backups[new.pk] = backup
        scratch = f"mutant_retype_{new.pk}"
        target = new.field()
        run = self.migrator.run
        run(ops.AddField(model_name, scratch, trash.loose(target)))
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
        if new.pk in self.restore_from:
            trash.copy_in(self.editor, model, scratch, self.restore_from[new.pk], drop=True)
        run(ops.RemoveField(model_name, old.name))
        run(ops.RenameField(model_name, scratch, new.name))
        run(ops.AlterField(model_name, new.name, target))
