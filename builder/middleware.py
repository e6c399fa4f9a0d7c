"""Every request to a table's page holds a subscription to that table.

A URL names its table in the `table` argument (an object name, in any case).
The middleware subscribes before the view runs and lets go once the response
is finished (after the last chunk of a streaming response), so a schema
change waits for the request and the request never sees half a change. The
view finds the fresh class in `request.mutant_model` and the definition in
`request.mutant_definition`. A table that stays busy past the timeout, here
or anywhere in the view, gets a friendly 503 page instead of an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from mutant.errors import DefinitionBusy
from mutant.models import ModelDefinition

RETRY_AFTER = 5
"""Seconds a client is asked to wait before trying a busy table again."""


def busy_response(request: HttpRequest, error: DefinitionBusy) -> HttpResponse:
    response = render(
        request,
        "builder/busy.html",
        {
            "title": _("This table is being changed"),
            "message": str(error),
            "retry_after": RETRY_AFTER,
        },
        status=503,
    )
    response["Retry-After"] = str(RETRY_AFTER)
    return response


class TableSubscriptionMiddleware:
    """Subscribes each request to the table its URL names, for the whole request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.get_response(request)
        except BaseException:
            self._release(request)
            raise
        if getattr(request, "_mutant_subscription", None) is not None:
            if response.streaming:
                # Released by response.close(), in this thread, before
                # request_finished closes the database connection.
                response._resource_closers.append(lambda: self._release(request))
            else:
                self._release(request)
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable,
        view_args: tuple,
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        name = view_kwargs.get("table")
        if not name or getattr(request, "_mutant_subscription", None) is not None:
            return None
        definition = ModelDefinition.objects.filter(object_name__iexact=name).first()
        if definition is None:
            raise Http404(_("There is no table named %(name)s.") % {"name": name})
        seen = definition.version
        subscription = definition.subscribe()
        try:
            model = subscription.__enter__()
        except DefinitionBusy as error:
            return busy_response(request, error)
        except ModelDefinition.DoesNotExist:
            raise Http404(_("There is no table named %(name)s.") % {"name": name}) from None
        request._mutant_subscription = subscription
        if definition.version != seen:
            # Changed between the lookup and the lock: read it again, now held.
            definition = ModelDefinition.objects.filter(pk=definition.pk).first()
            if definition is None or definition.model_name != name.lower():
                self._release(request)
                raise Http404(_("There is no table named %(name)s.") % {"name": name})
        request.mutant_definition = definition
        request.mutant_model = model
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DefinitionBusy):
            return busy_response(request, exception)
        return None

    @staticmethod
    def _release(request: HttpRequest) -> None:
        subscription = getattr(request, "_mutant_subscription", None)
        if subscription is not None:
            request._mutant_subscription = None
            subscription.__exit__(None, None, None)
