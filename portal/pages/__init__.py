"""The web pages: server-rendered, in Korean and English, on the core's use cases.

``install`` adds every page's routes to the app and makes errors on a page answer as a page:
a browser without a session is sent to ``/signin``, a stale or forged form gets a 403 page, and
a refusal from the books (not found, forbidden, invalid) is shown in the viewer's language
instead of a problem document. API routes keep their problem documents.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from portal.deps import Portal
from portal.pages import (
    admin,
    assets,
    home,
    jobs,
    people,
    programs,
    projects,
    reports,
    requests,
)
from portal.pages.i18n import LANGUAGE_COOKIE, Language
from portal.pages.render import (
    PAGE_HEADERS,
    SignInFirst,
    StaleForm,
    check_form,
    error_page,
    words,
)
from portal.problems import Problem, field_errors, status_of
from portal.scopes import OPERATION_SCOPES, Operation
from quotas.access import Scope
from quotas.errors import BooksError

PAGE_MODULES: tuple[PageModule, ...] = (
    home,
    jobs,
    projects,
    requests,
    programs,
    reports,
    admin,
    people,
)
"""Modules whose routes are pages (``assets`` serves files, not pages); each has a ``router``
and the ``SCOPES`` its pages need (``portal.scopes``)."""

LANGUAGE_COOKIE_AGE = 365 * 24 * 3600

router = APIRouter(include_in_schema=False)


@router.post("/language")
def switch_language(
    request: Request,
    to: Annotated[Language, Form()],
    back: Annotated[str, Form(max_length=500)] = "/",
    csrf: Annotated[str | None, Form(max_length=128)] = None,
) -> Response:
    """Show the pages in ``to`` from now on; back to the page the switch was on."""
    if "csrf" in request.session:
        check_form(request, csrf)
    target = back if back.startswith("/") and not back.startswith("//") else "/"
    if "\\" in target or any(ord(char) < 32 for char in target):
        target = "/"
    response = RedirectResponse(target, status_code=303, headers=PAGE_HEADERS)
    response.set_cookie(
        LANGUAGE_COOKIE, to.value, max_age=LANGUAGE_COOKIE_AGE, samesite="lax", httponly=True
    )
    return response


class PageModule(Protocol):
    __name__: str
    router: APIRouter
    SCOPES: dict[Operation, frozenset[Scope]]


def install(app: FastAPI) -> None:
    app.include_router(assets.router)
    app.include_router(router)
    for module in PAGE_MODULES:
        app.include_router(module.router)
        named_twice = OPERATION_SCOPES.keys() & module.SCOPES.keys()
        if any(OPERATION_SCOPES[each] != module.SCOPES[each] for each in named_twice):
            raise ValueError(f"{module.__name__} names other scopes for {sorted(named_twice)}")
        OPERATION_SCOPES.update(module.SCOPES)
    page_endpoints = {
        route.endpoint
        for module in PAGE_MODULES
        for route in module.router.routes
        if isinstance(route, APIRoute)
    }
    page_endpoints.add(switch_language)

    def on_page(request: Request) -> bool:
        return request.scope.get("endpoint") in page_endpoints

    portal: Callable[[], Portal] = lambda: app.state.portal  # noqa: E731

    async def signed_out(request: Request, error: Exception) -> Response:
        return RedirectResponse("/signin", status_code=303, headers=PAGE_HEADERS)

    async def stale(request: Request, error: Exception) -> Response:
        return await _error(request, 403, words(request, portal())("error.stale_form"))

    async def _error(request: Request, status: int, message: str) -> Response:
        return await run_in_threadpool(error_page, request, portal(), status, message)

    def wrap(
        api: Callable[[Request, Any], Any],
        status_and_message: Callable[[Any], tuple[int, str]],
    ) -> Callable[[Request, Exception], Awaitable[Response]]:
        """On a page, ``status_and_message`` as an error page; elsewhere the API's answer."""

        async def handler(request: Request, error: Exception) -> Response:
            if not on_page(request):
                answer = api(request, error)
                found: Response = await answer if inspect.isawaitable(answer) else answer
                return found
            status, message = status_and_message(error)
            return await _error(request, status, message)

        return handler

    handlers = app.exception_handlers
    app.add_exception_handler(SignInFirst, signed_out)
    app.add_exception_handler(StaleForm, stale)
    app.add_exception_handler(Problem, wrap(handlers[Problem], _problem))
    app.add_exception_handler(BooksError, wrap(handlers[BooksError], _refusal))
    app.add_exception_handler(
        RequestValidationError, wrap(handlers[RequestValidationError], _invalid)
    )


def _problem(error: Problem) -> tuple[int, str]:
    return error.status, error.detail


def _refusal(error: BooksError) -> tuple[int, str]:
    return status_of(error), str(error)


def _invalid(error: RequestValidationError) -> tuple[int, str]:
    """What was wrong with a form or query, field by field (without the ``body.`` prefix)."""
    return 422, field_errors(error.errors(), drop=1)
