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
        if failed:
            raise CommandError(f"{failed} item(s) could not be purged.")
