"""Report drift between table definitions and the database; exit 1 if any."""

from django.core.management.base import BaseCommand, CommandError

from mutant.introspection import drift


class Command(BaseCommand):
    help = "Compare every table definition with the database and report differences."

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default")

    def handle(self, *args, database: str, **options):
        problems = drift(database)
        for problem in problems:
            self.stdout.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} difference(s) between definitions and database.")
        self.stdout.write(self.style.SUCCESS("Definitions and database agree."))
