"""Which user tables are linked: the groups that change and lock together.

Tables joined by links (either way, directly or through others) form one
group. A change to any member bumps every member's version and rebuilds
their classes together, because each class holds the others' classes in its
links and reverse accessors.
"""

from __future__ import annotations

from collections.abc import Iterable

from mutant import catalogue


def edges() -> list[tuple[int, int]]:
    """(source table, target table) for every link between user tables."""
    found: list[tuple[int, int]] = []
    for kind in catalogue.field_types():
        if kind.is_relation:
            found += kind.objects.filter(to_definition__isnull=False).values_list(
                "model_def_id", "to_definition_id"
            )
    return found


def linked_group(pks: Iterable[int]) -> list[int]:
    """Every table linked to any of `pks`, with them, in ascending order."""
    group = {pk for pk in pks if pk}
    if not group:
        return []
    neighbours: dict[int, set[int]] = {}
    for source, target in edges():
        neighbours.setdefault(source, set()).add(target)
        neighbours.setdefault(target, set()).add(source)
    pending = list(group)
    while pending:
        for other in neighbours.get(pending.pop(), ()):
            if other not in group:
                group.add(other)
                pending.append(other)
    return sorted(group)
