"""The field types: one FieldDefinition subclass per Django field.

Each declares its Django field class, the options a person may set, the
category it is shown under and a one-line description for the type picker.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from mutant.catalogue import DATE_AND_TIME, NUMBER, OTHER, TEXT, WEB, YES_NO
from mutant.models.definitions import FieldDefinition


def max_length_field(default: int) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        _("maximum length"),
        default=default,
        validators=[MinValueValidator(1), MaxValueValidator(10485760)],
    )


class CharFieldDefinition(FieldDefinition):
    max_length = max_length_field(255)

    class Meta:
        app_label = "mutant"
        verbose_name = _("short text")
        defined_field_class = models.CharField
        defined_field_options = ("max_length",)
        defined_field_category = TEXT
        defined_field_description = _("One line of text: a name, a code, a title.")


class TextFieldDefinition(FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("long text")
        defined_field_class = models.TextField
        defined_field_category = TEXT
        defined_field_description = _("Any amount of text, over several lines.")


class SlugFieldDefinition(FieldDefinition):
    max_length = max_length_field(50)

    class Meta:
        app_label = "mutant"
        verbose_name = _("slug")
        defined_field_class = models.SlugField
        defined_field_options = ("max_length",)
        defined_field_category = TEXT
        defined_field_description = _(
            "A short label of letters, digits, hyphens and underscores, for web addresses."
        )


class IntegerFieldDefinition(FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("whole number")
        defined_field_class = models.IntegerField
        defined_field_category = NUMBER
        defined_field_description = _("A whole number, positive or negative.")


class BigIntegerFieldDefinition(FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("big whole number")
        defined_field_class = models.BigIntegerField
        defined_field_category = NUMBER
        defined_field_description = _(
            "A whole number too large for an ordinary one (beyond two billion)."
        )


class PositiveIntegerFieldDefinition(FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("positive whole number")
        defined_field_class = models.PositiveIntegerField
        defined_field_category = NUMBER
        defined_field_description = _("A whole number, zero or more: a count, a quantity.")


class DecimalFieldDefinition(FieldDefinition):
    max_digits = models.PositiveSmallIntegerField(
        _("digits in all"),
        default=12,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
    )
    decimal_places = models.PositiveSmallIntegerField(
        _("digits after the point"),
        default=2,
        validators=[MaxValueValidator(1000)],
    )

    class Meta:
        app_label = "mutant"
        verbose_name = _("decimal number")
        defined_field_class = models.DecimalField
        defined_field_options = ("max_digits", "decimal_places")
        defined_field_category = NUMBER
        defined_field_description = _(
            "An exact number with a fixed count of decimals: money, measures."
        )

    def clean(self) -> None:
        if (
            self.max_digits is not None
            and self.decimal_places is not None
            and self.decimal_places > self.max_digits
        ):
            raise ValidationError(
                {
                    "decimal_places": gettext(
                        "There cannot be more digits after the point than digits in all."
                    )
                }
            )
        super().clean()


class FloatFieldDefinition(FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("floating-point number")
        defined_field_class = models.FloatField
        defined_field_category = NUMBER
        defined_field_description = _(
            "An approximate number, for measurements where exact decimals do not matter."
        )


class BooleanFieldDefinition(FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("yes/no")
        defined_field_class = models.BooleanField
        defined_field_category = YES_NO
        defined_field_description = _("Yes or no, on or off.")

    TRUE = {"1", "true", "t", "yes", "y", "on"}
    FALSE = {"0", "false", "f", "no", "n", "off"}

    def parse_value(self, text: Any) -> Any:
        if isinstance(text, str):
            word = text.strip().lower()
            if word == "":
                return None
            if word in self.TRUE:
                return True
            if word in self.FALSE:
                return False
            raise ValidationError(gettext("%(value)r is neither yes nor no.") % {"value": text})
        return super().parse_value(text)


class AutoNowMixin(models.Model):
    auto_now = models.BooleanField(_("set to now on every save"), default=False)
    auto_now_add = models.BooleanField(_("set to now when created"), default=False)

    class Meta:
        abstract = True

    def clean(self) -> None:
        if self.auto_now and self.auto_now_add:
            raise ValidationError(
                {"auto_now": gettext("Choose either 'on every save' or 'when created'.")}
            )
        super().clean()


class DateFieldDefinition(AutoNowMixin, FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("date")
        defined_field_class = models.DateField
        defined_field_options = ("auto_now", "auto_now_add")
        defined_field_category = DATE_AND_TIME
        defined_field_description = _("A day in the calendar.")


class DateTimeFieldDefinition(AutoNowMixin, FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("date and time")
        defined_field_class = models.DateTimeField
        defined_field_options = ("auto_now", "auto_now_add")
        defined_field_category = DATE_AND_TIME
        defined_field_description = _("A moment: a day and a time of day.")

    def parse_value(self, text: Any) -> Any:
        value = super().parse_value(text)
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value


class TimeFieldDefinition(AutoNowMixin, FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("time of day")
        defined_field_class = models.TimeField
        defined_field_options = ("auto_now", "auto_now_add")
        defined_field_category = DATE_AND_TIME
        defined_field_description = _("A time of day, without a date.")


class DurationFieldDefinition(FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("duration")
        defined_field_class = models.DurationField
        defined_field_category = DATE_AND_TIME
        defined_field_description = _("A length of time: 1:30:00, 2 days 4:00:00.")


class EmailFieldDefinition(FieldDefinition):
    max_length = max_length_field(254)

    class Meta:
        app_label = "mutant"
        verbose_name = _("email address")
        defined_field_class = models.EmailField
        defined_field_options = ("max_length",)
        defined_field_category = WEB
        defined_field_description = _("An email address, checked when entered.")


class URLFieldDefinition(FieldDefinition):
    max_length = max_length_field(200)

    class Meta:
        app_label = "mutant"
        verbose_name = _("web address")
        defined_field_class = models.URLField
        defined_field_options = ("max_length",)
        defined_field_category = WEB
        defined_field_description = _("A web address (URL), checked when entered.")


class GenericIPAddressFieldDefinition(FieldDefinition):
    PROTOCOLS = (("both", _("IPv4 or IPv6")), ("IPv4", "IPv4"), ("IPv6", "IPv6"))
    protocol = models.CharField(_("protocol"), max_length=4, choices=PROTOCOLS, default="both")

    class Meta:
        app_label = "mutant"
        verbose_name = _("IP address")
        defined_field_class = models.GenericIPAddressField
        defined_field_options = ("protocol",)
        defined_field_category = WEB
        defined_field_description = _("An IPv4 or IPv6 network address.")


class UUIDFieldDefinition(FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("UUID")
        defined_field_class = models.UUIDField
        defined_field_category = OTHER
        defined_field_description = _("A universally unique identifier.")


class JSONFieldDefinition(FieldDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("JSON data")
        defined_field_class = models.JSONField
        defined_field_category = OTHER
        defined_field_description = _("Structured data: lists and objects, as JSON.")

    def parse_value(self, text: Any) -> Any:
        if isinstance(text, str):
            try:
                return json.loads(text)
            except ValueError:
                # Plain text is a JSON string.
                return text
        return text

    def value_to_text(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
