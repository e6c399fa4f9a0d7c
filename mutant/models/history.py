"""The schema history: one row per schema operation, written in its transaction."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext_lazy as _

from mutant.models.definitions import ModelDefinition


class SchemaEvent(models.Model):
    """What one schema operation did, who did it, and how to undo it."""

    created_at = models.DateTimeField(_("when"), auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("who"),
    )
    description = models.TextField(_("what"))
    tables = models.ManyToManyField(ModelDefinition, related_name="history", blank=True)
    table_names = models.CharField(_("tables"), max_length=500, blank=True)
    # The definitions of every table the operation touched, as they were
    # before it: {table pk: {"table": {...}, "fields": [{...}, ...]} or null}.
    snapshot = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    # {field pk: table} holding a field's values from before a change of type.
    backups = models.JSONField(default=dict, blank=True)
    undoable = models.BooleanField(_("can be undone"), default=False)
    undo_blocker = models.CharField(_("why it cannot be undone"), max_length=300, blank=True)
    undone_by = models.OneToOneField(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="undoes",
    )

    class Meta:
        app_label = "mutant"
        ordering = ("-pk",)
        verbose_name = _("schema change")
        verbose_name_plural = _("schema history")

    def __str__(self) -> str:
        return self.description
