"""Another process sees schema changes without restarting."""

from __future__ import annotations

from mutant.models import CharFieldDefinition, IntegerFieldDefinition, ModelDefinition


def test_a_second_process_sees_a_new_field_without_restarting(child):
    md = ModelDefinition.objects.create(object_name="Penguin")
    CharFieldDefinition.objects.create(model_def=md, name="species", max_length=60)
    child.run("from django.apps import apps")
    fields = "result = [f.name for f in apps.get_model('tables.Penguin')._meta.concrete_fields]"
    assert child.run(fields) == ["id", "species"]

    IntegerFieldDefinition.objects.create(model_def=md, name="age", null=True)

    assert child.run(fields) == ["id", "species", "age"]
    child.run("apps.get_model('tables.Penguin').objects.create(species='Adelie', age=4)")
    assert md.model_class().objects.get().age == 4


def test_a_second_process_sees_renames_and_deletions(child):
    md = ModelDefinition.objects.create(object_name="Penguin")
    species = CharFieldDefinition.objects.create(model_def=md, name="species", max_length=60)
    md.model_class().objects.create(species="Gentoo")
    child.run("from django.apps import apps")
    assert child.run("result = apps.get_model('tables.Penguin').objects.get().species") == "Gentoo"

    species.name = "kind"
    species.save()
    assert child.run("result = apps.get_model('tables.Penguin').objects.get().kind") == "Gentoo"

    md.object_name = "Bird"
    md.save()
    assert child.run("result = apps.get_model('tables.Bird').objects.count()") == 1
    lookup = """
try:
    apps.get_model('tables.Penguin')
    result = 'found'
except LookupError:
    result = 'gone'
"""
    assert child.run(lookup) == "gone"
    md.delete()
    assert child.run(lookup.replace("Penguin", "Bird")) == "gone"
