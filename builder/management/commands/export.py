"""django-import-export's `export` command, for user tables too.

`python manage.py export CSV tables.Penguin` writes the table through its
generated resource: columns named by the fields' labels, every value in
the text its field reads back, formulas neutralised. Other models go
through the stock command unchanged.
"""

from __future__ import annotations

import sys
from typing import Any

from import_export.command_utils import get_format_class
from import_export.management.commands import export as stock

from builder import formats
from builder.resources import resource_for_label


class Command(stock.Command):
    help = stock.Command.help + " User tables are named by label, e.g. tables.Penguin."

    def handle(self, *args: Any, **options: Any) -> None:
        resource_class = resource_for_label(options["resource"])
        if resource_class is None:
            return super().handle(*args, **options)
        encoding = options.get("encoding")
        try:
            file_format = formats.format_for(options["format"])(encoding=encoding)
        except formats.FileProblem:
            file_format = get_format_class(options["format"], None, encoding)
        data = resource_class().export(force_native_type=file_format.is_binary())
        exported = file_format.export_data(data)
        if not file_format.is_binary():
            exported = exported.encode(encoding or "utf-8")
        elif self.stdout.isatty():
            self.stderr.write(
                self.style.ERROR(
                    "This is a binary format and your terminal does not support "
                    "binary data. Redirect the output to a file."
                )
            )
            sys.exit(1)
        self.stdout.buffer.write(exported)
