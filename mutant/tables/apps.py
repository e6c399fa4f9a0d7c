"""The app of user tables: `apps.get_model("tables", name)` builds them lazily.

This app has no migrations module on purpose: `makemigrations` and
`migrate` leave app labels without one alone, so user tables never
appear in migrations even while their classes are registered.
"""

from django.apps import AppConfig
from django.db import models
from django.utils.translation import gettext_lazy as _


class TablesConfig(AppConfig):
    name = "mutant.tables"
    label = "tables"
    verbose_name = _("Your tables")

    def get_model(self, model_name: str, require_ready: bool = True) -> type[models.Model]:
        if require_ready:
            self.apps.check_models_ready()
        else:
            self.apps.check_apps_ready()
        from mutant import classes
        from mutant.models import ModelDefinition

        row = (
            ModelDefinition.objects.filter(object_name__iexact=model_name)
            .values_list("pk", "version")
            .first()
        )
        if row is None:
            classes.forget_name(model_name)
            raise LookupError(f"App {self.label!r} doesn't have a {model_name!r} model.")
        return classes.for_definition(*row)
