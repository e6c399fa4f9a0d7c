"""Definition models and field types, importable as `mutant.models`."""

from mutant.models.definitions import (
    APP_LABEL,
    FieldDefinition,
    ModelDefinition,
)
from mutant.models.fields import (
    BigIntegerFieldDefinition,
    BooleanFieldDefinition,
    CharFieldDefinition,
    DateFieldDefinition,
    DateTimeFieldDefinition,
    DecimalFieldDefinition,
    DurationFieldDefinition,
    EmailFieldDefinition,
    FloatFieldDefinition,
    GenericIPAddressFieldDefinition,
    IntegerFieldDefinition,
    JSONFieldDefinition,
    PositiveIntegerFieldDefinition,
    SlugFieldDefinition,
    TextFieldDefinition,
    TimeFieldDefinition,
    URLFieldDefinition,
    UUIDFieldDefinition,
)
from mutant.models.history import SchemaEvent
from mutant.models.relations import (
    ForeignKeyDefinition,
    ManyToManyFieldDefinition,
    OneToOneFieldDefinition,
)

__all__ = [
    "APP_LABEL",
    "BigIntegerFieldDefinition",
    "BooleanFieldDefinition",
    "CharFieldDefinition",
    "DateFieldDefinition",
    "DateTimeFieldDefinition",
    "DecimalFieldDefinition",
    "DurationFieldDefinition",
    "EmailFieldDefinition",
    "FieldDefinition",
    "FloatFieldDefinition",
    "ForeignKeyDefinition",
    "ManyToManyFieldDefinition",
    "OneToOneFieldDefinition",
    "GenericIPAddressFieldDefinition",
    "IntegerFieldDefinition",
    "JSONFieldDefinition",
    "ModelDefinition",
    "PositiveIntegerFieldDefinition",
    "SchemaEvent",
    "SlugFieldDefinition",
    "TextFieldDefinition",
    "TimeFieldDefinition",
    "URLFieldDefinition",
    "UUIDFieldDefinition",
]
