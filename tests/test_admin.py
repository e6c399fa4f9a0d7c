"""The generated admin: every user table, in every process, on its next request."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import time

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from builder import formats, jobs
from builder.generated import model_admin_for, model_form_for
from mutant.models import (
    BooleanFieldDefinition,
    CharFieldDefinition,
    DateFieldDefinition,
    ForeignKeyDefinition,
    IntegerFieldDefinition,
    ModelDefinition,
    TextFieldDefinition,
)

pytestmark = pytest.mark.usefixtures("schema_db")


def make_penguins() -> ModelDefinition:
    md = ModelDefinition.objects.create(object_name="Penguin", verbose_name="penguin")
    with md.batch():
        CharFieldDefinition.objects.create(
            model_def=md, name="species", max_length=20, help_text="Which kind."
        )
        CharFieldDefinition.objects.create(
            model_def=md,
            name="colony",
            max_length=10,
            choices=[["north", "North"], ["south", "South"]],
            blank=True,
        )
        IntegerFieldDefinition.objects.create(model_def=md, name="age", null=True, blank=True)
        DateFieldDefinition.objects.create(model_def=md, name="born", null=True, blank=True)
        BooleanFieldDefinition.objects.create(model_def=md, name="tagged", default="no")
        TextFieldDefinition.objects.create(model_def=md, name="notes", blank=True)
    md.refresh_from_db()
    return md


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser_client() -> Client:
    return client_for(User.objects.create_superuser("root", "root@example.org", "pw"))


def staff(*codenames: str) -> Client:
    user = User.objects.create_user(f"staff{User.objects.count()}", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return client_for(user)


def upload(text: str | bytes, name: str = "penguins.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text)


def confirm_fields(response) -> tuple[str, dict[str, str]]:
    form = response.context["confirm_form"]
    action = re.search(r'<form action="([^"]+process_import/)"', response.content.decode())
    return action.group(1), {name: form[name].value() for name in form.fields}


# -- the pages ----------------------------------------------------------------------------


def test_a_table_made_in_another_process_has_its_admin_at_once(child, superuser_client):
    child.run(
        "from mutant.models import *\n"
        "md = ModelDefinition.objects.create(object_name='Penguin')\n"
        "CharFieldDefinition.objects.create(model_def=md, name='species', max_length=20)\n"
        "md.model_class().objects.create(species='Adelie')"
    )
    page = superuser_client.get("/admin/tables/penguin/")
    assert page.status_code == 200
    assert "Adelie" in page.content.decode()
    assert "/admin/tables/penguin/1/change/" in page.content.decode()
    assert superuser_client.get("/admin/tables/penguin/1/change/").status_code == 200
    index = superuser_client.get("/admin/").content.decode()
    assert "Your tables" in index and "/admin/tables/penguin/" in index

    child.run("IntegerFieldDefinition.objects.create(model_def=md, name='weight', null=True)")
    assert "column-weight" in superuser_client.get("/admin/tables/penguin/").content.decode()

    child.run("md.object_name = 'Bird'\nmd.save()")
    assert superuser_client.get("/admin/tables/penguin/").status_code == 404
    assert "Adelie" in superuser_client.get("/admin/tables/bird/").content.decode()

    child.run("md.delete()")
    assert superuser_client.get("/admin/tables/bird/").status_code == 404
    assert "/admin/tables/bird/" not in superuser_client.get("/admin/").content.decode()


def test_every_page_of_a_table_answers(superuser_client):
    model = make_penguins().model_class()
    row = model.objects.create(species="Adelie")
    for url in [
        "/admin/tables/",
        "/admin/tables/penguin/",
        "/admin/tables/penguin/add/",
        f"/admin/tables/penguin/{row.pk}/change/",
        f"/admin/tables/penguin/{row.pk}/history/",
        f"/admin/tables/penguin/{row.pk}/delete/",
        "/admin/tables/penguin/import/",
        "/admin/tables/penguin/export/",
    ]:
        assert superuser_client.get(url).status_code == 200, url
    assert superuser_client.get(f"/admin/tables/penguin/{row.pk}/").status_code == 302
    assert superuser_client.get("/admin/tables/nothing/").status_code == 404


def test_the_admin_urls_of_a_table_reverse_like_any_models():
    make_penguins()
    assert reverse("admin:tables_penguin_changelist") == "/admin/tables/penguin/"
    assert reverse("admin:tables_penguin_change", args=[7]) == "/admin/tables/penguin/7/change/"
    assert reverse("admin:tables_penguin_process_import") == "/admin/tables/penguin/process_import/"
    assert reverse("admin:app_list", kwargs={"app_label": "tables"}) == "/admin/tables/"


def test_the_generated_admin_declares_what_the_fields_say():
    md = make_penguins()
    model = md.model_class()
    model_admin = admin.site.get_model_admin(model)
    assert type(model_admin) is model_admin_for(md)
    assert list(model_admin.list_display) == ["species", "colony", "age", "born", "tagged", "notes"]
    assert model_admin.search_fields == ["species", "notes"]
    assert model_admin.list_filter == ["colony", "born", "tagged"]
    assert model_admin.date_hierarchy == "born"

    form = model_form_for(md)(data={"species": "x" * 21, "colony": "east", "age": "old"})
    assert not form.is_valid()
    assert set(form.errors) == {"species", "colony", "age"}
    assert form.fields["species"].help_text == "Which kind."

    # A new version of the table gets a new admin and form.
    IntegerFieldDefinition.objects.create(model_def=md, name="weight", null=True)
    md.refresh_from_db()
    new_admin = admin.site.get_model_admin(md.model_class())
    assert new_admin is not model_admin
    assert "weight" in model_form_for(md).base_fields


def test_adding_a_row_validates_it_by_the_field_options(superuser_client):
    model = make_penguins().model_class()
    refused = superuser_client.post(
        "/admin/tables/penguin/add/", {"species": "x" * 21, "colony": "east", "tagged": ""}
    )
    assert refused.status_code == 200 and model.objects.count() == 0
    saved = superuser_client.post(
        "/admin/tables/penguin/add/", {"species": "Adelie", "colony": "north", "age": "3"}
    )
    assert saved.status_code == 302 and saved["Location"] == "/admin/tables/penguin/"
    assert model.objects.get().age == 3


def test_the_change_list_filters_and_searches(superuser_client):
    model = make_penguins().model_class()
    model.objects.create(species="Adelie", colony="north", tagged=True)
    model.objects.create(species="Gentoo", colony="south")
    page = superuser_client.get("/admin/tables/penguin/?colony__exact=north")
    assert page.context["cl"].result_count == 1
    page = superuser_client.get("/admin/tables/penguin/?q=gent")
    assert [r.species for r in page.context["cl"].result_list] == ["Gentoo"]


def test_a_link_is_filtered_and_picked_by_searching_the_linked_table(superuser_client):
    customer = ModelDefinition.objects.create(object_name="Customer")
    CharFieldDefinition.objects.create(model_def=customer, name="name", max_length=20)
    order = ModelDefinition.objects.create(object_name="Order")
    ForeignKeyDefinition.objects.create(
        model_def=order, name="customer", to_definition=customer, on_delete="CASCADE", null=True
    )
    ForeignKeyDefinition.objects.create(
        model_def=order, name="clerk", to_model="auth.User", on_delete="SET_NULL", null=True
    )
    customers = customer.model_class()
    customers.objects.create(name="Alice")
    customers.objects.create(name="Bob")
    orders = ModelDefinition.objects.get(pk=order.pk).model_class()
    model_admin = admin.site.get_model_admin(orders)
    assert model_admin.list_filter == ["customer", "clerk"]

    page = superuser_client.get("/admin/tables/order/add/")
    assert page.status_code == 200
    assert 'class="admin-autocomplete"' in page.content.decode()
    assert 'data-field-name="customer"' in page.content.decode()
    found = superuser_client.get(
        "/admin/autocomplete/",
        {"app_label": "tables", "model_name": "order", "field_name": "customer", "term": "ali"},
    )
    assert [r["text"] for r in found.json()["results"]] == ["Alice"]
    listed = superuser_client.get("/admin/tables/order/")
    assert "customer__id__exact" in listed.content.decode()


def test_a_page_of_a_linked_table_asks_for_no_version_of_the_tables_it_links_to(
    superuser_client,
):
    """The request subscribes to the order; the linked tables cannot change meanwhile."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    customer = ModelDefinition.objects.create(object_name="Customer")
    CharFieldDefinition.objects.create(model_def=customer, name="name", max_length=20)
    order = ModelDefinition.objects.create(object_name="Order")
    for name in ("customer", "payer"):
        ForeignKeyDefinition.objects.create(
            model_def=order, name=name, to_definition=customer, on_delete="CASCADE", null=True
        )
    superuser_client.get("/admin/tables/order/add/")
    with CaptureQueriesContext(connection) as queries:
        page = superuser_client.get("/admin/tables/order/add/")
    assert page.status_code == 200
    assert 'data-field-name="payer"' in page.content.decode()
    versions = [q["sql"] for q in queries if q["sql"].startswith('SELECT "version"')]
    assert versions == []


# -- rights ----------------------------------------------------------------------------------


def test_each_table_has_its_content_type_and_permissions_for_its_life():
    md = make_penguins()
    codenames = {"add_penguin", "change_penguin", "delete_penguin", "view_penguin"}
    content_type = ContentType.objects.get(app_label="tables", model="penguin")
    assert set(content_type.permission_set.values_list("codename", flat=True)) == codenames
    assert content_type.model_class() is md.model_class()

    user = User.objects.create_user("keeper")
    user.user_permissions.add(Permission.objects.get(codename="view_penguin"))
    md.object_name = "Bird"
    md.save()
    content_type.refresh_from_db()
    assert content_type.model == "bird"
    assert User.objects.get(pk=user.pk).has_perm("tables.view_bird")

    call_command("remove_stale_contenttypes", interactive=False, verbosity=0)
    assert ContentType.objects.filter(pk=content_type.pk).exists()

    md.delete()
    assert not ContentType.objects.filter(app_label="tables").exists()
    assert not Permission.objects.filter(codename__endswith="_bird").exists()


def test_rights_rest_in_the_trash_with_their_table_and_come_back_with_it():
    md = make_penguins()
    user = User.objects.create_user("keeper", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_penguin"))
    md.trash()
    assert not User.objects.get(pk=user.pk).has_perm("tables.view_penguin")
    # A new table of the same name does not inherit them.
    ModelDefinition.objects.create(object_name="Penguin")
    assert not User.objects.get(pk=user.pk).has_perm("tables.view_penguin")
    trashed = ModelDefinition.all_objects.get(pk=md.pk)
    trashed.restore(object_name="OldPenguin")
    assert User.objects.get(pk=user.pk).has_perm("tables.view_oldpenguin")
    assert client_for(user).get("/admin/tables/oldpenguin/").status_code == 200
    trashed.trash()
    ModelDefinition.all_objects.get(pk=md.pk).purge()
    assert not Permission.objects.filter(content_type__model__endswith=str(md.pk)).exists()
    assert set(ContentType.objects.filter(app_label="tables").values_list("model", flat=True)) == {
        "penguin"
    }


def test_a_staff_member_without_rights_gets_403():
    model = make_penguins().model_class()
    row = model.objects.create(species="Adelie")
    client = staff()
    for url in [
        "/admin/tables/penguin/",
        "/admin/tables/penguin/add/",
        f"/admin/tables/penguin/{row.pk}/change/",
        "/admin/tables/penguin/import/",
        "/admin/tables/penguin/export/",
    ]:
        assert client.get(url).status_code == 403, url
    assert "/admin/tables/penguin/" not in client.get("/admin/").content.decode()


def test_a_staff_member_with_the_view_right_can_only_read():
    model = make_penguins().model_class()
    row = model.objects.create(species="Adelie")
    client = staff("view_penguin")
    assert "Adelie" in client.get("/admin/tables/penguin/").content.decode()
    page = client.get(f"/admin/tables/penguin/{row.pk}/change/")
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert (
        client.post(f"/admin/tables/penguin/{row.pk}/change/", {"species": "Gentoo"}).status_code
        == 403
    )
    assert client.get("/admin/tables/penguin/add/").status_code == 403
    assert client.get("/admin/tables/penguin/import/").status_code == 403
    assert client.get("/admin/tables/penguin/export/").status_code == 200
    assert model.objects.get().species == "Adelie"
    index = client.get("/admin/").content.decode()
    assert "/admin/tables/penguin/" in index and "/admin/tables/penguin/add/" not in index


# -- import and export in the admin ------------------------------------------------------


def test_an_import_shows_a_preview_then_imports_on_confirmation(superuser_client):
    model = make_penguins().model_class()
    preview = superuser_client.post(
        "/admin/tables/penguin/import/",
        {"format": "0", "import_file": upload("species;age\nAdelie;3\nGentoo;NA\n")},
    )
    assert preview.status_code == 200
    assert [r.diff for r in preview.context["result"].valid_rows()] == [
        ["Adelie", "3"],
        ["Gentoo", ""],
    ]
    assert model.objects.count() == 0
    action, fields = confirm_fields(preview)
    done = superuser_client.post(action, fields)
    assert done.status_code == 302 and done["Location"] == "/admin/tables/penguin/"
    assert sorted(model.objects.values_list("species", "age")) == [("Adelie", 3), ("Gentoo", None)]
    history = superuser_client.get("/admin/").content.decode()
    assert "import of penguins.csv" in history


def test_an_invalid_file_shows_every_problem_and_offers_no_confirmation(superuser_client):
    model = make_penguins().model_class()
    page = superuser_client.post(
        "/admin/tables/penguin/import/",
        {"format": "0", "import_file": upload("species,age\nAdelie,old\nGentoo,4\n,x\n")},
    )
    assert "confirm_form" not in page.context or page.context["confirm_form"] is None
    content = page.content.decode()
    assert "2 rows cannot be imported" in content
    assert [row.number for row in page.context["result"].invalid_rows] == [1, 3]
    assert "“old” value must be an integer" in content
    assert model.objects.count() == 0


def test_an_unreadable_file_is_refused_on_the_form(superuser_client):
    make_penguins()
    page = superuser_client.post(
        "/admin/tables/penguin/import/",
        {"format": "0", "import_file": upload(b"PK\x03\x04\x00binary")},
    )
    assert "does not look like a text file" in page.content.decode()


def test_a_table_changed_between_preview_and_confirmation_is_checked_again(superuser_client):
    md = make_penguins()
    preview = superuser_client.post(
        "/admin/tables/penguin/import/",
        {"format": "0", "import_file": upload("species\nAdelie\n")},
    )
    action, fields = confirm_fields(preview)
    IntegerFieldDefinition.objects.create(model_def=md, name="weight", null=True)
    again = superuser_client.post(action, fields)
    assert again.status_code == 200
    assert "was changed after your preview" in again.content.decode()
    assert md.model_class().objects.count() == 0
    action, fields = confirm_fields(again)
    assert superuser_client.post(action, fields).status_code == 302
    assert md.model_class().objects.get().species == "Adelie"


def test_a_file_that_no_longer_fits_the_changed_table_is_refused_at_confirmation(
    superuser_client,
):
    md = make_penguins()
    preview = superuser_client.post(
        "/admin/tables/penguin/import/",
        {"format": "0", "import_file": upload("species,age\nAdelie,3\n")},
    )
    action, fields = confirm_fields(preview)
    IntegerFieldDefinition.objects.get(model_def=md, name="age").delete()
    refused = superuser_client.post(action, fields)
    content = refused.content.decode()
    assert "was changed after your preview" in content
    assert "matches no field" in content
    assert "This field is required" not in content
    assert "confirm_form" not in refused.context
    assert md.model_class().objects.count() == 0


def test_a_long_import_runs_in_the_background_with_its_progress(superuser_client, settings):
    settings.MUTANT_IMPORT_BACKGROUND_BYTES = 10
    model = make_penguins().model_class()
    rows = "".join(f"penguin {n},{n}\n" for n in range(300))
    started = superuser_client.post(
        "/admin/tables/penguin/import/",
        {"format": "0", "import_file": upload("species,age\n" + rows)},
    )
    assert started.status_code == 302
    status_url = started["Location"]
    assert re.match(r"^/admin/tables/penguin/import/[0-9a-f]{32}/$", status_url)
    preview = wait_for_job(superuser_client, status_url)
    assert preview.context["result"].report.new == 300
    action, fields = confirm_fields(preview)
    started = superuser_client.post(action, fields)
    assert started.status_code == 302 and started["Location"] != "/admin/tables/penguin/"
    done = wait_for_job(superuser_client, started["Location"])
    assert done.status_code == 302 and done["Location"] == "/admin/tables/penguin/"
    assert model.objects.count() == 300
    # Someone else cannot follow the job.
    assert staff("add_penguin").get(started["Location"]).status_code == 404


def wait_for_job(client: Client, url: str):
    for _attempt in range(400):
        progress = client.get(url, {"format": "json"}).json()
        assert progress["status"] in {"running", "done"}, progress
        if progress["status"] == "done":
            return client.get(url)
        time.sleep(0.05)
    raise AssertionError("the import did not finish")


def test_a_running_import_shows_a_progress_bar(superuser_client):
    md = make_penguins()
    job = jobs.ImportJob(
        id="0" * 32,
        table=md.pk,
        user=User.objects.get(username="root").pk,
        preview=False,
        tmp_name="nothing",
        original_name="penguins.csv",
        format_name="CSV",
        phase="writing",
        done=50,
        total=200,
    )
    job.save()
    page = superuser_client.get(f"/admin/tables/penguin/import/{job.id}/")
    content = page.content.decode()
    assert '<progress id="import-progress" max="100" value="25"' in content
    assert "Saved 50 of 200 rows." in content
    job.updated = time.time() - jobs.STALLED_AFTER - 1
    (jobs.jobs_folder() / f"{job.id}.json").write_text(json.dumps(dataclasses.asdict(job)))
    assert (
        superuser_client.get(page.wsgi_request.path, {"format": "json"}).json()["status"]
        == "failed"
    )


def test_export_honours_the_change_lists_filters_and_search(superuser_client):
    model = make_penguins().model_class()
    model.objects.create(species="Adelie", colony="north", tagged=True)
    model.objects.create(species="Gentoo", colony="north")
    model.objects.create(species="=Emperor", colony="south")
    fields = {"format": "0", "resource": "0"}
    fields.update({f"penguinresource_{name}": "on" for name in ("species", "colony")})
    exported = superuser_client.post(
        "/admin/tables/penguin/export/?colony__exact=north&q=e", fields
    )
    assert exported.status_code == 200
    assert exported.content.decode().splitlines() == [
        "species,colony",
        "Gentoo,north",
        "Adelie,north",
    ]
    everything = superuser_client.post("/admin/tables/penguin/export/", fields)
    assert "'=Emperor,south" in everything.content.decode().splitlines()
    fields.update(format="1", penguinresource_age="on", penguinresource_born="on")
    model.objects.filter(species="Adelie").update(age=3, born=datetime.date(2020, 1, 2))
    xlsx = superuser_client.post("/admin/tables/penguin/export/?q=Adelie", fields)
    sheet = formats.XLSX().create_dataset(xlsx.content)
    assert list(sheet[0]) == ["Adelie", "north", 3, datetime.datetime(2020, 1, 2)]


def test_jobs_cannot_read_outside_their_folder():
    assert jobs.load("../../etc/passwd") is None
