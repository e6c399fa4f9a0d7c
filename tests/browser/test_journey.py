"""A new user's whole journey through the builder, in a real browser."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from mutant.models import ModelDefinition

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("schema_db")]

PASSWORD = "correct horse battery"
CSV = (
    "Name,Email,Joined,Premium\n"
    "Ada Lovelace,ada@example.com,2024-01-05,yes\n"
    "Grace Hopper,grace@example.com,2023-11-30,no\n"
    "Alan Turing,alan@example.com,2022-06-23,yes\n"
)


@pytest.fixture
def page(chromium, live_server) -> Page:
    get_user_model().objects.create_superuser("maria", "maria@example.com", PASSWORD)
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, base_url=live_server.url
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def field_names(page: Page) -> list[str]:
    return page.locator("#field-list .b-field").evaluate_all(
        "items => items.map(item => item.dataset.name)"
    )


def add_field(page: Page, type_title: str, label: str, **inputs: str) -> None:
    page.get_by_role("link", name="Add a field").click()
    page.locator(".b-pick", has_text=type_title).first.click()
    page.get_by_label("Label").fill(label)
    for input_label, value in inputs.items():
        page.get_by_label(input_label, exact=True).fill(value)
    page.get_by_role("button", name="Add field").click()
    expect(page.locator(".grp-messagelist")).to_contain_text(f"The field {label} was added.")


def test_a_new_user_builds_and_fills_a_small_database(page: Page, screenshots, live_server):
    # Log in: the builder sends people to the login page first.
    page.goto("/")
    page.get_by_label("Username").fill("maria")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    expect(page.get_by_role("heading", name="Your tables")).to_be_visible()

    # A table from a spreadsheet first, so that the orders can link to it.
    page.get_by_role("link", name="New table from a spreadsheet").click()
    page.get_by_label("Spreadsheet").set_input_files(
        files=[{"name": "customers.csv", "mimeType": "text/csv", "buffer": CSV.encode()}]
    )
    page.get_by_role("button", name="Read the file").click()
    expect(page.get_by_role("heading", name="Check the proposed fields")).to_be_visible()
    expect(page.get_by_label("Table name")).to_have_value("Customers")
    page.get_by_label("Type of the column Joined").select_option("datefielddefinition")
    page.get_by_label("Type of the column Premium").select_option("booleanfielddefinition")
    page.get_by_label("Label of the column Joined").fill("Customer since")
    page.screenshot(path=screenshots / "spreadsheet.png", full_page=True)
    page.get_by_role("button", name="Create the table and import the rows").click()
    expect(page.locator(".grp-messagelist")).to_contain_text("created with 3 records")
    assert field_names(page) == ["name", "email", "customer_since", "premium"]

    # A table by hand.
    page.get_by_role("link", name="Your tables").first.click()
    page.get_by_role("link", name="New table", exact=True).click()
    page.get_by_label("Table name").fill("Customer orders")
    page.get_by_label("Description").fill("What our customers buy, and when.")
    page.get_by_role("button", name="Create table").click()
    expect(page.get_by_role("heading", name="Customer orders")).to_be_visible()

    add_field(page, "Short text", "Reference")
    add_field(page, "Whole number", "Quantity")
    add_field(page, "Date", "Order date")
    page.get_by_role("link", name="Add a field").click()
    expect(page.get_by_role("heading", name="Add a field to Customer orders")).to_be_visible()
    page.screenshot(path=screenshots / "type-picker.png", full_page=True)
    page.locator(".b-pick[data-type=choice-list]").click()
    page.get_by_label("Label").fill("Status")
    page.get_by_label("Option 1", exact=True).fill("New")
    page.get_by_label("Option 2", exact=True).fill("Paid")
    page.get_by_label("Option 3", exact=True).fill("Shipped")
    page.get_by_role("button", name="Add an option").click()
    page.get_by_label("Option 4", exact=True).fill("Cancelled")
    page.get_by_label("Default value").fill("New")
    page.screenshot(path=screenshots / "choice-field.png", full_page=True)
    page.get_by_role("button", name="Add field").click()
    expect(page.locator(".grp-messagelist")).to_contain_text("The field Status was added.")
    expect(page.locator("#field-status .b-choices")).to_have_text("New, Paid, Shipped, Cancelled")
    page.get_by_role("link", name="Add a field").click()
    page.locator(".b-pick", has_text="Link to one row").click()
    page.get_by_label("Label").fill("Customer")
    page.get_by_label("Linked table").select_option(label="Customers")
    page.get_by_label("When the linked row is deleted").select_option("PROTECT")
    page.get_by_role("button", name="Add field").click()
    expect(page.locator("#field-customer .b-type")).to_have_text("link to one row → Customers")

    # Rename a field: its label, and the name derived from it.
    page.get_by_role("link", name="Edit Quantity").click()
    page.get_by_label("Label").fill("Number of items")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".grp-messagelist")).to_contain_text("Number of items was saved")
    assert field_names(page) == ["reference", "number_of_items", "order_date", "status", "customer"]

    # Reorder: drag the date to the top, then move the status up with the keyboard.
    with page.expect_response(re.compile(r"/order/$")):
        page.locator("#field-order_date .b-handle").drag_to(
            page.locator("#field-reference"), target_position={"x": 10, "y": 2}
        )
    expect(page.locator("#field-list .b-field").first).to_have_id("field-order_date")
    assert field_names(page) == [
        "order_date",
        "reference",
        "number_of_items",
        "status",
        "customer",
    ]
    page.get_by_role("button", name="Move Status up").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#field-list .b-field").nth(2)).to_have_id("field-status")
    expect(page.get_by_role("button", name="Move Status up")).to_be_focused()
    page.reload()
    assert field_names(page) == [
        "order_date",
        "reference",
        "status",
        "number_of_items",
        "customer",
    ]
    page.screenshot(path=screenshots / "field-editor.png", full_page=True)

    # A record through the form.
    page.get_by_role("link", name="Add a record").click()
    page.get_by_label("Order date").fill("2026-03-01")
    page.get_by_label("Reference").fill("A-12")
    page.get_by_label("Status").select_option(label="Paid")
    page.get_by_label("Number of items").fill("3")
    page.get_by_label("Customer").select_option(label="Ada Lovelace")
    page.screenshot(path=screenshots / "record-form.png", full_page=True)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#records")).to_contain_text("A-12")

    # A type change the values do not allow, then one they do.
    page.get_by_role("link", name="Fields").click()
    page.get_by_role("link", name="Change the type of Reference").click()
    page.locator(".b-pick", has_text="Whole number").first.click()
    expect(page.locator(".b-report-summary")).to_contain_text("0 of 1 value can be converted.")
    expect(page.locator("#problems")).to_contain_text("A-12")
    expect(page.get_by_role("button", name=re.compile("Convert"))).to_have_count(0)
    page.screenshot(path=screenshots / "type-change-refused.png", full_page=True)
    page.locator("#problems a").first.click()
    page.get_by_label("Reference").fill("12")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("link", name="Fields").click()
    page.get_by_role("link", name="Change the type of Reference").click()
    page.locator(".b-pick", has_text="Whole number").first.click()
    expect(page.locator(".b-report-summary")).to_contain_text("1 of 1 value can be converted.")
    expect(page.locator("#examples")).to_contain_text("12")
    page.get_by_role("button", name="Convert to whole number").click()
    expect(page.locator(".grp-messagelist")).to_contain_text("Reference is now a whole number")
    orders = ModelDefinition.objects.get(object_name="CustomerOrders")
    assert orders.model_class().objects.get().reference == 12

    # Delete a field: it waits in the trash, and comes back with its value.
    page.get_by_role("link", name="Delete Status").click()
    expect(page.locator("#delete-summary")).to_contain_text("with the 1 value stored in it")
    page.get_by_role("button", name="Yes, delete the field").click()
    expect(page.locator("#field-status")).to_have_count(0)
    page.get_by_role("link", name="Your tables").first.click()
    page.get_by_role("link", name="Trash").click()
    page.get_by_role("link", name="Restore Status").click()
    page.get_by_role("button", name="Restore").click()
    expect(page.locator(".grp-messagelist")).to_contain_text("The field Status is back")
    assert orders.model_class().objects.get().status == "Paid"
    page.get_by_role("link", name="History").click()
    expect(page.locator("#history")).to_contain_text("maria")
    page.screenshot(path=screenshots / "history.png", full_page=True)

    # The home page: both tables, their fields and records.
    page.get_by_role("link", name="Your tables").first.click()
    expect(page.locator("#tables")).to_contain_text("Customer orders")
    expect(page.locator("#tables")).to_contain_text("Customers")
    page.screenshot(path=screenshots / "tables.png", full_page=True)

    # On a phone.
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Customer orders").click()
    expect(page.get_by_role("heading", name="Customer orders")).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page scrolls sideways on a phone ({width}px)"
    page.screenshot(path=screenshots / "phone-field-editor.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # The record in the admin.
    admin = page.get_by_role("link", name="Open in the admin")
    if admin.count() == 0:
        pytest.skip("The generated admin does not list user tables yet.")
    admin.click()
    expect(page.locator("#grp-content")).to_contain_text("Paid")
