"""Purge what has been in the trash longer than a retention period."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mutant.errors import MutantError
from mutant.models import FieldDefinition, ModelDefinition


class Command(BaseCommand):
    help = "Purge fields and tables that have been in the trash for more than --days days."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, required=True, help="retention period")
        parser.add_argument("--dry-run", action="store_true", help="only list what would go")

    def handle(self, *args, days: float, dry_run: bool, **options):
        if days < 0:
            raise CommandError("--days cannot be negative.")
        limit = timezone.now() - timedelta(days=days)
        fields = [
            f.type_cast()
            for f in FieldDefinition.all_objects.filter(trashed_at__lte=limit).select_related(
                "model_def"
            )
            if not f.model_def.trashed_at
        ]
        tables = list(ModelDefinition.all_objects.filter(trashed_at__lte=limit))
        failed = 0
        for item in [*fields, *tables]:
            what = f"{item._meta.verbose_name} {item}"
            if dry_run:
                self.stdout.write(f"would purge {what}")
                continue
            try:
                item.purge()
            except MutantError as error:
                failed += 1
                self.stderr.write(f"kept {what}: {error}")
            else:
                self.stdout.write(f"purged {what}")
        self.purge_backups(limit, dry_run)
        if failed:
            raise CommandError(f"{failed} item(s) could not be purged.")

    def purge_backups(self, limit, dry_run: bool) -> None:
        """Old values kept to undo a change of type: gone after the retention too."""
        from django.db import connection

        from mutant.models import SchemaEvent

        events = SchemaEvent.objects.filter(created_at__lte=limit).exclude(backups={})
        for event in events:
            if dry_run:
                self.stdout.write(f"would purge the backup of: {event}")
                continue
            with connection.schema_editor() as editor:
                for table in event.backups.values():
                    editor.execute(f"DROP TABLE IF EXISTS {editor.quote_name(table)}")
                event.backups = {}
                event.undoable = False
                event.undo_blocker = "its backup was purged"
                event.save(update_fields=["backups", "undoable", "undo_blocker"])
            self.stdout.write(f"purged the backup of: {event}")
