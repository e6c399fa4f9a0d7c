"""Builder pages."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mutant.models import ModelDefinition


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The tables a person has built."""
    tables = ModelDefinition.objects.all()
    return render(request, "builder/home.html", {"tables": tables})
