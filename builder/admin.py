"""The admin site: the project's own models and every user table.

Tables are not registered. Their pages live under fixed routes that carry
the table's name (`admin/tables/<table>/...`), and each request resolves the
table and its generated ModelAdmin (see `builder.generated`) from the
definitions, so a table created, changed or deleted by any process shows in
every process on its next request, with no URLconf to reload.

Django's admin reverses per-model URL names (`admin:tables_penguin_change`);
`install_table_urls()` teaches the URL resolver to answer those names with
the fixed table routes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import include, path, re_path, reverse
from django.urls.resolvers import URLResolver
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export.admin import ImportExportModelAdmin
from import_export.forms import ConfirmImportForm

from builder import formats, jobs
from builder.generated import model_admin_for
from builder.permissions import forget_cached_content_type
from builder.versioned import PerVersion
from mutant import classes
from mutant.models import ModelDefinition
from mutant.models.definitions import APP_LABEL

logger = logging.getLogger(__name__)

# (name, route under admin/tables/<table>/, ModelAdmin view); the specific
# routes come before the ones that take any object id.
TABLE_ROUTES = (
    ("changelist", "", "changelist_view"),
    ("add", "add/", "add_view"),
    ("import", "import/", "import_action"),
    ("process_import", "process_import/", "process_import"),
    ("export", "export/", "export_action"),
    ("import_job", "import/<str:job>/", "import_job_view"),
    ("history", "<path:object_id>/history/", "history_view"),
    ("delete", "<path:object_id>/delete/", "delete_view"),
    ("change", "<path:object_id>/change/", "change_view"),
)
TABLE_VIEWS = {name: view for name, _route, view in TABLE_ROUTES}
# Longest first: "process_import" before "import".
ROUTE_SUFFIXES = sorted(TABLE_VIEWS, key=len, reverse=True)


def route_name(suffix: str) -> str:
    """The URL name of a table route; a hyphen keeps it apart from any model's."""
    return f"table-{suffix}"


# -- reversing per-table URL names ---------------------------------------------------


def table_route(url_name: str) -> tuple[str, str] | None:
    """(model name, route) named by an admin URL name like `tables_penguin_change`."""
    prefix = f"{APP_LABEL}_"
    if not url_name.startswith(prefix):
        return None
    rest = url_name[len(prefix) :]
    found = [
        (rest[: -len(suffix) - 1], suffix)
        for suffix in ROUTE_SUFFIXES
        if rest.endswith("_" + suffix) and len(rest) > len(suffix) + 1
    ]
    if len(found) > 1:
        # "tables_a_process_import": table "a" importing, or table "a_process"?
        names = ModelDefinition.objects.filter(
            object_name__iregex=r"^(" + "|".join(re.escape(m) for m, _s in found) + r")$"
        ).values_list("object_name", flat=True)
        known = {n.lower() for n in names}
        found = [f for f in found if f[0] in known] or found
    return found[0] if found else None


_original_reverse = URLResolver._reverse_with_prefix


def _reverse_with_prefix(self, lookup_view, _prefix, *args, **kwargs):
    if (
        isinstance(lookup_view, str)
        and lookup_view.startswith(f"{APP_LABEL}_")
        and lookup_view not in self.reverse_dict
    ):
        route = table_route(lookup_view)
        if route is not None and route_name(route[1]) in self.reverse_dict:
            model_name, suffix = route
            lookup_view = route_name(suffix)
            if args:
                args = (model_name, *args)
            else:
                kwargs = {"table": model_name, **kwargs}
    return _original_reverse(self, lookup_view, _prefix, *args, **kwargs)


def install_table_urls() -> None:
    """Let Django's per-model admin URL names reverse to the table routes.

    Only names that no URL pattern has (`tables_<table>_<view>`) are
    translated, and only by resolvers that hold the table routes.
    """
    URLResolver._reverse_with_prefix = _reverse_with_prefix


# -- the admin of one table ----------------------------------------------------------


class TableConfirmImportForm(ConfirmImportForm):
    """The confirmation remembers which version of the table the preview checked."""

    table_version = forms.IntegerField(widget=forms.HiddenInput(), required=False)


class TableAdmin(ImportExportModelAdmin):
    """The base of every generated table admin (see `builder.generated`)."""

    link_fields: Sequence[str] = ()
    formats = formats.FORMATS
    # The formats find a text file's encoding themselves: hand them bytes.
    from_encoding = None
    import_template_name = "admin/tables/import.html"
    export_template_name = "admin/tables/export.html"
    confirm_form_class = TableConfirmImportForm
    list_per_page = 50
    ordering = ("-pk",)  # newest first, and a stable order for autocomplete pages

    # -- rights ------------------------------------------------------------------------

    def has_import_permission(self, request: HttpRequest) -> bool:
        return self.has_add_permission(request)

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_or_change_permission(request)

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        """Links whose target has a searchable admin pick their row by search."""
        found = []
        for name in self.link_fields:
            target = self.model._meta.get_field(name).remote_field.model
            target_admin = self.admin_site._registry.get(target)
            if target_admin is not None and target_admin.get_search_fields(request):
                found.append(name)
        return found

    # -- export ------------------------------------------------------------------------

    def get_export_data(self, file_format: Any, request: HttpRequest, queryset: Any, **kwargs):
        """The file: spreadsheets get numbers and dates as cells of their own
        type (import-export recognises only its own spreadsheet formats)."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        data = self.get_data_for_export(
            request, queryset, force_native_type=file_format.is_binary(), **kwargs
        )
        exported = file_format.export_data(data)
        encoding = kwargs.get("encoding")
        if not file_format.is_binary() and encoding:
            exported = exported.encode(encoding)
        return exported

    # -- import ------------------------------------------------------------------------

    def add_data_read_fail_error_to_form(self, form: Any, error: Exception) -> None:
        if isinstance(error, formats.FileProblem):
            form.add_error("import_file", str(error))
        else:
            super().add_data_read_fail_error_to_form(form, error)

    def import_action(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        """Upload a file and show the preview (or every problem) before confirming."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = self.create_import_form(request)
        if request.method == "POST" and form.is_valid():
            input_format = self.get_import_formats()[int(form.cleaned_data["format"])]()
            import_file = form.cleaned_data["import_file"]
            storage = self.write_to_tmp_storage(import_file, input_format)
            upload = jobs.Upload(
                tmp_name=storage.name,
                original_name=import_file.name,
                format_name=type(input_format).__name__,
            )
            if import_file.size > jobs.background_bytes():
                job = jobs.start(self.model, upload, request.user, preview=True)
                return HttpResponseRedirect(self.job_url(job))
            try:
                dataset = self.read_upload(upload)
            except Exception as error:  # noqa: BLE001 - shown on the form
                self.add_data_read_fail_error_to_form(form, error)
            else:
                result = self.choose_import_resource_class(form, request)().import_data(
                    dataset, dry_run=True, file_name=upload.original_name, user=request.user
                )
                return self.render_result(request, result, upload)
        return self.render_import(request, {"form": form})

    def read_upload(self, upload: jobs.Upload) -> Any:
        return jobs.read(upload)

    def render_result(
        self,
        request: HttpRequest,
        result: Any,
        upload: jobs.Upload,
        *,
        changed: bool = False,
    ) -> HttpResponse:
        """The import page with a checked file: its preview, or its problems."""
        context: dict[str, Any] = {"result": result, "table_changed": changed}
        report = getattr(result, "report", None)
        if not result.has_errors() and not result.has_validation_errors():
            context["confirm_form"] = self.confirm_form_class(
                initial={
                    "import_file_name": upload.tmp_name,
                    "original_file_name": upload.original_name,
                    "format": upload.format_index(self.get_import_formats()),
                    "resource": "",
                    "table_version": report.version if report else "",
                }
            )
        return self.render_import(request, context)

    def render_import(self, request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
        # A fresh form to upload a (corrected) file, unless one is given.
        form = context.get("form") or self.get_import_form_class(request)(
            self.get_import_formats(), self.get_import_resource_classes(request)
        )
        resource = self.get_import_resource_classes(request)[0]()
        context = {
            **self.admin_site.each_context(request),
            **self.get_import_context_data(),
            "title": _("Import"),
            "form": form,
            "opts": self.model._meta,
            "media": self.media + form.media,
            "fields_list": [
                (
                    resource.get_display_name(),
                    [f.column_name for f in resource.get_user_visible_fields()],
                )
            ],
            "import_error_display": self.import_error_display,
            **context,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, [self.import_template_name], context)

    def process_import(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        """Import a previewed file: checked again, then written all or nothing."""
        if request.method != "POST":
            return HttpResponseRedirect(self.table_url("import"))
        if not self.has_import_permission(request):
            raise PermissionDenied
        confirm = self.create_confirm_form(request)
        if not confirm.is_valid():
            return self.render_import(request, {"errors": confirm.errors})
        data = confirm.cleaned_data
        upload = jobs.Upload(
            tmp_name=data["import_file_name"],
            original_name=data["original_file_name"],
            format_name=type(self.get_import_formats()[int(data["format"])]()).__name__,
        )
        version = data.get("table_version")
        if jobs.upload_size(upload) > jobs.background_bytes():
            job = jobs.start(self.model, upload, request.user, preview=False, version=version)
            return HttpResponseRedirect(self.job_url(job))
        try:
            dataset = self.read_upload(upload)
        except formats.FileProblem as error:
            messages.error(request, str(error))
            return HttpResponseRedirect(self.table_url("import"))
        except OSError:
            messages.error(request, _("The uploaded file is gone; please upload it again."))
            return HttpResponseRedirect(self.table_url("import"))
        resource = self.get_import_resource_classes(request)[0]()
        result = resource.import_data(
            dataset,
            dry_run=False,
            expected_version=version,
            file_name=upload.original_name,
            user=request.user,
        )
        return self.after_import(request, result, upload)

    def after_import(self, request: HttpRequest, result: Any, upload: jobs.Upload) -> HttpResponse:
        """Back to the table after a written import; else the problems, or a
        new preview if the table changed since the last one."""
        report = getattr(result, "report", None)
        if report is not None and report.written:
            jobs.discard(upload)
            self.log_import(request, report, upload)
            self.add_success_message(result, request)
            return HttpResponseRedirect(self.table_url("changelist"))
        changed = bool(report and report.table_changed)
        if changed:
            messages.warning(
                request,
                _(
                    "The table was changed after your preview, so nothing was imported. "
                    "The file was checked again against the table as it is now: "
                    "look at the preview and confirm again."
                ),
            )
        return self.render_result(request, result, upload, changed=changed)

    def log_import(self, request: HttpRequest, report: Any, upload: jobs.Upload) -> None:
        """One history entry for the whole file (one per row would be 100,000)."""
        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type=ContentType.objects.get_for_model(self.model),
            object_id=None,
            object_repr=(_("import of %(file)s") % {"file": upload.original_name})[:200],
            action_flag=ADDITION if not report.updated else CHANGE,
            change_message=_("Imported %(new)d new and %(updated)d changed rows from %(file)s.")
            % {"new": report.new, "updated": report.updated, "file": upload.original_name},
        )

    def import_job_view(self, request: HttpRequest, job: str) -> HttpResponse:
        """A long import's progress; its result once it has finished."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        state = jobs.load(job)
        if (
            state is None
            or state.table != self.model._definition_id
            or state.user != request.user.pk
        ):
            raise Http404(_("No such import."))
        if "json" in request.headers.get("Accept", "") or request.GET.get("format") == "json":
            return JsonResponse(state.progress())
        if state.status == "running":
            context = {
                **self.admin_site.each_context(request),
                "title": _("Import"),
                "opts": self.model._meta,
                "job": state,
                "progress": state.progress(),
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(request, "admin/tables/import_progress.html", context)
        upload = state.upload()
        if state.status == "failed":
            messages.error(request, state.message)
            return HttpResponseRedirect(self.table_url("import"))
        if state.status == "reported":
            return HttpResponseRedirect(self.table_url("changelist"))
        result = state.result()
        if state.preview:
            return self.render_result(request, result, upload)
        # Logged and announced once, whoever reloads the page later.
        state.status = "reported"
        state.save()
        return self.after_import(request, result, upload)

    def job_url(self, job: jobs.ImportJob) -> str:
        return self.table_url("import_job", job.id)

    def table_url(self, suffix: str, *args: Any) -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_{suffix}"
        return reverse(name, args=args, current_app=self.admin_site.name)


# -- the site ------------------------------------------------------------------------


class TableRegistry(dict):
    """The site's registry, which also answers for every user table.

    Static models are registered as usual; a user table's class (any
    version) maps to the generated admin of the table's current version.
    Iterating gives the static models only.
    """

    def __init__(self, site: MutantAdminSite):
        super().__init__()
        self.site = site

    def _table_admin(self, model: Any) -> TableAdmin | None:
        pk = getattr(model, "_definition_id", None)
        if pk is None:
            return None
        if not classes.is_current(model):
            try:
                model = classes.for_definition(pk)
            except ModelDefinition.DoesNotExist:
                return None
        return self.site.admin_for(model)

    def __contains__(self, model: Any) -> bool:
        return dict.__contains__(self, model) or self._table_admin(model) is not None

    def __getitem__(self, model: Any) -> admin.ModelAdmin:
        if dict.__contains__(self, model):
            return dict.__getitem__(self, model)
        found = self._table_admin(model)
        if found is None:
            raise KeyError(model)
        return found

    def get(self, model: Any, default: Any = None) -> Any:
        try:
            return self[model]
        except KeyError:
            return default


class MutantAdminSite(admin.AdminSite):
    """Django's admin, plus every user table, resolved per request."""

    site_title = getattr(settings, "GRAPPELLI_ADMIN_TITLE", "Mutant")
    site_header = site_title
    index_title = gettext_lazy("Tables and users")

    def __init__(self, name: str = "admin"):
        super().__init__(name)
        self._registry = TableRegistry(self)
        self._table_admins: PerVersion[TableAdmin] = PerVersion()

    # -- a table's admin ---------------------------------------------------------------

    def admin_for(self, model: type[models.Model]) -> TableAdmin:
        """The admin of a user table's class, generated for its version."""
        pk = model._definition_id

        def build() -> TableAdmin:
            admin_class = model_admin_for(ModelDefinition(pk=pk), model=model)
            # The table is new here, or changed elsewhere: its content type may be too.
            forget_cached_content_type(model._meta.model_name)
            return admin_class(model, self)

        return self._table_admins.get(pk, model._definition_version, build)

    def table_admin(self, request: HttpRequest, table: str) -> TableAdmin:
        """The admin of the table a request names; 404 if there is none."""
        model = getattr(request, "mutant_model", None)
        if model is None or model._meta.model_name != table.lower():
            definition = ModelDefinition.objects.filter(object_name__iexact=table).first()
            if definition is None:
                raise Http404(_("There is no table named %(table)s.") % {"table": table})
            model = definition.model_class()
        return self.admin_for(model)

    def table_view(self, request: HttpRequest, table: str, suffix: str, **kwargs: Any):
        model_admin = self.table_admin(request, table)
        match = request.resolver_match
        if match is not None:
            # What Django's admin would have named this page (preserved
            # filters compare it with the change list's name).
            match.url_name = f"{APP_LABEL}_{model_admin.opts.model_name}_{suffix}"
            match.view_name = ":".join([*match.namespaces, match.url_name])
        return getattr(model_admin, TABLE_VIEWS[suffix])(request, **kwargs)

    def table_redirect(self, request: HttpRequest, table: str, object_id: str):
        model_admin = self.table_admin(request, table)
        return HttpResponseRedirect(model_admin.table_url("change", object_id))

    def get_urls(self) -> list:
        def view(suffix: str):
            def table_page(request, table, **kwargs):
                return self.table_view(request, table, suffix, **kwargs)

            table_page.__name__ = f"table_{suffix}"
            return self.admin_view(table_page)

        table_urls = [
            path(route, view(name), name=route_name(name)) for name, route, _v in TABLE_ROUTES
        ]
        table_urls.append(path("<path:object_id>/", self.admin_view(self.table_redirect)))
        return [
            re_path(
                rf"^(?P<app_label>{APP_LABEL})/$", self.admin_view(self.app_index), name="app_list"
            ),
            path(f"{APP_LABEL}/<str:table>/", include(table_urls)),
            *super().get_urls(),
        ]

    # -- the index -----------------------------------------------------------------------

    def _build_app_dict(self, request: HttpRequest, label: str | None = None) -> dict:
        app_dict = super()._build_app_dict(request, label)
        if label in (None, APP_LABEL):
            tables = self._tables_app(request)
            if tables is not None:
                app_dict[APP_LABEL] = tables
        return app_dict

    def _tables_app(self, request: HttpRequest) -> dict | None:
        """The user tables this person may see, as the index lists an app."""
        user = request.user
        if not user.has_module_perms(APP_LABEL):
            return None
        rows = []
        for pk, version, object_name in ModelDefinition.objects.values_list(
            "pk", "version", "object_name"
        ):
            name = object_name.lower()
            perms = {
                action: user.has_perm(f"{APP_LABEL}.{action}_{name}")
                for action in ("add", "change", "delete", "view")
            }
            if not any(perms.values()):
                continue
            model = classes.for_definition(pk, version)
            rows.append(
                {
                    "model": model,
                    "name": capfirst(model._meta.verbose_name_plural),
                    "object_name": model._meta.object_name,
                    "perms": perms,
                    "admin_url": reverse(
                        f"admin:{APP_LABEL}_{name}_changelist", current_app=self.name
                    )
                    if perms["change"] or perms["view"]
                    else None,
                    "add_url": reverse(f"admin:{APP_LABEL}_{name}_add", current_app=self.name)
                    if perms["add"]
                    else None,
                    "view_only": not perms["change"],
                }
            )
        if not rows:
            return None
        from django.apps import apps

        return {
            "name": apps.get_app_config(APP_LABEL).verbose_name,
            "app_label": APP_LABEL,
            "app_url": reverse(
                "admin:app_list", kwargs={"app_label": APP_LABEL}, current_app=self.name
            ),
            "has_module_perms": True,
            "models": rows,
        }
