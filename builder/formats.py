"""Reading and writing spreadsheet files: CSV (any common delimiter and
encoding), XLSX and JSON, as import-export formats.

A file is read exactly or refused with a sentence that says why; it is never
read as garbage. Text cells that a spreadsheet would run as a formula are
written with a leading apostrophe, which reading takes off again.
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tablib
from django.utils.translation import gettext as _
from import_export.formats import base_formats

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
DELIMITERS = (",", ";", "\t", "|")
SNIFF_LINES = 50


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a file's rows are made or
    checked: its passes over 100,000s of new lists would take most of the time,
    and rows make no reference cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class FileProblem(ValueError):
    """A file that cannot be read as the format it was given as; str() says why."""


# -- formulas -------------------------------------------------------------------


def neutralise_formula(text: str) -> str:
    """`text` as a spreadsheet shows it, never runs it: '=1+1 stays text.

    Apostrophes already in front of a formula character get one more, so
    that `restore_formula` gives back exactly the original.
    """
    if text.lstrip("'").startswith(FORMULA_START):
        return "'" + text
    return text


def restore_formula(text: str) -> str:
    """The text `neutralise_formula` was given."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_START):
        return text[1:]
    return text


# -- text files -----------------------------------------------------------------


def decode(data: bytes | str, encoding: str | None = None) -> str:
    """The text of a file: UTF-8 (with or without a BOM), UTF-16 with a BOM,
    or Windows-1252/Latin-1; anything else is refused."""
    if isinstance(data, str):
        text = data
    elif encoding:
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as error:
            raise FileProblem(
                _("The file cannot be read as %(encoding)s: %(error)s.")
                % {"encoding": encoding, "error": error}
            ) from None
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise FileProblem(_("The file says it is UTF-16 but is not.")) from None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Not UTF-8: the one other encoding spreadsheets commonly write
            # is Windows-1252, of which Latin-1's printable part is a subset.
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                raise FileProblem(
                    _(
                        "The file's characters are in an unknown encoding. Save it as "
                        "CSV UTF-8 from your spreadsheet program and try again."
                    )
                ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        raise FileProblem(
            _(
                "This does not look like a text file (it holds binary data). "
                "If it is a spreadsheet, choose the xlsx format."
            )
        )
    return text


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the same number of
    columns (more than one); a comma if none does."""
    sample = text.splitlines()[:SNIFF_LINES]
    best, best_width = ",", 1
    for delimiter in DELIMITERS:
        widths = {
            len(row) for row in csv.reader(sample, delimiter=delimiter) if any(c for c in row)
        }
        if len(widths) == 1:
            width = widths.pop()
            if width > best_width:
                best, best_width = delimiter, width
    return best


def read_delimited(text: str, delimiter: str | None = None) -> tablib.Dataset:
    """A dataset from delimited text; the first row holds the column names."""
    delimiter = delimiter or sniff_delimiter(text)
    with gc_paused():
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except csv.Error as error:
            raise FileProblem(
                _("The file is not valid CSV: %(error)s.") % {"error": error}
            ) from None
        return dataset_from_rows(rows, text_only=True)


def dataset_from_rows(rows: list[list[Any]], *, text_only: bool = False) -> tablib.Dataset:
    """A dataset from a header row and data rows; blank rows are left out.

    Rows shorter than the header are padded with empty cells; a row with a
    value beyond the last column is refused, since it was probably split
    with the wrong delimiter.
    """
    if text_only:
        # Every cell is a string: a blank row joins to blank text.
        rows = [row for row in rows if row and "".join(row).strip()]
    else:
        rows = [row for row in rows if any(not _empty(cell) for cell in row)]
    if not rows:
        raise FileProblem(_("The file is empty."))
    headers = ["" if cell is None else str(cell).strip() for cell in rows[0]]
    width = len(headers)
    while (
        width
        and headers[width - 1] == ""
        and all(len(row) < width or _empty(row[width - 1]) for row in rows[1:])
    ):
        width -= 1
    headers = headers[:width]
    data = rows[1:]
    if any(len(row) != width for row in data):
        data = [_fit(row, width, number) for number, row in enumerate(data, 1)]
    dataset = tablib.Dataset(headers=headers)
    # Appending row by row re-checks the width each time: set the rows at once.
    dataset._data = [_Row(row) for row in data]
    return dataset


class _Row(tablib.core.Row):
    """A dataset row that keeps the list it is given (tablib's copies it)."""

    __slots__ = ()

    def __init__(self, row: list[Any]):
        self._row = row
        self.tags = []


def _fit(row: list[Any], width: int, number: int) -> list[Any]:
    """The row padded to `width`, or cut to it if the cells beyond are empty."""
    if len(row) > width:
        if any(not _empty(cell) for cell in row[width:]):
            raise FileProblem(
                _(
                    "Row %(row)d has more cells (%(cells)d) than the first row has "
                    "column names (%(width)d)."
                )
                % {"row": number, "cells": len(row), "width": width}
            )
        return list(row[:width])
    return list(row) + [None] * (width - len(row))


def _empty(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


# -- import-export formats --------------------------------------------------------


class CSV(base_formats.CSV):
    """Comma-, semicolon-, tab- or pipe-separated text in any common encoding."""

    def get_read_mode(self) -> str:
        # Bytes: the encoding is found from the content (see `decode`).
        return "rb"

    def create_dataset(self, in_stream: bytes | str, **kwargs: Any) -> tablib.Dataset:
        return read_delimited(decode(in_stream, self.encoding), kwargs.get("delimiter"))

    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> str:
        return dataset.export("csv", **kwargs)


class TSV(CSV):
    TABLIB_MODULE = "tablib.formats._tsv"
    CONTENT_TYPE = "text/tab-separated-values"

    def create_dataset(self, in_stream: bytes | str, **kwargs: Any) -> tablib.Dataset:
        return read_delimited(decode(in_stream, self.encoding), "\t")

    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> str:
        return dataset.export("tsv", **kwargs)


class JSON(base_formats.JSON):
    """A list of objects, one per row, keyed by column name."""

    def get_read_mode(self) -> str:
        return "rb"

    def create_dataset(self, in_stream: bytes | str, **kwargs: Any) -> tablib.Dataset:
        try:
            records = json.loads(decode(in_stream, self.encoding))
        except ValueError as error:
            raise FileProblem(
                _("The file is not valid JSON: %(error)s.") % {"error": error}
            ) from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise FileProblem(
                _("A JSON file must hold a list of objects, one per row, keyed by column name.")
            )
        headers: dict[str, None] = {}
        for record in records:
            headers.update(dict.fromkeys(record))
        names = list(headers)
        return dataset_from_rows([names] + [[r.get(name) for name in names] for r in records])

    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> str:
        return dataset.export("json")


class XLSX(base_formats.XLSX):
    """The first sheet of an Excel workbook; the first row holds the column names."""

    def create_dataset(self, in_stream: bytes, **kwargs: Any) -> tablib.Dataset:
        import openpyxl

        try:
            book = openpyxl.load_workbook(io.BytesIO(in_stream), read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError):
            raise FileProblem(
                _("This is not an Excel (xlsx) file. Choose the format that matches the file.")
            ) from None
        try:
            with gc_paused():
                rows = [list(row) for row in book.active.iter_rows(values_only=True)]
        finally:
            book.close()
        with gc_paused():
            return dataset_from_rows(rows)


FORMATS = [CSV, XLSX, JSON, TSV]
"""The formats every table's admin offers, the first being the default."""

BY_NAME = {f.__name__.lower(): f for f in FORMATS}


def format_for(name: str | None, file_name: str | None = None) -> type[base_formats.Format]:
    """A format by its name (csv, xlsx, json, tsv), else by the file's extension."""
    key = (name or "").lower()
    if not key and file_name:
        key = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
        key = {"txt": "csv", "jsn": "json"}.get(key, key)
    try:
        return BY_NAME[key]
    except KeyError:
        raise FileProblem(
            _("Unknown format %(name)r: use one of %(names)s.")
            % {"name": name or file_name, "names": ", ".join(BY_NAME)}
        ) from None
