"""The builder's pages: people create and change tables, then fill them.

Every change goes through the engine (saving or deleting definitions,
`change_type`); a view never runs DDL. What the engine refuses (a bad or
duplicate name, a change that would lose data, a table someone else is
changing) is shown on the page, next to the input it concerns.
"""

from __future__ import annotations

import logging
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import DatabaseError, IntegrityError, models
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from builder.forms import (
    ChangeTypeForm,
    ColumnFormSet,
    FieldForm,
    ImportRefused,
    RestoreForm,
    SpreadsheetForm,
    TableDeleteForm,
    TableForm,
    TypeOffer,
    UnreadableFile,
    choice_formset,
    field_name_from_label,
    fill_table,
    propose_columns,
    read_spreadsheet,
    table_name_from_label,
    table_title,
    title_from_filename,
    type_offer,
    type_offers,
)
from builder.generated import model_form_for
from builder.importing import rows_of
from mutant import classes, history
from mutant.errors import DataLossError, MutantError
from mutant.models import FieldDefinition, ModelDefinition
from mutant.models.history import SchemaEvent

logger = logging.getLogger(__name__)
# A field name and a direction, as the keyboard move buttons name them.
MOVED = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-(up|down)$")

BUILDER_PERMISSION = "mutant.change_modeldefinition"
"""Who may create and change tables (superusers have it)."""

# The picker's shortcut for a list of options: a short text with choices.
CHOICE_PRESET_TYPE = "charfielddefinition"


# -- access -----------------------------------------------------------------------


def builder_required(view: Callable) -> Callable:
    """Logged-in people with the builder permission; others get a 403 page."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.has_perm(BUILDER_PERMISSION):
            return render(request, "builder/forbidden.html", status=403)
        with history.actor(request.user):
            return view(request, *args, **kwargs)

    return wrapped


def get_table(request: HttpRequest, table: str) -> ModelDefinition:
    """The table named in the URL (the lock middleware may have loaded it already)."""
    definition = getattr(request, "mutant_definition", None)
    if definition is not None and definition.object_name.lower() == table.lower():
        return definition
    return get_object_or_404(ModelDefinition, object_name=table)


def get_field(definition: ModelDefinition, name: str) -> FieldDefinition:
    field = FieldDefinition.objects.filter(model_def=definition, name=name).first()
    if field is None:
        raise Http404(_("This table has no field %(name)s.") % {"name": name})
    return field.type_cast()


def table_model(request: HttpRequest, definition: ModelDefinition) -> type[models.Model]:
    model = getattr(request, "mutant_model", None)
    if model is not None and getattr(model, "_definition_id", None) == definition.pk:
        return model
    # The version was read with the definition, just now: no second query for it.
    return classes.for_definition(definition.pk, definition.version)


def count_rows(request: HttpRequest, definition: ModelDefinition) -> int | None:
    """How many records a table holds; None when it cannot be read right now."""
    try:
        return table_model(request, definition)._base_manager.count()
    except (DatabaseError, MutantError, LookupError, ModelDefinition.DoesNotExist):
        logger.warning("Could not count the rows of %s", definition.label, exc_info=True)
        return None


def admin_list_url(definition: ModelDefinition) -> str | None:
    try:
        return reverse(f"admin:tables_{definition.model_name}_changelist")
    except NoReverseMatch:
        return None


def posted(request: HttpRequest) -> Any:
    """A form's data: the POST (even an empty one), or None to leave the form unbound."""
    return request.POST if request.method == "POST" else None


# -- running engine changes -------------------------------------------------------


def run_change(
    change: Callable[[], Any],
    form: forms.Form,
    *,
    choice_errors: list[str] | None = None,
) -> bool:
    """Run an engine change; put what it refuses on the form. True if it went through."""
    error_fields = getattr(form, "error_fields", {})
    try:
        change()
    except ValidationError as error:
        if not hasattr(error, "error_dict"):
            form.add_error(None, error.messages)
            return False
        for key, messages_ in error.message_dict.items():
            target = error_fields.get(key, key)
            if key == "choices" and choice_errors is not None:
                choice_errors.extend(messages_)
            elif target in form.fields:
                form.add_error(target, messages_)
            else:
                form.add_error(None, messages_)
    except DataLossError as error:
        form.add_error(None, str(error))
        form.data_loss = error.report
    except MutantError as error:  # DefinitionBusy included
        form.add_error(None, str(error))
    except DatabaseError:
        logger.exception("A schema change failed in the database")
        form.add_error(
            None,
            _(
                "The database refused the change; nothing was changed. "
                "Try again in a moment, or ask an administrator."
            ),
        )
    except Exception:
        # The change ran in one transaction, so nothing is half done: say so
        # in words, and keep the traceback for the log.
        logger.exception("A schema change failed")
        form.add_error(
            None,
            _("The change could not be made; nothing was changed. Please tell an administrator."),
        )
    else:
        return True
    return False


# -- tables -----------------------------------------------------------------------


@builder_required
def home(request: HttpRequest) -> HttpResponse:
    """The tables a person has built, with their size and when they last changed."""
    in_use = Q(field_defs__trashed_at__isnull=True)
    definitions = ModelDefinition.objects.annotate(field_count=Count("field_defs", filter=in_use))
    tables = [
        {
            "definition": d,
            "title": table_title(d),
            "field_count": d.field_count,
            "row_count": count_rows(request, d),
        }
        for d in definitions
    ]
    tables.sort(key=lambda t: t["title"].lower())
    return render(request, "builder/home.html", {"tables": tables})


@builder_required
def table_add(request: HttpRequest) -> HttpResponse:
    form = TableForm(posted(request))
    if request.method == "POST" and form.is_valid():
        definition = form.apply_to(ModelDefinition())
        if run_change(definition.save, form):
            messages.success(
                request,
                _("The table %(title)s was created. Now add its fields.")
                % {"title": table_title(definition)},
            )
            return redirect("builder:table", table=definition.object_name)
    return render(request, "builder/table_form.html", {"form": form, "adding": True})


@builder_required
def table_edit(request: HttpRequest, table: str) -> HttpResponse:
    definition = get_table(request, table)
    form = TableForm(posted(request), instance=definition)
    if request.method == "POST" and form.is_valid():
        old_name = definition.object_name
        form.apply_to(definition)
        if run_change(definition.save, form):
            messages.success(request, _("The table was saved."))
            return redirect("builder:table", table=definition.object_name)
        definition.refresh_from_db()
        definition.object_name = old_name
    return render(
        request,
        "builder/table_form.html",
        {"form": form, "definition": definition, "title": table_title(definition)},
    )


@builder_required
def table_delete(request: HttpRequest, table: str) -> HttpResponse:
    definition = get_table(request, table)
    title = table_title(definition)
    linking = definition.linking_fields()
    form = TableDeleteForm(posted(request), linked=bool(linking))
    if request.method == "POST" and form.is_valid():
        remove_links = form.cleaned_data.get("remove_links", False)
        if run_change(lambda: definition.trash(remove_links=remove_links), form):
            messages.success(
                request,
                _("The table %(title)s is in the trash, with its records.") % {"title": title},
            )
            return redirect("builder:home")
    return render(
        request,
        "builder/table_delete.html",
        {
            "form": form,
            "definition": definition,
            "title": title,
            "row_count": count_rows(request, definition),
            "field_count": definition.field_defs.count(),
            "linking": [{"title": table_title(link.model_def), "field": link} for link in linking],
        },
    )


def link_target(field: FieldDefinition) -> str:
    """What a link field points at, in words; empty for other fields."""
    if not field.is_relation:
        return ""
    if field.to_definition_id:
        return table_title(field.to_definition)
    try:
        return str(apps.get_model(field.to_model)._meta.verbose_name_plural).capitalize()
    except (LookupError, ValueError):
        return field.to_model


def field_rows(definition: ModelDefinition) -> list[dict]:
    rows = []
    for field in definition.field_definitions():
        rows.append(
            {
                "field": field,
                "type": field._meta.verbose_name,
                "required": not field.blank,
                "choices": [str(label) for _value, label in field.choices],
                "target": link_target(field),
            }
        )
    return rows


@builder_required
def table_detail(request: HttpRequest, table: str) -> HttpResponse:
    """The field editor: a table's fields, in order, with what can be done to each."""
    definition = get_table(request, table)
    context = {
        "definition": definition,
        "title": table_title(definition),
        "fields": field_rows(definition),
        "row_count": count_rows(request, definition),
        "admin_url": admin_list_url(definition),
        "linking": [
            {"table": link.model_def, "title": table_title(link.model_def), "field": link}
            for link in definition.linking_fields()
        ],
        # After a keyboard move without htmx: the focus goes back to its button.
        "moved": request.GET.get("moved", "") if MOVED.match(request.GET.get("moved", "")) else "",
    }
    return render(request, "builder/table_detail.html", context)


# -- fields -----------------------------------------------------------------------


def field_labels(definition: ModelDefinition, but: FieldDefinition | None = None) -> list[str]:
    """The labels of a table's fields (but one), as people see them."""
    others = definition.field_defs.all()
    if but is not None:
        others = others.exclude(pk=but.pk)
    return [f.label for f in others]


def picker_groups() -> list[tuple[str, list[dict]]]:
    """The type picker's entries, by category; a list of options sits with the texts."""
    groups = []
    for category, offers in type_offers():
        entries = [{"offer": offer, "preset": False} for offer in offers]
        if any(offer.key == CHOICE_PRESET_TYPE for offer in offers):
            entries.append({"offer": type_offer(CHOICE_PRESET_TYPE), "preset": True})
        groups.append((category, entries))
    return groups


@builder_required
def field_add(request: HttpRequest, table: str) -> HttpResponse:
    definition = get_table(request, table)
    key = request.GET.get("type") or request.POST.get("type")
    offer = type_offer(key) if key else None
    context = {"definition": definition, "title": table_title(definition)}
    if offer is None:
        if key:
            messages.error(request, _("Choose one of the types below."))
        context["groups"] = picker_groups()
        return render(request, "builder/field_picker.html", context)

    preset = request.GET.get("choices") == "1" or request.POST.get("preset") == "1"
    data = posted(request)
    form = FieldForm(data, offer=offer, other_labels=field_labels(definition))
    formset = choice_formset(data, preset=preset) if offer.takes_choices else None
    choice_errors: list[str] = []
    if data is not None and form.is_valid() and (formset is None or formset.is_valid()):
        taken = definition.field_defs.values_list("name", flat=True)
        field = offer.field_type(
            model_def=definition,
            name=field_name_from_label(form.cleaned_data["label"], taken),
            choices=formset.choices() if formset is not None else [],
            **form.definition_values(),
        )
        if run_change(field.save, form, choice_errors=choice_errors):
            messages.success(request, _("The field %(label)s was added.") % {"label": field.label})
            return redirect("builder:table", table=definition.object_name)
    context.update(
        {
            "offer": offer,
            "form": form,
            "formset": formset,
            "choice_errors": choice_errors,
            "preset": preset,
            "adding": True,
        }
    )
    return render(request, "builder/field_form.html", context)


@builder_required
def field_edit(request: HttpRequest, table: str, field: str) -> HttpResponse:
    definition = get_table(request, table)
    instance = get_field(definition, field)
    offer = TypeOffer(type(instance))
    data = posted(request)
    form = FieldForm(
        data, offer=offer, instance=instance, other_labels=field_labels(definition, instance)
    )
    formset = choice_formset(data, instance=instance) if offer.takes_choices else None
    choice_errors: list[str] = []
    if data is not None and form.is_valid() and (formset is None or formset.is_valid()):
        label = form.cleaned_data["label"].strip()
        if label != instance.label:
            taken = definition.field_defs.exclude(pk=instance.pk).values_list("name", flat=True)
            instance.name = field_name_from_label(label, taken)
        for attribute, value in form.definition_values().items():
            setattr(instance, attribute, value)
        if formset is not None:
            instance.choices = formset.choices()
        if run_change(instance.save, form, choice_errors=choice_errors):
            messages.success(request, _("The field %(label)s was saved.") % {"label": label})
            return redirect("builder:table", table=definition.object_name)
    return render(
        request,
        "builder/field_form.html",
        {
            "definition": definition,
            "title": table_title(definition),
            "field": instance,
            "offer": offer,
            "form": form,
            "formset": formset,
            "choice_errors": choice_errors,
        },
    )


@builder_required
def field_delete(request: HttpRequest, table: str, field: str) -> HttpResponse:
    definition = get_table(request, table)
    instance = get_field(definition, field)
    form = forms.Form(posted(request))
    if request.method == "POST" and form.is_valid():
        if run_change(instance.trash, form):
            messages.success(
                request,
                _("The field %(label)s is in the trash, with its values.")
                % {"label": instance.label},
            )
            return redirect("builder:table", table=definition.object_name)
    filled = None
    try:
        model = table_model(request, definition)
        empty = models.Q(**{f"{instance.name}__isnull": True})
        if instance.holds_text:
            empty |= models.Q(**{instance.name: ""})
        filled = model._base_manager.exclude(empty).count()
    except (DatabaseError, MutantError, LookupError):
        logger.warning("Could not count the values of %s", instance.name, exc_info=True)
    return render(
        request,
        "builder/field_delete.html",
        {
            "definition": definition,
            "title": table_title(definition),
            "field": instance,
            "form": form,
            "filled": filled,
        },
    )


def reorder(definition: ModelDefinition, pks: list[int]) -> None:
    """Put the table's fields in this order (the others keep theirs, after them)."""
    current = list(definition.field_defs.order_by("position", "pk").values_list("pk", flat=True))
    order = [pk for pk in pks if pk in current] + [pk for pk in current if pk not in pks]
    if order == current:
        return
    with definition.batch():
        for position, pk in enumerate(order, start=1):
            FieldDefinition.objects.filter(pk=pk).update(position=position)


def _after_reorder(request: HttpRequest, definition: ModelDefinition, form: forms.Form, moved=None):
    if request.htmx:
        response = render(
            request,
            "builder/includes/field_list.html",
            {
                "definition": definition,
                "fields": field_rows(definition),
                "errors": form.non_field_errors(),
                "moved": moved,
            },
        )
        return response
    for error in form.non_field_errors():
        messages.error(request, error)
    url = reverse("builder:table", kwargs={"table": definition.object_name})
    return redirect(f"{url}?{urlencode({'moved': moved})}" if moved else url)


@require_POST
@builder_required
def field_order(request: HttpRequest, table: str) -> HttpResponse:
    """Drag and drop: the whole order at once, as field ids."""
    definition = get_table(request, table)
    form = forms.Form(request.POST)
    try:
        pks = [int(pk) for pk in request.POST.getlist("order")]
    except ValueError:
        form.add_error(None, _("The new order could not be read."))
        return _after_reorder(request, definition, form)
    run_change(lambda: reorder(definition, pks), form)
    return _after_reorder(request, definition, form)


@require_POST
@builder_required
def field_move(request: HttpRequest, table: str, field: str) -> HttpResponse:
    """The keyboard way: one field one place up or down."""
    definition = get_table(request, table)
    instance = get_field(definition, field)
    form = forms.Form(request.POST)
    order = list(definition.field_defs.order_by("position", "pk").values_list("pk", flat=True))
    index = order.index(instance.pk)
    step = -1 if request.POST.get("direction") == "up" else 1
    other = index + step
    if 0 <= other < len(order):
        order[index], order[other] = order[other], order[index]
        run_change(lambda: reorder(definition, order), form)
    return _after_reorder(
        request, definition, form, moved=f"{instance.name}-{request.POST.get('direction')}"
    )


@builder_required
def field_type(request: HttpRequest, table: str, field: str) -> HttpResponse:
    """Change a field's type: first what would happen to every value, then a confirmation."""
    definition = get_table(request, table)
    instance = get_field(definition, field)
    key = request.POST.get("to") or request.GET.get("to")
    offer = type_offer(key) if key else None
    context = {
        "definition": definition,
        "title": table_title(definition),
        "field": instance,
        "current": TypeOffer(type(instance)),
    }
    if offer is None or offer.field_type is type(instance):
        context["groups"] = [
            (category, [{"offer": o} for o in offers if o.field_type is not type(instance)])
            for category, offers in type_offers()
        ]
        return render(request, "builder/field_type_picker.html", context)

    if request.method == "POST":
        form = ChangeTypeForm(request.POST, offer=offer)
    else:
        form = ChangeTypeForm(offer=offer)
        # Shown with the type's defaults; they go through the same validation.
        form = ChangeTypeForm(
            {name: f.initial for name, f in form.fields.items() if f.initial is not None},
            offer=offer,
        )
    report = None
    if form.is_valid():
        options = form.cleaned_data
        confirmed = request.method == "POST" and request.POST.get("action") == "confirm"
        if confirmed:
            if run_change(lambda: instance.change_type(offer.field_type, **options), form):
                messages.success(
                    request,
                    _("%(label)s is now a %(type)s field.")
                    % {"label": instance.label, "type": offer.title},
                )
                return redirect("builder:table", table=definition.object_name)
            report = getattr(form, "data_loss", None)
        else:
            holder: dict = {}

            def preview() -> None:
                holder["report"] = instance.change_type(offer.field_type, dry_run=True, **options)

            if run_change(preview, form):
                report = holder["report"]
    field_report = report.fields[0] if report is not None and report.fields else None
    context.update(
        {
            "offer": offer,
            "form": form,
            "report": report,
            "field_report": field_report,
            "admin_url": admin_list_url(definition),
        }
    )
    return render(request, "builder/field_type.html", context)


# -- records ----------------------------------------------------------------------


NATIVE_INPUTS = {
    forms.DateInput: ("date", "%Y-%m-%d"),
    forms.TimeInput: ("time", "%H:%M:%S"),
}


def record_form(definition, model, *args, **kwargs) -> forms.ModelForm:
    """The table's generated ModelForm (the admin's), with native date and time inputs."""
    form = model_form_for(definition, model=model)(*args, **kwargs)
    for formfield in form.fields.values():
        # The browser's own date and time pickers.
        widget = formfield.widget
        if type(widget) in NATIVE_INPUTS:
            widget.input_type, widget.format = NATIVE_INPUTS[type(widget)]
    return form


def _display(row: models.Model, field: models.Field) -> Any:
    if field.choices:
        return row._get_FIELD_display(field)
    # A link shows the linked row, as the admin would.
    value = getattr(row, field.name if field.is_relation else field.attname)
    return "" if value is None else value


@builder_required
def records(request: HttpRequest, table: str) -> HttpResponse:
    definition = get_table(request, table)
    model = table_model(request, definition)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    links = [f.name for f in fields if f.is_relation]
    queryset = model._base_manager.select_related(*links).order_by("-pk")
    page = Paginator(queryset, 25).get_page(request.GET.get("page"))
    rows = [{"pk": row.pk, "cells": [_display(row, f) for f in fields]} for row in page]
    return render(
        request,
        "builder/records.html",
        {
            "definition": definition,
            "title": table_title(definition),
            "columns": [f.verbose_name for f in fields],
            "rows": rows,
            "page": page,
            "admin_url": admin_list_url(definition),
        },
    )


def _save_record(form: forms.ModelForm) -> bool:
    try:
        form.save()
    except IntegrityError:
        form.add_error(None, _("Another record already has one of these values."))
    except DatabaseError:
        logger.exception("Saving a record failed")
        form.add_error(None, _("The record could not be saved; try again in a moment."))
    else:
        return True
    return False


@builder_required
def record_edit(request: HttpRequest, table: str, pk: int | None = None) -> HttpResponse:
    definition = get_table(request, table)
    model = table_model(request, definition)
    row = get_object_or_404(model._base_manager, pk=pk) if pk is not None else None
    form = record_form(definition, model, posted(request), request.FILES or None, instance=row)
    if request.method == "POST" and form.is_valid() and _save_record(form):
        messages.success(request, _("The record was saved."))
        if "another" in request.POST:
            return redirect("builder:record_add", table=definition.object_name)
        return redirect("builder:records", table=definition.object_name)
    return render(
        request,
        "builder/record_form.html",
        {
            "definition": definition,
            "title": table_title(definition),
            "form": form,
            "row": row,
            "admin_url": admin_list_url(definition),
        },
    )


# -- a new table from a spreadsheet -------------------------------------------------


class Upload:
    """A spreadsheet kept between the proposal and the confirmation."""

    def __init__(self, token: str, name: str, path: Path):
        self.token = token
        self.name = name
        self.path = path

    def dataset(self):
        return read_spreadsheet(self.path.read_bytes(), self.name)


class SpreadsheetUploads:
    """Uploaded files waiting for confirmation: on disk, known to the person's session."""

    SESSION_KEY = "builder_uploads"
    MAX_AGE = 24 * 3600

    def __init__(self, request: HttpRequest):
        self.session = request.session
        self.folder = Path(tempfile.gettempdir()) / "mutant-builder-uploads"

    def keep(self, name: str, content: bytes) -> Upload:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self._sweep()
        token = secrets.token_urlsafe(16)
        path = self.folder / token
        path.write_bytes(content)
        uploads = self.session.get(self.SESSION_KEY, {})
        uploads[token] = name
        self.session[self.SESSION_KEY] = uploads
        return Upload(token, name, path)

    def get(self, token: str) -> Upload | None:
        name = self.session.get(self.SESSION_KEY, {}).get(token)
        path = self.folder / token
        if name is None or not path.is_file():
            return None
        return Upload(token, name, path)

    def forget(self, upload: Upload) -> None:
        upload.path.unlink(missing_ok=True)
        uploads = self.session.get(self.SESSION_KEY, {})
        uploads.pop(upload.token, None)
        self.session[self.SESSION_KEY] = uploads

    def _sweep(self) -> None:
        limit = time.time() - self.MAX_AGE
        for path in self.folder.iterdir():
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
            except OSError:
                pass


@builder_required
def table_import(request: HttpRequest) -> HttpResponse:
    """Upload a file, adjust the proposed fields, then create and fill the table at once."""
    uploads = SpreadsheetUploads(request)
    if request.method == "POST" and "token" in request.POST:
        upload = uploads.get(request.POST["token"])
        if upload is None:
            messages.error(request, _("The uploaded file has expired; upload it again."))
            return redirect("builder:table_import")
        return _import_confirm(request, uploads, upload)

    form = SpreadsheetForm(posted(request), request.FILES or None)
    if request.method == "POST" and form.is_valid():
        uploaded = form.cleaned_data["file"]
        content = uploaded.read()
        try:
            dataset = read_spreadsheet(content, uploaded.name)
        except UnreadableFile as error:
            form.add_error("file", str(error))
        else:
            upload = uploads.keep(uploaded.name, content)
            title = form.cleaned_data["title"] or title_from_filename(uploaded.name)
            proposal = propose_columns(dataset)
            columns = ColumnFormSet(
                initial=[column.initial() for column in proposal], prefix="columns"
            )
            table_form = TableForm(initial={"title": title})
            return _render_proposal(request, upload, dataset, proposal, table_form, columns)
    return render(request, "builder/table_import.html", {"form": form})


def _render_proposal(request, upload, dataset, proposal, table_form, columns, errors=()):
    return render(
        request,
        "builder/table_import_confirm.html",
        {
            "upload": upload,
            "table_form": table_form,
            "columns": columns,
            "preview": [list(row) for row in rows_of(dataset)[:5]],
            "headers": dataset.headers,
            "column_rows": _column_rows(columns, proposal),
            "row_count": dataset.height,
            "import_errors": errors,
        },
    )


def _column_rows(columns, proposal) -> list[dict]:
    """Each column's form beside what was proposed for it (examples, choices)."""
    by_index = {column.index: column for column in proposal}
    rows = []
    for form in columns.forms:
        try:
            index = int(form["column"].value())
        except (TypeError, ValueError):
            index = None
        proposed = by_index.get(index)
        choices = proposed.options.get("choices", []) if proposed else []
        rows.append(
            {
                "form": form,
                "examples": proposed.examples if proposed else [],
                "choices": [label for _value, label in choices],
            }
        )
    return rows


def _import_confirm(request: HttpRequest, uploads, upload) -> HttpResponse:
    dataset = upload.dataset()
    proposal = propose_columns(dataset)
    table_form = TableForm(request.POST)
    columns = ColumnFormSet(request.POST, prefix="columns")
    if not (table_form.is_valid() and columns.is_valid()):
        return _render_proposal(request, upload, dataset, proposal, table_form, columns)
    chosen = [c.cleaned_data for c in columns if c.cleaned_data.get("include")]
    if not chosen:
        table_form.add_error(None, _("Keep at least one column."))
        return _render_proposal(request, upload, dataset, proposal, table_form, columns)
    definition = table_form.apply_to(ModelDefinition())
    by_index = {column.index: column for column in proposal}
    fields: list[tuple[int, FieldDefinition]] = []
    taken: list[str] = []
    for position, column in enumerate(chosen, start=1):
        offer = type_offer(column["field_type"])
        proposed = by_index.get(column["column"])
        if proposed is not None and proposed.field_type is offer.field_type:
            options = proposed.options
        else:
            options = {"null": not offer.holds_text, "blank": True}
        name = field_name_from_label(column["label"], taken)
        taken.append(name)
        field = offer.field_type(
            name=name, verbose_name=column["label"].strip(), position=position, **options
        )
        fields.append((column["column"], field))

    def create() -> None:
        with definition.batch():
            definition.save()
            for _index, field in fields:
                field.model_def = definition
                field.save()

    if not run_change(create, table_form):
        return _render_proposal(request, upload, dataset, proposal, table_form, columns)
    try:
        fill_table(definition, dataset, {index: f.name for index, f in fields})
    except ImportRefused as refused:
        # All or nothing: a table that could not be filled is not kept either.
        run_change(definition.delete, table_form)
        table_form.add_error(None, str(refused))
        return _render_proposal(
            request, upload, dataset, proposal, table_form, columns, refused.errors
        )
    uploads.forget(upload)
    messages.success(
        request,
        _("The table %(title)s was created with %(count)d records.")
        % {"title": table_title(definition), "count": dataset.height},
    )
    return redirect("builder:table", table=definition.object_name)


# -- history and undo ---------------------------------------------------------------


@builder_required
def table_history(request: HttpRequest, table: str) -> HttpResponse:
    """Every schema change of a table, newest first; the last one may be undone."""
    definition = get_table(request, table)
    events = list(definition.history.select_related("user").order_by("-pk")[:100])
    latest = next((e for e in events if not e.undone_by_id), None)
    return render(
        request,
        "builder/table_history.html",
        {
            "definition": definition,
            "title": table_title(definition),
            "events": events,
            "undoable": latest if latest is not None and latest.undoable else None,
            "form": forms.Form(),
        },
    )


@require_POST
@builder_required
def table_undo(request: HttpRequest, table: str, event: int) -> HttpResponse:
    definition = get_table(request, table)
    entry = get_object_or_404(SchemaEvent, pk=event, tables=definition)
    form = forms.Form(request.POST)
    if run_change(lambda: history.undo(entry), form):
        messages.success(request, _("Undone: %(what)s") % {"what": entry.description})
    for error in form.non_field_errors():
        messages.error(request, error)
    # An undone rename moves the table: find it by its id.
    current = ModelDefinition.objects.filter(pk=definition.pk).first()
    if current is None:
        return redirect("builder:home")
    return redirect("builder:table_history", table=current.object_name)


# -- the trash ----------------------------------------------------------------------


@builder_required
def trash(request: HttpRequest) -> HttpResponse:
    """Tables and fields moved to the trash, waiting to be restored or purged."""
    tables = ModelDefinition.all_objects.filter(trashed_at__isnull=False).order_by("-trashed_at")
    fields = (
        FieldDefinition.all_objects.filter(
            trashed_at__isnull=False, model_def__trashed_at__isnull=True
        )
        .select_related("model_def")
        .order_by("-trashed_at")
    )
    return render(
        request,
        "builder/trash.html",
        {
            "tables": [{"definition": t, "title": table_title(t)} for t in tables],
            "fields": [
                {"field": f, "table": f.model_def, "title": table_title(f.model_def)}
                for f in fields
            ],
            "form": forms.Form(),
        },
    )


def trashed_table(pk: int) -> ModelDefinition:
    return get_object_or_404(ModelDefinition.all_objects, pk=pk, trashed_at__isnull=False)


def trashed_field(pk: int) -> FieldDefinition:
    field = get_object_or_404(FieldDefinition.all_objects, pk=pk, trashed_at__isnull=False)
    return field.type_cast()


@builder_required
def trash_restore_table(request: HttpRequest, pk: int) -> HttpResponse:
    """Bring a table back; if its name was taken meanwhile, ask for another."""
    definition = trashed_table(pk)
    form = RestoreForm(
        posted(request),
        initial={"title": table_title(definition)},
        others=[table_title(t) for t in ModelDefinition.objects.all()],
    )
    if request.method == "POST" and form.is_valid():
        new_title = form.cleaned_data["title"].strip()

        def restore() -> None:
            if new_title and new_title != table_title(definition):
                taken = ModelDefinition.objects.values_list("object_name", flat=True)
                # One change: the new label goes back with the table, or neither does.
                with definition.batch():
                    ModelDefinition.all_objects.filter(pk=definition.pk).update(
                        verbose_name=new_title, verbose_name_plural=new_title
                    )
                    definition.restore(object_name=table_name_from_label(new_title, taken))
                definition.verbose_name_plural = definition.verbose_name = new_title
            else:
                definition.restore()

        form.error_fields = {"object_name": "title"}
        if run_change(restore, form):
            messages.success(
                request,
                _("The table %(title)s is back, with its records.")
                % {"title": table_title(definition)},
            )
            return redirect("builder:table", table=definition.object_name)
    return render(
        request,
        "builder/trash_restore.html",
        {"form": form, "what": table_title(definition), "is_table": True},
    )


@builder_required
def trash_restore_field(request: HttpRequest, pk: int) -> HttpResponse:
    field = trashed_field(pk)
    definition = field.model_def
    form = RestoreForm(
        posted(request), initial={"title": field.label}, others=field_labels(definition)
    )
    if request.method == "POST" and form.is_valid():
        new_label = form.cleaned_data["title"].strip()

        def restore() -> None:
            if new_label and new_label != field.label:
                taken = definition.field_defs.values_list("name", flat=True)
                with definition.batch():
                    FieldDefinition.all_objects.filter(pk=field.pk).update(verbose_name=new_label)
                    field.restore(name=field_name_from_label(new_label, taken))
                field.verbose_name = new_label
            else:
                field.restore()

        form.error_fields = {"name": "title"}
        if run_change(restore, form):
            messages.success(
                request, _("The field %(label)s is back, with its values.") % {"label": field.label}
            )
            return redirect("builder:table", table=definition.object_name)
    return render(
        request,
        "builder/trash_restore.html",
        {"form": form, "what": field.label, "table_title": table_title(definition)},
    )


@builder_required
def trash_purge(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """Delete a table or a field from the trash for good, after a confirmation."""
    item = trashed_table(pk) if kind == "table" else trashed_field(pk)
    what = table_title(item) if kind == "table" else item.label
    form = forms.Form(posted(request))
    if request.method == "POST" and form.is_valid():
        if run_change(item.purge, form):
            messages.success(request, _("%(what)s was deleted for good.") % {"what": what})
            return redirect("builder:trash")
    return render(request, "builder/trash_purge.html", {"form": form, "what": what, "kind": kind})
