"""import-export resources for user tables, generated per table version.

A table's resource keeps import-export's interface (the admin's preview and
confirmation, the `import`/`export` commands, `Result` with its per-row
errors) and replaces the row-by-row import with `builder.importing`: every
cell converted and checked by its field definition, then one transaction.
"""

from __future__ import annotations

import datetime
import decimal
import logging
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DatabaseError, IntegrityError, models
from django.utils.translation import gettext as _
from import_export import resources, widgets
from import_export.declarative import ModelDeclarativeMetaclass
from import_export.fields import Field
from import_export.results import Error, InvalidRow, Result, RowResult

from builder.formats import neutralise_formula
from builder.generated import ordered_fields
from builder.importing import Progress, Report, TableImport
from builder.versioned import PerVersion
from mutant.errors import MutantError
from mutant.models import FieldDefinition, ModelDefinition

logger = logging.getLogger(__name__)

NATIVE_TYPES = (bool, int, float, str, datetime.date)
"""Values a spreadsheet cell holds exactly as they are. Not an aware datetime
(no time zones), nor a time (a fraction of a day, rounded)."""

_resources: PerVersion[type[TableResource]] = PerVersion()


class ValueWidget(widgets.Widget):
    """Writes a field's values as its definition does, so that reading them
    back gives the same values; text that a spreadsheet would run as a
    formula gets a leading apostrophe."""

    def __init__(self, model_field: models.Field, definition: FieldDefinition | None):
        super().__init__(coerce_to_string=True)
        self.field = model_field
        self.definition = definition
        self.holds_text = isinstance(model_field, (models.CharField, models.TextField))

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        if value in (None, ""):
            return None
        if self.definition is not None:
            return self.definition.parse_value(value)
        return self.field.to_python(value)

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> Any:
        native = kwargs.get("force_native_type", False)
        if value is None:
            return None if native else ""
        if native:
            if isinstance(value, decimal.Decimal):
                # As a number only where a float holds it exactly.
                if decimal.Decimal(repr(float(value))) == value:
                    return float(value)
            elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
                pass  # beyond a spreadsheet's exact whole numbers: as text
            elif isinstance(value, NATIVE_TYPES) and not isinstance(value, datetime.datetime):
                return neutralise_formula(value) if isinstance(value, str) else value
        if isinstance(value, models.Model):
            value = value.pk
        if self.definition is not None:
            text = self.definition.value_to_text(value)
        else:
            text = str(value)
        return neutralise_formula(text) if self.holds_text else text


def column_names(model: type[models.Model], definitions: dict[str, FieldDefinition]) -> dict:
    """{field name: column name}: the field's label, unless another field
    answers to the same words, then its name."""
    fields = ordered_fields(model)
    labels = {
        f.name: definitions[f.name].label if f.name in definitions else f.name for f in fields
    }
    claims: dict[str, int] = {}
    for f in fields:
        for key in {f.name.casefold(), labels[f.name].casefold()}:
            claims[key] = claims.get(key, 0) + 1
    return {
        name: label if claims[label.casefold()] == 1 else name for name, label in labels.items()
    }


class TableResource(resources.ModelResource):
    """The resource of one version of a user table (see `resource_for`)."""

    def import_data(
        self,
        dataset: Any,
        dry_run: bool = False,
        raise_errors: bool = False,
        use_transactions: bool | None = None,
        collect_failed_rows: bool = False,
        rollback_on_validation_errors: bool = False,
        **kwargs: Any,
    ) -> Result:
        """Check every row, then (unless `dry_run`) write them all or none.

        The table cannot change while this runs; the rows are checked against
        the table as it is now, whatever version this resource was made for.
        An import is always one transaction, refused whole if one row is
        invalid: `use_transactions`, `collect_failed_rows` and
        `rollback_on_validation_errors` change nothing. `progress` (a
        callable) hears how far it got; with `expected_version`, nothing is
        written unless the table is still at that version.
        """
        progress: Progress | None = kwargs.get("progress")
        using = self.get_db_connection_name()
        model = self._meta.model
        job = None
        try:
            definition = ModelDefinition.objects.using(using).get(pk=model._definition_id)
            # No schema change until the rows are written (or refused): a
            # change waits for the import, an import waits for a change.
            with definition.subscribe() as current:
                job = TableImport(current, dataset, using=using, progress=progress)
                job.check()
                expected = kwargs.get("expected_version")
                if expected is not None and expected != job.report.version:
                    # Checked again against the table as it is now; the person
                    # confirms what they see, not what an older preview showed.
                    job.report.table_changed = True
                elif not dry_run:
                    job.write()
        except (MutantError, DatabaseError, ModelDefinition.DoesNotExist) as error:
            # A busy table, or the database refused a row: the transaction
            # rolled the whole file back.
            logger.info("Import into %s failed: %s", model._meta.label, error)
            if raise_errors:
                raise
            result = self.get_result_class()()
            result.append_base_error(ReportError(ReadableError(refusal(error))))
            return result
        result = result_from_report(job.report, job.raw_cells, self.get_result_class())
        if raise_errors and (result.has_errors() or result.has_validation_errors()):
            raise ValidationError(job.report.describe())
        return result


def refusal(error: Exception) -> str:
    """What a person reads when an import stops as a whole."""
    if isinstance(error, IntegrityError):
        return _(
            "A row clashes with the table (a value that must be unique, or a link to "
            "a row that does not exist), so nothing was imported."
        )
    if isinstance(error, DatabaseError):
        return _("The database refused the file, so nothing was imported.")
    if isinstance(error, ModelDefinition.DoesNotExist):
        return _("The table no longer exists.")
    return str(error)


class ReadableError(Exception):
    """A problem with the file as a whole, shown as its message (no traceback)."""

    traceback = ""


class ReportError(Error):
    traceback = ""


def result_from_report(
    report: Report, raw_cells: Any, result_class: type[Result] = Result
) -> Result:
    """import-export's Result for one of our reports: the totals, the
    preview rows, and every problem as an invalid row or a file error."""
    result = result_class()
    result.diff_headers = list(report.headers)
    result.total_rows = report.total
    result.totals[RowResult.IMPORT_TYPE_NEW] = report.new
    result.totals[RowResult.IMPORT_TYPE_UPDATE] = report.updated
    result.totals[RowResult.IMPORT_TYPE_INVALID] = report.invalid_rows
    result.report = report
    for problem in report.file_problems:
        result.append_base_error(ReportError(ReadableError(problem.describe())))
    by_row: dict[int, dict[str, list[str]]] = {}
    for problem in report.problems:
        errors = by_row.setdefault(problem.row, {})
        # The row's cells are shown beside the reasons.
        errors.setdefault(problem.column or NON_FIELD_ERRORS, []).append(problem.reason)
    for number, errors in by_row.items():
        result.invalid_rows.append(
            InvalidRow(
                number=number, validation_error=ValidationError(errors), values=raw_cells(number)
            )
        )
    if report.ok:
        for preview in report.preview:
            row = RowResult()
            row.import_type = (
                RowResult.IMPORT_TYPE_NEW if preview.new else RowResult.IMPORT_TYPE_UPDATE
            )
            row.diff = ["" if v is None else str(v) for v in preview.values]
            result.append_row_result(row)
    return result


def resource_for(model: type[models.Model]) -> type[TableResource]:
    """The resource class of `model`'s table at `model`'s version."""
    pk = model._definition_id

    def build() -> type[TableResource]:
        present = {f.name for f in model._meta.get_fields()}
        definitions = {
            d.name: d for d in ModelDefinition(pk=pk).field_definitions() if d.name in present
        }
        names = column_names(model, definitions)
        declared: dict[str, Any] = {
            "id": Field(
                attribute="id",
                column_name="id",
                widget=ValueWidget(model._meta.pk, None),
            )
        }
        order = ["id"]
        for f in ordered_fields(model):
            if f.many_to_many:
                continue
            declared[f.name] = Field(
                attribute=f.attname,
                column_name=names[f.name],
                widget=ValueWidget(f, definitions.get(f.name)),
            )
            order.append(f.name)
        meta = type(
            "Meta",
            (),
            {
                "model": model,
                "fields": tuple(order),
                "export_order": tuple(order),
                "name": str(model._meta.verbose_name_plural).capitalize(),
            },
        )
        resource = ModelDeclarativeMetaclass(
            f"{model.__name__}Resource", (TableResource,), {"Meta": meta, **declared}
        )
        return resource

    return _resources.get(pk, model._definition_version, build)


def resource_for_label(label: str) -> type[TableResource] | None:
    """The resource of the user table a label names (`tables.Penguin`), or
    None if the label names something else (a static model, a resource path)."""
    from django.apps import apps

    app_label, _dot, name = label.partition(".")
    if app_label != ModelDefinition.app_label or not name or "." in name:
        return None
    try:
        return resource_for(apps.get_model(app_label, name))
    except LookupError:
        return None
