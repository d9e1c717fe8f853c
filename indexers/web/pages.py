"""The server-rendered pages: login, trace, call, alerts, KPIs.

Every page but ``/login`` depends on :func:`~indexers.web.app.page_user`. Templates are autoescaped and
never mark captured data safe; input errors and Elasticsearch trouble become a message on the page.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from indexers.errors import QueryError
from indexers.web import auth, forms, service
from indexers.web.app import ctx, page_user
from indexers.web.queries import SearchUnavailable

router = APIRouter(include_in_schema=False)
User = Annotated[auth.User, Depends(page_user)]


def render(request: Request, name: str, status: int = 200, **values) -> HTMLResponse:
    c = ctx(request)
    values.setdefault("retention_days", c.settings.elasticsearch.retention_days)
    html = c.templates.get_template(name).render(request=request, **values)
    return HTMLResponse(html, status_code=status)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


@router.get("/login")
def login_form(request: Request, next: str = "/trace"):
    return render(request, "login.html", user=None, next=auth.safe_next(next), error=None)


@router.post("/login")
def login(request: Request, username: Annotated[str, Form(max_length=64)] = "",
          password: Annotated[str, Form(max_length=1024)] = "", next: Annotated[str, Form(max_length=2048)] = "/trace"):
    c = ctx(request)
    target = auth.safe_next(next)
    if c.throttle.blocked(_client(request), username):
        return render(request, "login.html", 429, user=None, next=target,
                      error="Too many failed logins: wait a few minutes and try again.")
    user = c.users.check_password(username, password)
    if user is None:
        c.throttle.failed(_client(request), username)
        return render(request, "login.html", 401, user=None, next=target, error="Wrong user name or password.")
    c.throttle.succeeded(_client(request), username)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(value=c.sessions.dump(user), **c.sessions.cookie_args())
    return response


@router.post("/logout")
def logout(request: Request):
    response = RedirectResponse("/login", status_code=303)
    args = ctx(request).sessions.cookie_args()
    response.delete_cookie(args["key"], path="/", secure=args["secure"], httponly=True, samesite="lax")
    return response


@router.get("/")
def home(user: User):
    return RedirectResponse("/trace", status_code=303)


@router.get("/trace")
def trace_page(request: Request, user: User, number: Annotated[str, Query(max_length=200)] = "",
               last: str = "1h", start: Annotated[str, Query(max_length=40)] = "",
               end: Annotated[str, Query(max_length=40)] = "", registrations: bool = False,
               after: Annotated[str, Query(max_length=600)] = "", p: Annotated[int, Query(ge=1, le=10_000)] = 1):
    c = ctx(request)
    presets = dict(forms.PRESETS)
    if last in forms.WIDE_PRESETS:  # a link (or script) may ask for a wider window than the presets
        presets.setdefault(last, forms.WIDE_PRESETS[last])
    form = {"number": number, "last": last, "start": start, "end": end, "registrations": registrations}
    result, error, status = None, None, 200
    if number.strip():
        try:
            result = service.trace(c, number, last=None if last == "custom" else last,
                                   start=start if last == "custom" else None, end=end if last == "custom" else None,
                                   registrations=registrations, cursor=after or None, page_no=p)
        except QueryError as exc:
            error, status = str(exc), 400
        except SearchUnavailable as exc:
            error, status = f"{exc}: the search could not run. Try again in a minute; if it persists, tell the on-call engineer.", 503
    next_url = None
    if result and result.next_cursor:
        q = {k: v for k, v in {"number": number, "last": last, "start": start, "end": end}.items() if v}
        if registrations:
            q["registrations"] = "true"
        next_url = "/trace?" + urlencode({**q, "after": result.next_cursor, "p": result.page_no + 1})
    return render(request, "trace.html", status, user=user, form=form, presets=presets, result=result,
                  error=error, next_url=next_url, page_size=c.settings.web.page_size,
                  max_results=c.settings.web.max_results)


@router.get("/calls/{call_id:path}")
def call_page(request: Request, user: User, call_id: str):
    c = ctx(request)
    try:
        data = service.load_call(c, call_id)
    except SearchUnavailable as exc:
        return render(request, "call.html", 503, user=user, call_id=call_id, view=None,
                      error=f"{exc}: the call could not be loaded. Try again in a minute.")
    if data is None:
        return render(request, "call.html", 404, user=user, call_id=call_id, view=None,
                      error=f"No message of this call is kept (Call-ID not found in the last "
                            f"{c.settings.elasticsearch.retention_days} days).")
    return render(request, "call.html", user=user, call_id=call_id, view=service.call_view(c, data), error=None,
                  ex=c.explanations)


@router.get("/alerts")
def alerts_page(request: Request, user: User, last: str = "1d", start: Annotated[str, Query(max_length=40)] = "",
                end: Annotated[str, Query(max_length=40)] = "", live: bool = True):
    c = ctx(request)
    error, status, rng, open_, resolved = None, 200, None, [], []
    try:
        rng, open_, resolved = service.alerts(c, None if last == "custom" else last, start or None, end or None)
    except QueryError as exc:
        error, status = str(exc), 400
    except SearchUnavailable as exc:
        error, status = f"{exc}: alerts could not be loaded. Try again in a minute.", 503
    return render(request, "alerts.html", status, user=user, last=last, start=start, end=end, presets=forms.WIDE_PRESETS,
                  rng=rng, open=open_, resolved=resolved, error=error, live=live)


@router.get("/kpis")
def kpis_page(request: Request, user: User, last: str = "6h", start: Annotated[str, Query(max_length=40)] = "",
              end: Annotated[str, Query(max_length=40)] = "", scope: str = "trunk",
              key: Annotated[list[str] | None, Query()] = None):
    c = ctx(request)
    error, status, rng, data, made = None, 200, None, None, []
    try:
        rng, data, made = service.kpis(c, None if last == "custom" else last, start or None, end or None, scope, key)
    except QueryError as exc:
        error, status = str(exc), 400
    except SearchUnavailable as exc:
        error, status = f"{exc}: KPIs could not be loaded. Try again in a minute.", 503
    return render(request, "kpis.html", status, user=user, last=last, start=start, end=end, presets=forms.WIDE_PRESETS,
                  scope=scope, scopes=service.SCOPES, keys=key or [], rng=rng, data=data, charts=made, error=error)


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)
