"""Errors a person can meet when changing a table, with readable messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext


class MutantError(Exception):
    """Base of the engine's errors; str() is a sentence for a person."""


class SchemaError(MutantError):
    """A schema change that cannot run the way it was asked."""


class DefinitionBusy(MutantError):
    """Someone else is changing the table and the wait timed out."""

    def __init__(self, message: str | None = None):
        super().__init__(message or _("This table is being changed, try again in a moment."))


@dataclass
class RowProblem:
    """One stored value that a change cannot keep."""

    pk: Any
    value: Any
    reason: str


@dataclass
class FieldReport:
    """What a change does to the values of one column."""

    field: str
    action: str
    total: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    problem_count: int = 0
    examples: list[tuple[Any, Any]] = field(default_factory=list)

    @property
    def converted(self) -> int:
        return self.total - self.problem_count

    def add_problem(self, problem: RowProblem, keep: int = 10) -> None:
        self.problem_count += 1
        if len(self.problems) < keep:
            self.problems.append(problem)

    def describe(self) -> str:
        shown = "; ".join(
            _("row %(pk)s: %(value)r (%(reason)s)")
            % {"pk": p.pk, "value": p.value, "reason": p.reason}
            for p in self.problems[:5]
        )
        return ngettext(
            "%(field)s: %(count)d of %(total)d row cannot be kept when you "
            "%(action)s, for example %(examples)s.",
            "%(field)s: %(count)d of %(total)d rows cannot be kept when you "
            "%(action)s, for example %(examples)s.",
            self.total,
        ) % {
            "field": self.field,
            "count": self.problem_count,
            "total": self.total,
            "action": self.action,
            "examples": shown,
        }


@dataclass
class ChangeReport:
    """What a schema change would do to stored data; empty when nothing is lost."""

    fields: list[FieldReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.problem_count for f in self.fields)

    @property
    def problems(self) -> list[FieldReport]:
        return [f for f in self.fields if f.problem_count]

    def describe(self) -> str:
        return " ".join(f.describe() for f in self.problems)


class DataLossError(SchemaError):
    """A change refused because stored values would be lost or rejected."""

    def __init__(self, report: ChangeReport):
        self.report = report
        super().__init__(report.describe())
