"""Long imports: checked and written in a background thread, so that no
request waits past its timeout, with their progress in a small JSON file.

The uploaded file already waits in import-export's temporary folder between
the preview and the confirmation; a job's state lives beside it, so every
worker process on the host can report it. A job that stops (its process
ended) has written nothing: an import is one transaction.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections, models
from django.utils.translation import gettext as _
from import_export.results import Result
from import_export.tmp_storages import TempFolderStorage

from builder import formats
from builder.importing import PreviewRow, Problem, Report

logger = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
STALLED_AFTER = 120  # seconds without progress: the job's process has gone
SAVE_EVERY = 0.5  # seconds between progress writes


def background_bytes() -> int:
    """Files larger than this are checked and imported in the background."""
    return int(getattr(settings, "MUTANT_IMPORT_BACKGROUND_BYTES", 1_000_000))


def jobs_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / "mutant-imports"
    folder.mkdir(exist_ok=True)
    return folder


# -- the uploaded file --------------------------------------------------------------------


@dataclass
class Upload:
    """A file waiting in import-export's temporary folder."""

    tmp_name: str
    original_name: str
    format_name: str

    def format(self) -> formats.base_formats.Format:
        return formats.format_for(self.format_name)()

    def format_index(self, import_formats: list[type]) -> int:
        """Where this file's format is in a list of format classes (the form's choice)."""
        return [f.__name__ for f in import_formats].index(self.format_name)

    def storage(self) -> TempFolderStorage:
        return TempFolderStorage(
            name=os.path.basename(self.tmp_name), read_mode=self.format().get_read_mode()
        )


def read(upload: Upload) -> Any:
    """The upload as a dataset (FileProblem if it cannot be read)."""
    return upload.format().create_dataset(upload.storage().read())


def upload_size(upload: Upload) -> int:
    try:
        return os.path.getsize(upload.storage().get_full_path())
    except OSError:
        return 0


def discard(upload: Upload) -> None:
    try:
        upload.storage().remove()
    except OSError:
        pass


# -- jobs ------------------------------------------------------------------------------------


@dataclass
class ImportJob:
    id: str
    table: int
    user: int | None
    preview: bool
    tmp_name: str
    original_name: str
    format_name: str
    version: int | None = None
    status: str = "running"  # running, done, failed; reported: shown after importing
    phase: str = "reading"  # reading, checking, writing
    done: int = 0
    total: int = 0
    message: str = ""
    outcome: dict[str, Any] | None = None
    updated: float = field(default_factory=time.time)

    def upload(self) -> Upload:
        return Upload(self.tmp_name, self.original_name, self.format_name)

    def progress(self) -> dict[str, Any]:
        percent = int(100 * self.done / self.total) if self.total else 0
        return {
            "status": self.status,
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "percent": percent,
            "message": self.message,
        }

    def result(self) -> Result:
        """import-export's Result of the finished job."""
        from builder.resources import result_from_report

        outcome = self.outcome or {}
        report = report_from_dict(outcome.get("report", {}))
        raw = outcome.get("raw", {})
        return result_from_report(report, lambda number: tuple(raw.get(str(number), ())))

    def save(self) -> None:
        self.updated = time.time()
        path = jobs_folder() / f"{self.id}.json"
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(asdict(self)))
        os.replace(scratch, path)


def load(job_id: str) -> ImportJob | None:
    if not JOB_ID.match(job_id):
        return None
    try:
        state = json.loads((jobs_folder() / f"{job_id}.json").read_text())
    except (OSError, ValueError):
        return None
    job = ImportJob(**state)
    if job.status == "running" and time.time() - job.updated > STALLED_AFTER:
        job.status = "failed"
        job.message = _("The import stopped before it finished; nothing was imported.")
    return job


def start(
    model: type[models.Model],
    upload: Upload,
    user: Any,
    *,
    preview: bool,
    version: int | None = None,
) -> ImportJob:
    """Check (preview) or import an uploaded file in a background thread."""
    job = ImportJob(
        id=uuid.uuid4().hex,
        table=model._definition_id,
        user=getattr(user, "pk", None),
        preview=preview,
        tmp_name=upload.tmp_name,
        original_name=upload.original_name,
        format_name=upload.format_name,
        version=version,
    )
    job.save()
    forget_old_jobs()
    threading.Thread(target=run, args=(job,), name=f"import-{job.id}", daemon=True).start()
    return job


def forget_old_jobs(age: float = 86400) -> None:
    """Remove the state of jobs that ended (or stalled) more than `age` seconds ago."""
    limit = time.time() - age
    for path in jobs_folder().glob("*.json"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
        except OSError:
            pass


def run(job: ImportJob) -> None:
    """The job's work; every outcome ends in its state file."""
    from builder.resources import resource_for
    from mutant.models import ModelDefinition

    last_save = 0.0

    def progress(phase: str, done: int, total: int) -> None:
        nonlocal last_save
        job.phase, job.done, job.total = phase, done, total
        now = time.time()
        if now - last_save >= SAVE_EVERY:
            last_save = now
            job.save()

    try:
        model = ModelDefinition.objects.get(pk=job.table).model_class()
        dataset = read(job.upload())
        job.total = len(dataset)
        job.phase = "checking"
        job.save()
        result = resource_for(model)().import_data(
            dataset,
            dry_run=job.preview,
            expected_version=job.version,
            file_name=job.original_name,
            progress=progress,
        )
        if result.base_errors and getattr(result, "report", None) is None:
            raise ImportFailed(" ".join(str(e.error) for e in result.base_errors))
        job.outcome = {
            "report": report_to_dict(result.report),
            "raw": {
                str(row.number): [_jsonable(v) for v in row.values] for row in result.invalid_rows
            },
        }
        job.status = "done"
    except (formats.FileProblem, ImportFailed) as error:
        job.status, job.message = "failed", str(error)
    except Exception:
        logger.exception("Import job %s failed", job.id)
        job.status = "failed"
        job.message = _("The import failed unexpectedly; nothing was imported.")
    finally:
        job.save()
        connections.close_all()


class ImportFailed(Exception):
    pass


# -- reports as JSON ------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def report_to_dict(report: Report) -> dict[str, Any]:
    data = asdict(report)
    for problem in data["problems"] + data["file_problems"]:
        problem["value"] = _jsonable(problem["value"])
    for row in data["preview"]:
        row["values"] = [_jsonable(v) for v in row["values"]]
    return data


def report_from_dict(data: dict[str, Any]) -> Report:
    data = dict(data)
    data["problems"] = [Problem(**p) for p in data.get("problems", [])]
    data["file_problems"] = [Problem(**p) for p in data.get("file_problems", [])]
    data["preview"] = [PreviewRow(**p) for p in data.get("preview", [])]
    return Report(**data)
