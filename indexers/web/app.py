"""The app factory: ``create_app(settings)`` wires settings, Elasticsearch, users, templates and routes.

Cross-cutting behaviour lives here:

* authentication: :func:`page_user` (pages: no login -> redirect to ``/login``) and :func:`api_user`
  (``/api``: ``Authorization: Bearer <token>`` or the session cookie, else 401);
* security headers on every answer (a strict Content-Security-Policy: scripts and styles only from
  ``/static``, no inline script, no framing);
* errors: an unexpected exception is logged and answered with a short message, never a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from elasticsearch import Elasticsearch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexers.es import client as es_client
from indexers.search import Searcher
from indexers.web import auth, explain
from sipscope.logs import get_logger
from sipscope.settings import Settings, get_settings

log = get_logger(__name__)
HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


@dataclass
class Context:
    settings: Settings
    es: Elasticsearch
    searcher: Searcher
    users: auth.UserStore
    sessions: auth.Sessions
    explanations: explain.Explanations
    templates: Jinja2Templates
    throttle: auth.Throttle

    @property
    def prefix(self) -> str:
        return self.settings.elasticsearch.index_prefix


class LoginRequired(Exception):
    def __init__(self, target: str) -> None:
        self.target = target


def ctx(request: Request) -> Context:
    return request.app.state.ctx


def _user_from(request: Request, allow_bearer: bool) -> auth.User | None:
    c = ctx(request)
    header = request.headers.get("authorization", "")
    if allow_bearer and header[:7].lower() == "bearer ":
        return c.users.check_token(header[7:].strip())
    found = c.sessions.load(request.cookies.get(auth.COOKIE))
    return c.users.current(*found) if found else None


def page_user(request: Request) -> auth.User:
    """Dependency of the pages: the logged-in user, else a redirect to the login page."""
    user = _user_from(request, allow_bearer=False)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return user


def api_user(request: Request) -> auth.User:
    """Dependency of the API: a valid bearer token or session cookie, else 401."""
    user = _user_from(request, allow_bearer=True)
    if user is None:
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <token>' "
                                 "(sipscope users token NAME) or log in", headers={"WWW-Authenticate": "Bearer"})
    return user


def _when(value: str | float | None, ms: bool = True) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC).isoformat()
    text = str(value).replace("T", " ").replace("Z", "").replace("+00:00", "")
    if "." in text:
        head, frac = text.split(".", 1)
        return f"{head}.{frac[:3]}" if ms else head
    return text


def templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["urlpart"] = lambda s: quote(str(s), safe="@:+")
    env.filters["num"] = lambda v, fmt="{:.1f}": "" if v is None else fmt.format(v)
    return Jinja2Templates(env=env)


def build_context(settings: Settings, es: Elasticsearch | None = None) -> Context:
    web = settings.web
    es = es or es_client(settings, request_timeout=web.es_timeout_s)
    return Context(
        settings=settings, es=es, searcher=Searcher(es, settings), users=auth.UserStore(web.users_file),
        sessions=auth.Sessions(auth.secret_key(web), web.session_hours * 3600, web.cookie_secure),
        explanations=explain.load(web.explanations_file), templates=templates(), throttle=auth.Throttle(),
    )


def create_app(settings: Settings | None = None, es: Elasticsearch | None = None) -> FastAPI:
    from indexers.web import api, pages

    settings = settings or get_settings()
    app = FastAPI(title="sipscope trace API", version="1",
                  description="Trace SIP calls by number, read one call, export it, alerts and KPIs. "
                              "Authenticate with `Authorization: Bearer <token>` (`sipscope users token NAME`).",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = build_context(settings, es)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        try:
            response = await call_next(request)
        except Exception:
            log.exception("web request failed", path=request.url.path)
            response = _error(request, 500, "internal error: the details are in the server log")
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith("/static"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired):
        return RedirectResponse(f"/login?next={quote(exc.target, safe='')}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'input'}: {e.get('msg', '')}"
                             for e in exc.errors()[:5])
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": f"invalid input: {problems}"}, status_code=422)
        return _error(request, 400, f"invalid input: {problems}")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request):
        api_user(request)
        return JSONResponse(app.openapi())

    return app


def _error(request: Request, status: int, detail: str, headers: dict | None = None):
    if request.url.path.startswith("/api") or request.url.path == "/openapi.json":
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    c = ctx(request)
    html = c.templates.get_template("error.html").render(status=status, detail=detail, user=None)
    return HTMLResponse(html, status_code=status, headers=headers)
