"""The engine's own app: definitions, field types, schema changes."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MutantConfig(AppConfig):
    name = "mutant"
    verbose_name = _("Table definitions")
    default_auto_field = "django.db.models.BigAutoField"
