"""The builder's pages: every action, and every way it can go wrong, as a person meets it."""

from __future__ import annotations

import io
import re
import threading

import openpyxl
import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.urls import reverse

from builder.forms import field_name_from_label, table_name_from_label, table_title
from mutant.errors import DefinitionBusy
from mutant.models import (
    CharFieldDefinition,
    FieldDefinition,
    IntegerFieldDefinition,
    ModelDefinition,
)
from tests.schema_helpers import columns, table_exists

pytestmark = pytest.mark.usefixtures("schema_db")


@pytest.fixture
def builder_user(django_user_model):
    user = django_user_model.objects.create_user("builder", password="pw")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="mutant", codename="change_modeldefinition")
    )
    return user


@pytest.fixture
def browser(builder_user) -> Client:
    client = Client()
    client.force_login(builder_user)
    return client


def make_penguins(rows: int = 0) -> ModelDefinition:
    md = ModelDefinition.objects.create(
        object_name="Penguin", verbose_name="penguin", verbose_name_plural="Penguins"
    )
    CharFieldDefinition.objects.create(
        model_def=md, name="species", verbose_name="Species", max_length=60, blank=True
    )
    model = md.model_class()
    for number in range(rows):
        model.objects.create(species=f"Adelie {number}")
    return md


def url(name: str, **kwargs) -> str:
    return reverse(f"builder:{name}", kwargs=kwargs)


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def field(md: ModelDefinition, name: str) -> FieldDefinition:
    return FieldDefinition.objects.get(model_def=md, name=name).type_cast()


def field_data(label: str, **extra) -> dict:
    data = {
        "label": label,
        "help_text": "",
        "default": "",
        "choices-TOTAL_FORMS": "0",
        "choices-INITIAL_FORMS": "0",
    }
    data.update(extra)
    return data


# -- names ------------------------------------------------------------------------


def test_names_are_derived_from_labels():
    assert table_name_from_label("Customer orders") == "CustomerOrders"
    assert table_name_from_label("Crème brûlée") == "CremeBrulee"
    assert table_name_from_label("2024 budget") == "Table2024Budget"
    assert table_name_from_label("None") == "None2"  # a Python keyword
    assert table_name_from_label("Orders", taken=["orders"]) == "Orders2"
    assert table_name_from_label("!!!") == "Table"
    assert field_name_from_label("Date of birth") == "date_of_birth"
    assert field_name_from_label("ID") == "id_2"
    assert field_name_from_label("class") == "class_2"
    assert field_name_from_label("Save") == "save_2"  # a model method
    assert field_name_from_label("Price (€)") == "price"
    assert field_name_from_label("42") == "field_42"
    assert field_name_from_label("Name", taken=["name", "name_2"]) == "name_3"
    assert len(field_name_from_label("x" * 100)) <= 63


# -- who may build ---------------------------------------------------------------------


def test_only_people_with_the_builder_permission_may_build(django_user_model):
    anonymous = Client()
    response = anonymous.get(url("home"))
    assert response.status_code == 302 and "login" in response["Location"]

    plain = django_user_model.objects.create_user("plain", password="pw")
    client = Client()
    client.force_login(plain)
    for target in (url("home"), url("table_add"), url("table_import")):
        response = client.get(target)
        assert response.status_code == 403
        assert "You may not change tables" in response.content.decode()
    response = client.post(url("table_add"), {"title": "Sneaky"})
    assert response.status_code == 403
    assert not ModelDefinition.objects.exists()


def test_forms_need_the_csrf_token(builder_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(builder_user)
    response = client.post(url("table_add"), {"title": "Orders"})
    assert response.status_code == 403
    assert not ModelDefinition.objects.exists()
    assert 'name="csrfmiddlewaretoken"' in page(client.get(url("table_add")))


# -- tables -----------------------------------------------------------------------


def test_the_home_page_lists_tables_with_their_fields_and_records(browser):
    md = make_penguins(rows=3)
    IntegerFieldDefinition.objects.create(model_def=md, name="age", null=True)
    field(md, "age").trash()
    html = page(browser.get(url("home")))
    assert "Penguins" in html
    assert '<td class="b-num">1</td>' in html  # one field
    assert '<td class="b-num">3</td>' in html  # three records
    assert url("table", table="Penguin") in html


def test_creating_a_table_derives_its_name_from_the_label(browser):
    response = browser.post(
        url("table_add"), {"title": "Customer orders", "description": "What people buy"}
    )
    assert response.status_code == 302
    md = ModelDefinition.objects.get()
    assert (md.object_name, md.verbose_name_plural, md.verbose_name) == (
        "CustomerOrders",
        "Customer orders",
        "Customer orders",
    )
    assert response["Location"] == url("table", table="CustomerOrders")
    assert table_exists("tables_customerorders")


def test_a_duplicate_table_name_is_shown_next_to_the_name(browser):
    make_penguins()
    html = page(browser.post(url("table_add"), {"title": "penguins"}))
    assert "A table called penguins already exists." in html
    assert 'id="id_title"' in html and "is-invalid" in html
    assert ModelDefinition.objects.count() == 1


def test_an_empty_table_name_is_refused(browser):
    html = page(browser.post(url("table_add"), {"title": "  "}))
    assert "This field is required." in html
    assert not ModelDefinition.objects.exists()


def test_renaming_a_table_keeps_its_records(browser):
    md = make_penguins(rows=2)
    response = browser.post(url("table_edit", table="Penguin"), {"title": "Sea birds"})
    assert response.status_code == 302
    assert response["Location"] == url("table", table="SeaBirds")
    md.refresh_from_db()
    assert md.object_name == "SeaBirds"
    assert table_exists("tables_seabirds") and not table_exists("tables_penguin")
    assert md.model_class().objects.count() == 2


def test_changing_only_the_description_keeps_the_name(browser):
    md = make_penguins()
    browser.post(url("table_edit", table="Penguin"), {"title": "Penguins", "description": "Birds"})
    md.refresh_from_db()
    assert (md.object_name, md.description) == ("Penguin", "Birds")


def test_deleting_a_table_says_how_many_records_go_with_it(browser):
    make_penguins(rows=4)
    html = page(browser.get(url("table_delete", table="Penguin")))
    assert "The table goes to the trash with its fields and its 4 records." in html
    assert table_exists("tables_penguin")
    response = browser.post(url("table_delete", table="Penguin"))
    assert response.status_code == 302
    assert not table_exists("tables_penguin")
    assert not ModelDefinition.objects.exists()


def test_an_unknown_table_or_field_is_a_404(browser):
    make_penguins()
    assert browser.get(url("table", table="Nope")).status_code == 404
    assert browser.get(url("field_edit", table="Penguin", field="nope")).status_code == 404
    assert browser.get(url("records", table="Nope")).status_code == 404


def test_a_busy_table_is_reported_on_the_page(browser, monkeypatch):
    make_penguins()

    def busy(*args, **kwargs):
        raise DefinitionBusy()

    monkeypatch.setattr(ModelDefinition, "save", busy)
    html = page(browser.post(url("table_edit", table="Penguin"), {"title": "Birds"}))
    assert "This table is being changed, try again in a moment." in html
    monkeypatch.setattr(FieldDefinition, "save", busy)
    html = page(
        browser.post(
            url("field_add", table="Penguin") + "?type=integerfielddefinition", field_data("Age")
        )
    )
    assert "This table is being changed" in html
    monkeypatch.setattr(FieldDefinition, "change_type", busy)
    html = page(
        browser.get(url("field_type", table="Penguin", field="species") + "?to=textfielddefinition")
    )
    assert "This table is being changed" in html
    monkeypatch.setattr(FieldDefinition, "trash", busy)
    html = page(browser.post(url("field_delete", table="Penguin", field="species")))
    assert "This table is being changed" in html
    assert "species" in columns("tables_penguin")


# -- fields -----------------------------------------------------------------------


def test_the_type_picker_offers_every_type_by_category_with_its_description(browser):
    from mutant import catalogue

    make_penguins()
    html = page(browser.get(url("field_add", table="Penguin")))
    for category, types in catalogue.by_category():
        assert str(category) in html
        for field_type in types:
            assert f"?type={field_type._meta.model_name}" in html
            assert str(field_type._meta.defined_field_description) in html
    assert "Choice from a list" in html


def test_the_field_form_shows_only_the_options_of_its_type(browser):
    make_penguins()
    text = page(browser.get(url("field_add", table="Penguin") + "?type=charfielddefinition"))
    assert 'name="max_length"' in text and 'name="decimal_places"' not in text
    assert 'id="choices-editor"' in text
    decimal = page(browser.get(url("field_add", table="Penguin") + "?type=decimalfielddefinition"))
    assert 'name="decimal_places"' in decimal and 'name="max_length"' not in decimal
    yes_no = page(browser.get(url("field_add", table="Penguin") + "?type=booleanfielddefinition"))
    assert 'id="choices-editor"' not in yes_no and 'name="unique"' not in yes_no


@pytest.mark.parametrize(
    ("key", "label", "extra", "column"),
    [
        ("charfielddefinition", "Nickname", {"max_length": "40"}, "nickname"),
        ("integerfielddefinition", "Age in years", {}, "age_in_years"),
        ("datefielddefinition", "Date of birth", {}, "date_of_birth"),
        ("decimalfielddefinition", "Weight", {"max_digits": "6", "decimal_places": "2"}, "weight"),
    ],
)
def test_adding_a_field_adds_a_column(browser, key, label, extra, column):
    make_penguins(rows=1)
    response = browser.post(
        url("field_add", table="Penguin") + f"?type={key}", field_data(label, **extra)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert column in columns("tables_penguin")
    assert field(ModelDefinition.objects.get(), column).verbose_name == label


def test_adding_a_choice_field(browser):
    md = make_penguins()
    data = field_data(
        "Colour",
        max_length="20",
        required="on",
        default="black",
        **{
            "choices-TOTAL_FORMS": "3",
            "choices-0-label": "Black",
            "choices-0-value": "black",
            "choices-1-label": "White",
            "choices-2-label": "",
        },
    )
    response = browser.post(url("field_add", table="Penguin") + "?type=charfielddefinition", data)
    assert response.status_code == 302
    colour = field(md, "colour")
    assert colour.choices == [["black", "Black"], ["White", "White"]]
    assert colour.blank is False and colour.default == "black"


def test_a_duplicate_field_label_is_refused(browser):
    make_penguins()
    html = page(
        browser.post(
            url("field_add", table="Penguin") + "?type=textfielddefinition", field_data("species")
        )
    )
    assert "This table already has a field called species." in html
    assert FieldDefinition.objects.count() == 1


def test_the_engine_s_messages_appear_next_to_their_inputs(browser):
    make_penguins()
    add = url("field_add", table="Penguin")
    html = page(
        browser.post(add + "?type=integerfielddefinition", field_data("Age", default="old"))
    )
    assert "is-invalid" in html and "id_default" in html
    assert "must be an integer" in html
    html = page(
        browser.post(
            add + "?type=decimalfielddefinition",
            field_data("Price", max_digits="2", decimal_places="4"),
        )
    )
    assert "There cannot be more digits after the point than digits in all." in html
    assert FieldDefinition.objects.count() == 1


def test_a_required_field_without_default_on_a_filled_table_is_refused(browser):
    make_penguins(rows=2)
    html = page(
        browser.post(
            url("field_add", table="Penguin") + "?type=integerfielddefinition",
            field_data("Age", required="on"),
        )
    )
    assert "allow empty values or give a default" in html
    assert "age" not in columns("tables_penguin")


def test_renaming_a_field_keeps_its_data(browser):
    md = make_penguins(rows=2)
    data = field_data("Kind of penguin", max_length="60")
    response = browser.post(url("field_edit", table="Penguin", field="species"), data)
    assert response.status_code == 302
    assert "kind_of_penguin" in columns("tables_penguin")
    assert "species" not in columns("tables_penguin")
    values = sorted(md.model_class().objects.values_list("kind_of_penguin", flat=True))
    assert values == ["Adelie 0", "Adelie 1"]


def test_renaming_and_removing_choices(browser):
    md = make_penguins()
    CharFieldDefinition.objects.create(
        model_def=md,
        name="size",
        max_length=10,
        blank=True,
        choices=[["s", "Small"], ["l", "Large"]],
    )
    model = md.model_class()
    model.objects.create(species="x", size="s")
    edit = url("field_edit", table="Penguin", field="size")
    data = field_data(
        "size",
        max_length="10",
        **{
            "choices-TOTAL_FORMS": "3",
            "choices-INITIAL_FORMS": "2",
            "choices-0-label": "Tiny",
            "choices-0-value": "s",
            "choices-1-label": "Large",
            "choices-1-value": "l",
            "choices-2-label": "Medium",
        },
    )
    assert browser.post(edit, data).status_code == 302
    assert field(md, "size").choices == [["s", "Tiny"], ["l", "Large"], ["Medium", "Medium"]]
    assert md.model_class().objects.get().size == "s"

    # Removing an option that a record uses would lose it: refused, nothing changed.
    data.update({"choices-0-DELETE": "on", "choices-INITIAL_FORMS": "3"})
    html = page(browser.post(edit, data))
    assert "cannot be kept" in html
    assert field(md, "size").choices == [["s", "Tiny"], ["l", "Large"], ["Medium", "Medium"]]


def test_the_same_option_twice_is_refused(browser):
    make_penguins()
    data = field_data(
        "Size",
        max_length="10",
        **{"choices-TOTAL_FORMS": "2", "choices-0-label": "S", "choices-1-label": "s"},
    )
    html = page(browser.post(url("field_add", table="Penguin") + "?type=charfielddefinition", data))
    assert "The option s is in the list twice." in html
    assert FieldDefinition.objects.count() == 1


def test_reordering_fields(browser):
    md = make_penguins()
    age = IntegerFieldDefinition.objects.create(model_def=md, name="age", null=True)
    weight = IntegerFieldDefinition.objects.create(model_def=md, name="weight", null=True)
    species = field(md, "species")
    response = browser.post(
        url("field_order", table="Penguin"), {"order": [weight.pk, species.pk, age.pk]}
    )
    assert response.status_code == 302
    assert [f.name for f in md.field_definitions()] == ["weight", "species", "age"]
    model_fields = [f.name for f in md.model_class()._meta.fields]
    assert model_fields == ["id", "weight", "species", "age"]

    # The keyboard way, through htmx: the new list comes back.
    response = browser.post(
        url("field_move", table="Penguin", field="age"),
        {"direction": "up"},
        headers={"HX-Request": "true"},
    )
    html = page(response)
    assert 'id="field-list"' in html and "<html" not in html
    assert [f.name for f in md.field_definitions()] == ["weight", "age", "species"]
    browser.post(url("field_move", table="Penguin", field="weight"), {"direction": "up"})
    assert [f.name for f in md.field_definitions()] == ["weight", "age", "species"]
    response = browser.post(url("field_order", table="Penguin"), {"order": ["x"]})
    assert response.status_code == 302
    assert browser.get(url("field_order", table="Penguin")).status_code == 405


def test_deleting_a_field_says_how_many_values_go(browser):
    md = make_penguins(rows=3)
    md.model_class().objects.create(species="")
    html = page(browser.get(url("field_delete", table="Penguin", field="species")))
    assert "goes to the trash with the 3 values stored in it" in html
    response = browser.post(url("field_delete", table="Penguin", field="species"))
    assert response.status_code == 302
    assert "species" not in columns("tables_penguin")


def test_changing_a_type_previews_refuses_then_converts(browser):
    md = make_penguins()
    model = md.model_class()
    twelve = model.objects.create(species="12")
    dozen = model.objects.create(species="a dozen")
    change = url("field_type", table="Penguin", field="species")

    html = page(browser.get(change))
    assert "?to=integerfielddefinition" in html and "?to=charfielddefinition" not in html

    html = page(browser.get(change + "?to=integerfielddefinition"))
    assert "1 of 2 values can be converted." in html
    assert "a dozen" in html and f"#{dozen.pk}" in html
    assert 'value="confirm"' not in html
    html = page(browser.post(change, {"to": "integerfielddefinition", "action": "confirm"}))
    assert "cannot be kept" in html
    assert field(md, "species").field_type == "charfielddefinition"

    md.model_class().objects.filter(pk=dozen.pk).update(species="13")
    html = page(browser.get(change + "?to=integerfielddefinition"))
    assert "2 of 2 values can be converted." in html and 'value="confirm"' in html
    response = browser.post(change, {"to": "integerfielddefinition", "action": "confirm"})
    assert response.status_code == 302
    assert field(md, "species").field_type == "integerfielddefinition"
    values = dict(md.model_class().objects.values_list("pk", "species"))
    assert values == {twelve.pk: 12, dozen.pk: 13}


def test_changing_a_type_with_options(browser):
    md = make_penguins()
    md.model_class().objects.create(species="x" * 30)
    change = url("field_type", table="Penguin", field="species")
    html = page(browser.post(change, {"to": "slugfielddefinition", "max_length": "10"}))
    assert "0 of 1 value can be converted." in html
    response = browser.post(
        change, {"to": "slugfielddefinition", "max_length": "40", "action": "confirm"}
    )
    assert response.status_code == 302
    assert field(md, "species").max_length == 40


def test_a_type_that_does_not_exist_goes_back_to_the_picker(browser):
    make_penguins()
    html = page(browser.get(url("field_type", table="Penguin", field="species") + "?to=nope"))
    assert "?to=integerfielddefinition" in html
    html = page(browser.get(url("field_add", table="Penguin") + "?type=nope"))
    assert "Choose one of the types below." in html


# -- what people write is text -------------------------------------------------------


def test_labels_and_help_texts_are_escaped(browser):
    md = make_penguins()
    evil = "<script>alert(1)</script>"
    response = browser.post(
        url("field_add", table="Penguin") + "?type=charfielddefinition",
        field_data(evil, max_length="10", help_text=evil),
    )
    assert response.status_code == 302
    name = field_name_from_label(evil, ["species"])
    assert field(md, name).verbose_name == evil
    for target in (url("table", table="Penguin"), url("record_add", table="Penguin")):
        html = page(browser.get(target))
        assert evil not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    browser.post(url("table_edit", table="Penguin"), {"title": evil})
    html = page(browser.get(url("home")))
    assert evil not in html and "&lt;script&gt;" in html


# -- records ----------------------------------------------------------------------


def test_adding_and_editing_a_record(browser):
    md = make_penguins()
    IntegerFieldDefinition.objects.create(model_def=md, name="age", verbose_name="Age", null=True)
    html = page(browser.get(url("record_add", table="Penguin")))
    assert 'name="species"' in html and 'name="age"' in html
    html = page(browser.post(url("record_add", table="Penguin"), {"species": "Gentoo", "age": "x"}))
    assert "Enter a whole number." in html
    response = browser.post(url("record_add", table="Penguin"), {"species": "Gentoo", "age": "4"})
    assert response.status_code == 302
    row = md.model_class().objects.get()
    assert (row.species, row.age) == ("Gentoo", 4)
    html = page(browser.get(url("records", table="Penguin")))
    assert "Gentoo" in html
    response = browser.post(
        url("record_edit", table="Penguin", pk=row.pk), {"species": "Emperor", "age": "5"}
    )
    assert response.status_code == 302
    assert md.model_class().objects.get().species == "Emperor"
    assert browser.get(url("record_edit", table="Penguin", pk=row.pk + 100)).status_code == 404


# -- spreadsheets -----------------------------------------------------------------


CSV = "Name,Age,Joined\nAda,36,2024-01-05\nGrace,45,2023-11-30\n"


def upload(browser, content: bytes, name: str, **extra):
    file = io.BytesIO(content)
    file.name = name
    return browser.post(url("table_import"), {"file": file, **extra})


def confirm_data(html_columns: list[tuple[str, str, str]], token: str, title: str) -> dict:
    data = {
        "token": token,
        "title": title,
        "columns-TOTAL_FORMS": str(len(html_columns)),
        "columns-INITIAL_FORMS": str(len(html_columns)),
    }
    for index, (header, label, key) in enumerate(html_columns):
        data.update(
            {
                f"columns-{index}-column": str(index),
                f"columns-{index}-header": header,
                f"columns-{index}-include": "on",
                f"columns-{index}-label": label,
                f"columns-{index}-field_type": key,
            }
        )
    return data


def test_a_table_from_a_csv_file(browser):
    response = upload(browser, CSV.encode(), "team_members.csv")
    html = page(response)
    assert "Check the proposed fields" in html
    assert 'value="Team members"' in html
    # The types the values suggest are proposed.
    types = re.findall(r'<option value="(\w+)" selected>', html)
    assert types == ["charfielddefinition", "integerfielddefinition", "datefielddefinition"]
    token = response.context["upload"].token
    data = confirm_data(
        [
            ("Name", "Name", "charfielddefinition"),
            ("Age", "Age", "integerfielddefinition"),
            ("Joined", "Joined on", "datefielddefinition"),
        ],
        token,
        "Team members",
    )
    response = browser.post(url("table_import"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    md = ModelDefinition.objects.get()
    assert md.object_name == "TeamMembers"
    rows = list(md.model_class().objects.order_by("pk").values_list("name", "age", "joined_on"))
    assert [(name, age, str(day)) for name, age, day in rows] == [
        ("Ada", 36, "2024-01-05"),
        ("Grace", 45, "2023-11-30"),
    ]
    # The file is gone once used.
    response = browser.post(url("table_import"), data)
    assert response.status_code == 302 and response["Location"] == url("table_import")


def test_a_table_from_an_xlsx_file(browser):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Product", "Price"])
    sheet.append(["Tea", 3.5])
    buffer = io.BytesIO()
    book.save(buffer)
    response = upload(browser, buffer.getvalue(), "prices.xlsx")
    token = response.context["upload"].token
    data = confirm_data(
        [("Product", "Product", "charfielddefinition"), ("Price", "Price", "charfielddefinition")],
        token,
        "Prices",
    )
    assert browser.post(url("table_import"), data).status_code == 302
    assert ModelDefinition.objects.get().model_class().objects.get().product == "Tea"


def test_rows_that_do_not_fit_leave_no_table_behind(browser):
    response = upload(browser, CSV.encode(), "people.csv")
    token = response.context["upload"].token
    data = confirm_data(
        [
            ("Name", "Name", "integerfielddefinition"),
            ("Age", "Age", "integerfielddefinition"),
            ("Joined", "Joined", "datefielddefinition"),
        ],
        token,
        "People",
    )
    html = page(browser.post(url("table_import"), data))
    assert "nothing was imported" in html and "Ada" in html
    assert not ModelDefinition.objects.exists()
    assert not table_exists("tables_people")


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"\x00\x01garbage\xff", "broken.xlsx", "This is not an Excel (xlsx) file."),
        (b"\x00\x01garbage\xff", "broken.csv", "does not look like a text file"),
        (b"%PDF-1.4", "report.pdf", "Unknown format"),
        (b"", "empty.csv", "The submitted file is empty."),
        (b",,\n\n", "blank.csv", "The file is empty."),
        (b"a,b\n1,2,3\n", "ragged.csv", "more cells"),
    ],
)
def test_an_unreadable_file_is_explained(browser, content, name, message):
    html = page(upload(browser, content, name))
    assert message in html
    assert not ModelDefinition.objects.exists()


def test_a_duplicate_title_from_a_file_is_refused(browser):
    make_penguins()
    response = upload(browser, CSV.encode(), "penguins.csv")
    token = response.context["upload"].token
    data = confirm_data([("Name", "Name", "charfielddefinition")], token, "Penguins")
    html = page(browser.post(url("table_import"), data))
    assert "A table called Penguins already exists." in html
    assert ModelDefinition.objects.count() == 1


# -- links --------------------------------------------------------------------------


def make_orders_linking_penguins() -> tuple[ModelDefinition, ModelDefinition]:
    penguins = make_penguins()
    orders = ModelDefinition.objects.create(object_name="Order", verbose_name_plural="Orders")
    return penguins, orders


def test_a_link_field_chooses_its_table_and_what_happens_on_delete(browser):
    penguins, orders = make_orders_linking_penguins()
    add = url("field_add", table="Order") + "?type=foreignkeydefinition"
    html = page(browser.get(add))
    assert 'name="to_definition"' in html and ">Penguins</option>" in html
    assert 'name="on_delete"' in html and "refuse to delete a linked row" in html
    assert 'name="default"' not in html and 'id="choices-editor"' not in html

    # Emptying the link needs a field that may be empty: the engine says so, next to it.
    data = field_data(
        "Penguin", to_definition=str(penguins.pk), on_delete="SET_NULL", required="on"
    )
    html = page(browser.post(add, data))
    assert "To empty the link, the field must allow empty values." in html
    html = page(browser.post(add, field_data("Penguin", on_delete="PROTECT")))
    assert "Choose the table this field links to" in html

    data = field_data("Penguin", to_definition=str(penguins.pk), on_delete="SET_NULL")
    assert browser.post(add, data).status_code == 302
    link = field(orders, "penguin")
    assert (link.to_definition_id, link.on_delete, link.null) == (penguins.pk, "SET_NULL", True)
    assert "link to one row → Penguins" in page(browser.get(url("table", table="Order")))
    linking = page(browser.get(url("table", table="Penguin")))
    assert "Linking here" in linking and "Orders" in linking

    gentoo = penguins.model_class().objects.create(species="Gentoo")
    html = page(browser.get(url("record_add", table="Order")))
    assert "Gentoo" in html
    assert browser.post(url("record_add", table="Order"), {"penguin": gentoo.pk}).status_code == 302
    assert orders.model_class().objects.get().penguin_id == gentoo.pk
    assert "<td>Gentoo</td>" in page(browser.get(url("records", table="Order")))


def test_a_link_to_the_project_s_users(browser):
    _penguins, orders = make_orders_linking_penguins()
    add = url("field_add", table="Order") + "?type=manytomanyfielddefinition"
    html = page(browser.get(add))
    assert 'value="auth.User"' in html
    assert 'name="required"' not in html and 'name="unique"' not in html
    assert browser.post(add, field_data("Handled by", to_model="auth.User")).status_code == 302
    assert field(orders, "handled_by").to_model == "auth.User"


def test_deleting_a_linked_table_asks_to_remove_the_links_too(browser):
    penguins, orders = make_orders_linking_penguins()
    add = url("field_add", table="Order") + "?type=foreignkeydefinition"
    data = field_data("Penguin", to_definition=str(penguins.pk), on_delete="CASCADE")
    assert browser.post(add, data).status_code == 302
    html = page(browser.get(url("table_delete", table="Penguin")))
    assert "These fields of other tables link to it" in html and 'name="remove_links"' in html
    html = page(browser.post(url("table_delete", table="Penguin")))
    assert "cannot be deleted" in html
    assert table_exists("tables_penguin")
    response = browser.post(url("table_delete", table="Penguin"), {"remove_links": "on"})
    assert response.status_code == 302
    assert not table_exists("tables_penguin")
    assert "penguin_id" not in columns("tables_order")


def test_changing_a_field_changes_when_the_table_last_changed(browser):
    md = make_penguins()
    ModelDefinition.objects.filter(pk=md.pk).update(updated_at="2001-01-01T00:00:00Z")
    add = url("field_add", table="Penguin") + "?type=integerfielddefinition"
    assert browser.post(add, field_data("Age")).status_code == 302
    md.refresh_from_db()
    assert md.updated_at.year > 2001


def test_a_table_someone_else_holds_is_reported_after_the_timeout(browser, settings):
    """A real subscription in another thread: the change waits, gives up, says so."""
    md = make_penguins()
    settings.MUTANT_LOCK_TIMEOUT = 0.5
    holding, done = threading.Event(), threading.Event()

    def reader() -> None:
        try:
            with ModelDefinition.objects.get(pk=md.pk).subscribe():
                holding.set()
                done.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert holding.wait(10)
        add = url("field_add", table="Penguin") + "?type=integerfielddefinition"
        html = page(browser.post(add, field_data("Age")))
    finally:
        done.set()
        thread.join()
    assert "This table is being changed, try again in a moment." in html
    assert "age" not in columns("tables_penguin")
    assert browser.post(add, field_data("Age")).status_code == 302


# -- trash and history ----------------------------------------------------------------


def test_a_deleted_table_waits_in_the_trash_and_comes_back_with_its_records(browser):
    make_penguins(rows=2)
    browser.post(url("table_delete", table="Penguin"))
    html = page(browser.get(url("trash")))
    assert "Penguins" in html
    md = ModelDefinition.all_objects.get()
    # Its names are free meanwhile: new tables take them.
    assert browser.post(url("table_add"), {"title": "Penguins"}).status_code == 302
    html = page(browser.post(url("restore_table", pk=md.pk), {"title": "Penguins"}))
    assert "Penguins is taken now: choose another name." in html
    ModelDefinition.objects.get().delete()
    assert browser.post(url("table_add"), {"title": "Penguin"}).status_code == 302
    html = page(browser.post(url("restore_table", pk=md.pk), {"title": "Penguins"}))
    assert "Choose another name to restore it under." in html
    response = browser.post(url("restore_table", pk=md.pk), {"title": "Old penguins"})
    assert response.status_code == 302
    md.refresh_from_db()
    assert (md.object_name, table_title(md)) == ("OldPenguins", "Old penguins")
    assert md.model_class().objects.count() == 2


def test_a_deleted_field_comes_back_with_its_values_or_goes_for_good(browser):
    md = make_penguins(rows=2)
    browser.post(url("field_delete", table="Penguin", field="species"))
    assert "species" not in columns("tables_penguin")
    species = FieldDefinition.all_objects.get(model_def=md, name="species")
    assert "Species" in page(browser.get(url("trash")))
    assert (
        browser.post(url("restore_field", pk=species.pk), {"title": "Species"}).status_code == 302
    )
    assert sorted(md.model_class().objects.values_list("species", flat=True)) == [
        "Adelie 0",
        "Adelie 1",
    ]
    browser.post(url("field_delete", table="Penguin", field="species"))
    html = page(browser.get(url("purge", kind="field", pk=species.pk)))
    assert "cannot be undone" in html
    assert browser.post(url("purge", kind="field", pk=species.pk)).status_code == 302
    assert not FieldDefinition.all_objects.filter(pk=species.pk).exists()
    assert browser.get(url("restore_field", pk=species.pk)).status_code == 404


def test_the_history_says_who_changed_what_and_undoes_the_last_change(browser):
    make_penguins()
    browser.post(
        url("field_edit", table="Penguin", field="species"), field_data("Kind", max_length="60")
    )
    html = page(browser.get(url("table_history", table="Penguin")))
    assert "builder" in html and "Kind" in html
    md = ModelDefinition.objects.get()
    event = md.history.order_by("-pk").first()
    response = browser.post(url("table_undo", table="Penguin", event=event.pk))
    assert response.status_code == 302
    assert [f.name for f in md.field_definitions()] == ["species"]
    # Undone already: said in words, nothing changes.
    response = browser.post(url("table_undo", table="Penguin", event=event.pk), follow=True)
    assert "This change was undone already." in page(response)


def test_a_latin_1_file_with_semicolons_is_read(browser):
    content = "Name;Town\nJosé;Málaga\nAnaïs;Paris\n".encode("latin-1")
    response = upload(browser, content, "people.csv")
    token = response.context["upload"].token
    data = confirm_data(
        [("Name", "Name", "charfielddefinition"), ("Town", "Town", "charfielddefinition")],
        token,
        "People",
    )
    assert browser.post(url("table_import"), data).status_code == 302
    model = ModelDefinition.objects.get().model_class()
    assert sorted(model.objects.values_list("name", "town")) == [
        ("Anaïs", "Paris"),
        ("José", "Málaga"),
    ]


def test_columns_left_out_are_not_imported(browser):
    response = upload(browser, CSV.encode(), "people.csv")
    token = response.context["upload"].token
    data = confirm_data(
        [
            ("Name", "Full name", "charfielddefinition"),
            ("Age", "Age", "integerfielddefinition"),
            ("Joined", "Joined", "datefielddefinition"),
        ],
        token,
        "People",
    )
    del data["columns-1-include"]
    assert browser.post(url("table_import"), data).status_code == 302
    md = ModelDefinition.objects.get()
    assert [f.name for f in md.field_definitions()] == ["full_name", "joined"]
    assert sorted(md.model_class().objects.values_list("full_name", flat=True)) == ["Ada", "Grace"]


def test_columns_are_matched_by_position_even_without_or_with_the_same_header(browser):
    content = b",Name,Name,\n,Ada,Lovelace,x\n,Grace,Hopper,y\n"
    response = upload(browser, content, "names.csv")
    html = page(response)
    token = response.context["upload"].token
    # The empty first column is left out; the others keep their places.
    assert re.findall(r'name="columns-\d+-column" value="(\d+)"', html) == ["1", "2", "3"]
    data = {
        "token": token,
        "title": "Names",
        "columns-TOTAL_FORMS": "3",
        "columns-INITIAL_FORMS": "3",
    }
    for number, (index, label) in enumerate([(1, "First"), (2, "Last"), (3, "Mark")]):
        data.update(
            {
                f"columns-{number}-column": str(index),
                f"columns-{number}-include": "on",
                f"columns-{number}-label": label,
                f"columns-{number}-field_type": "charfielddefinition",
            }
        )
    assert browser.post(url("table_import"), data).status_code == 302
    model = ModelDefinition.objects.get().model_class()
    assert sorted(model.objects.values_list("first", "last", "mark")) == [
        ("Ada", "Lovelace", "x"),
        ("Grace", "Hopper", "y"),
    ]


def test_a_help_text_is_text_in_the_admin_too(browser, django_user_model):
    md = make_penguins()
    evil = "<script>alert(1)</script>"
    species = field(md, "species")
    species.help_text = evil
    species.save()
    admin = Client()
    admin.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    html = page(admin.get("/admin/tables/penguin/add/"))
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_keyboard_move_without_javascript_comes_back_with_the_focus_on_its_button(
    schema_db, client, django_user_model
):
    from mutant.models import CharFieldDefinition, ModelDefinition

    admin = django_user_model.objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(admin)
    md = ModelDefinition.objects.create(object_name="Things")
    for name in ("first", "second"):
        CharFieldDefinition.objects.create(model_def=md, name=name, max_length=5, null=True)
    response = client.post("/tables/Things/fields/second/move/", {"direction": "up"})
    assert response.status_code == 302
    assert response["Location"].endswith("?moved=second-up")
    page = client.get(response["Location"])
    assert b'data-focus="move-second-up"' in page.content
    page = client.get("/tables/Things/?moved=%3Cscript%3E-up")
    assert b"data-focus" not in page.content
