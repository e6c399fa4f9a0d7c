"""Builder URLs."""

from django.urls import path

from builder import views

app_name = "builder"
urlpatterns = [
    path("", views.home, name="home"),
]
