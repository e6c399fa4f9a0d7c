"""Signals sent inside a schema change's transaction, after its DDL.

Receivers that write rows (content types, permissions, history) share the
change's transaction: if they fail, the whole change rolls back.
"""

from django.dispatch import Signal

# sender=ModelDefinition; definition=the ModelDefinition (fresh version)
table_created = Signal()
# sender=ModelDefinition; definition, old_object_name
table_renamed = Signal()
# sender=ModelDefinition; pk, object_name (the row is gone)
table_deleted = Signal()
# sender=ModelDefinition; definition, report (a ChangeReport) - after any change
table_changed = Signal()
