"""The builder app, and the admin app whose default site knows user tables."""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_delete, post_migrate
from django.utils.translation import gettext_lazy as _


class BuilderConfig(AppConfig):
    name = "builder"
    verbose_name = _("Table builder")

    def ready(self) -> None:
        from builder import admin, permissions
        from mutant import signals
        from mutant.models import ModelDefinition

        signals.table_created.connect(permissions.on_table_created, dispatch_uid="builder")
        signals.table_renamed.connect(permissions.on_table_renamed, dispatch_uid="builder")
        signals.table_changed.connect(permissions.on_table_changed, dispatch_uid="builder")
        signals.table_deleted.connect(permissions.on_table_deleted, dispatch_uid="builder")
        post_migrate.connect(permissions.sync_all, sender=self, dispatch_uid="builder")
        post_delete.connect(
            permissions.on_definition_deleted, sender=ModelDefinition, dispatch_uid="builder"
        )
        admin.install_table_urls()


class MutantAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin whose default site serves every user table
    (INSTALLED_APPS names it instead of "django.contrib.admin")."""

    default = False  # "builder" alone means BuilderConfig
    default_site = "builder.admin.MutantAdminSite"
