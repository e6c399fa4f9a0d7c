"""django-import-export's `import` command, for user tables too.

`python manage.py import tables.Penguin penguins.csv` imports through the
table's generated resource: every row is checked, and the file is written
all or nothing; every problem is printed with its row and column. Other
models go through the stock command unchanged.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from django.core.management.base import CommandError

from builder import formats
from builder.resources import resource_for_label

stock = importlib.import_module("import_export.management.commands.import")


class Command(stock.Command):
    help = stock.Command.help + " User tables are named by label, e.g. tables.Penguin."

    def handle(self, *args: Any, **options: Any) -> None:
        resource_class = resource_for_label(options["resource"])
        if resource_class is None:
            return super().handle(*args, **options)
        if options["interactive"]:
            if input("Are you sure you want to import the data? [yes/no]: ") != "yes":
                raise CommandError("Import cancelled.")
        file_name = options["import_file_name"]
        try:
            input_format = formats.format_for(options.get("format"), file_name)(
                encoding=options.get("encoding")
            )
            if file_name == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(file_name, "rb") as file:
                    data = file.read()
            dataset = input_format.create_dataset(data)
        except (formats.FileProblem, OSError) as error:
            raise CommandError(str(error)) from None
        dry_run = options.get("dry_run")
        resource = resource_class()
        result = resource.import_data(dataset, dry_run=dry_run)
        report = getattr(result, "report", None)
        if dry_run:
            self.stderr.write(
                self.style.NOTICE(
                    "You have activated the --dry-run option so no data will be modified."
                )
            )
        if report is None or not report.ok:
            self.stderr.write(self.style.ERROR("Import errors! Nothing was imported."))
            for error in result.base_errors:
                self.stderr.write(self.style.ERROR(str(error.error)))
            if report is not None:
                self.stderr.write(self.style.ERROR(report.describe()))
            sys.exit(1)
        verb = "would import" if dry_run else "imported"
        self.stderr.write(
            self.style.NOTICE(
                f"Import finished: {verb} {report.new} new and {report.updated} updated "
                f"{resource._meta.model._meta.verbose_name_plural}."
            )
        )
