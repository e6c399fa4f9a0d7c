"""Builder URLs: a table is named by its `table` kwarg (its object_name), which
the lock middleware reads to subscribe to it for the whole request."""

from django.urls import path

from builder import views

app_name = "builder"
urlpatterns = [
    path("", views.home, name="home"),
    path("new/", views.table_add, name="table_add"),
    path("new/from-spreadsheet/", views.table_import, name="table_import"),
    path("tables/<str:table>/", views.table_detail, name="table"),
    path("tables/<str:table>/edit/", views.table_edit, name="table_edit"),
    path("tables/<str:table>/delete/", views.table_delete, name="table_delete"),
    path("tables/<str:table>/add-field/", views.field_add, name="field_add"),
    path("tables/<str:table>/order/", views.field_order, name="field_order"),
    path("tables/<str:table>/fields/<str:field>/", views.field_edit, name="field_edit"),
    path("tables/<str:table>/fields/<str:field>/move/", views.field_move, name="field_move"),
    path("tables/<str:table>/fields/<str:field>/delete/", views.field_delete, name="field_delete"),
    path("tables/<str:table>/fields/<str:field>/type/", views.field_type, name="field_type"),
    path("tables/<str:table>/history/", views.table_history, name="table_history"),
    path("tables/<str:table>/history/<int:event>/undo/", views.table_undo, name="table_undo"),
    path("tables/<str:table>/records/", views.records, name="records"),
    path("tables/<str:table>/records/add/", views.record_edit, name="record_add"),
    path("tables/<str:table>/records/<int:pk>/", views.record_edit, name="record_edit"),
    path("trash/", views.trash, name="trash"),
    path("trash/tables/<int:pk>/restore/", views.trash_restore_table, name="restore_table"),
    path("trash/fields/<int:pk>/restore/", views.trash_restore_field, name="restore_field"),
    path(
        "trash/<str:kind>/<int:pk>/purge/",
        views.trash_purge,
        name="purge",
    ),
]
