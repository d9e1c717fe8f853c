"""The JSON API under ``/api/`` (schema at ``/openapi.json``), for scripts with an API token.

Errors: 400 bad input (``detail`` says why), 401 no or bad credentials, 404 unknown call, 503 Elasticsearch
unreachable or failing. Times are ISO-8601 UTC as indexed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from indexers.errors import QueryError
from indexers.search import LAST
from indexers.web import auth, service
from indexers.web.app import api_user, ctx
from indexers.web.queries import CallData, SearchUnavailable

router = APIRouter(prefix="/api", tags=["trace"])
User = Annotated[auth.User, Depends(api_user)]
_LAST_HELP = f"window ending now: {', '.join(LAST)} (default 1h; or give start/end)"
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input (detail says why)"}, 401: {"description": "no or bad credentials"},
    503: {"description": "Elasticsearch unreachable or failing"}}


class Range(BaseModel):
    start: str
    end: str


class TraceOut(BaseModel):
    total: int = Field(description="messages in the range for the matching calls (exact up to 10,000)")
    number: str = Field(description="how the number was searched")
    range: Range
    messages: list[dict[str, Any]] = Field(description="newest first, without the raw text")
    calls: list[str] = Field(description="Call-IDs of the matching calls")
    next: str | None = Field(description="pass as `after` for the next page; null on the last page")


class CallOut(BaseModel):
    call_id: str
    legs: list[str] = Field(description="Call-IDs of the call's correlated legs, the asked one first")
    correlation_ids: list[str]
    summaries: list[dict[str, Any]]
    messages: list[dict[str, Any]] = Field(description="oldest first, raw text included, with `kind` "
                                                       "(new, retransmission, duplicate)")
    total: int
    truncated: bool


class AlertsOut(BaseModel):
    range: Range
    open: list[dict[str, Any]]
    resolved: list[dict[str, Any]]


class KpisOut(BaseModel):
    range: Range
    scope: str
    interval_s: int
    keys: list[str]
    series: list[dict[str, Any]] = Field(description="per key: metric -> [[epoch seconds, value or null]]")


def _run(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None
    except SearchUnavailable as exc:
        raise HTTPException(503, str(exc)) from None


def _rng(r) -> Range:
    return Range(start=r.start.isoformat().replace("+00:00", "Z"), end=r.end.isoformat().replace("+00:00", "Z"))


@router.get("/trace", response_model=TraceOut, responses=_ERRORS)
def trace(request: Request, user: User,
          number: Annotated[str, Query(max_length=200, description="number in any form, or its last 6+ digits")],
          last: Annotated[str | None, Query(description=_LAST_HELP)] = None,
          start: Annotated[str | None, Query(max_length=40, description="ISO-8601 start (UTC if no offset)")] = None,
          end: Annotated[str | None, Query(max_length=40, description="ISO-8601 end (default now)")] = None,
          registrations: Annotated[bool, Query(description="include REGISTER transactions")] = False,
          size: Annotated[int, Query(ge=1, le=500)] = 100,
          after: Annotated[str | None, Query(max_length=600, description="`next` of the previous page")] = None):
    c = ctx(request)
    if last and (start or end):
        raise HTTPException(400, "use either last or start/end, not both")
    r = _run(service.trace, c, number, last=last, start=start, end=end, registrations=registrations, cursor=after,
             size=size, default_last="1h")
    return TraceOut(total=r.page.total, number=r.page.number.describe(), range=_rng(r.page.range), messages=r.rows,
                    calls=r.page.calls or [], next=r.next_cursor)


def _call(request: Request, call_id: str) -> CallData:
    data = _run(service.load_call, ctx(request), call_id)
    if data is None:
        raise HTTPException(404, "no message of this Call-ID is kept")
    return data


@router.get("/calls/{call_id:path}/pcap", responses={**_ERRORS, 200: {"content": {"application/vnd.tcpdump.pcap": {}},
                                                                    "description": "classic pcap (Ethernet)"}})
def call_pcap(request: Request, user: User, call_id: str) -> Response:
    data = _call(request, call_id)
    return Response(service.call_pcap(data), media_type="application/vnd.tcpdump.pcap", headers={
        "Content-Disposition": f'attachment; filename="{service.export_name(call_id, "pcap")}"'})


@router.get("/calls/{call_id:path}/text", response_class=PlainTextResponse, responses=_ERRORS)
def call_text(request: Request, user: User, call_id: str) -> PlainTextResponse:
    data = _call(request, call_id)
    return PlainTextResponse(service.call_as_text(data), headers={
        "Content-Disposition": f'attachment; filename="{service.export_name(call_id, "txt")}"'})


@router.get("/calls/{call_id:path}", response_model=CallOut, responses=_ERRORS)
def call(request: Request, user: User, call_id: str):
    c = ctx(request)
    data = _call(request, call_id)
    view = service.call_view(c, data)
    msgs = [dict(m["doc"], kind=m["kind"]) for m in view.messages]
    return CallOut(call_id=call_id, legs=data.legs, correlation_ids=data.correlation_ids, summaries=data.summaries,
                   messages=msgs, total=data.total, truncated=data.truncated)


@router.get("/alerts", response_model=AlertsOut, responses=_ERRORS)
def alerts(request: Request, user: User, last: Annotated[str | None, Query(description=_LAST_HELP)] = None,
           start: Annotated[str | None, Query(max_length=40)] = None,
           end: Annotated[str | None, Query(max_length=40)] = None):
    rng, open_, resolved = _run(service.alerts, ctx(request), last, start, end)
    return AlertsOut(range=_rng(rng), open=open_, resolved=resolved)


@router.get("/kpis", response_model=KpisOut, responses=_ERRORS)
def kpis(request: Request, user: User, last: Annotated[str | None, Query(description=_LAST_HELP)] = None,
         start: Annotated[str | None, Query(max_length=40)] = None,
         end: Annotated[str | None, Query(max_length=40)] = None,
         scope: Annotated[str, Query(description="trunk, all, src or dst")] = "trunk",
         key: Annotated[list[str] | None, Query(description="keys to chart (default: the busiest)")] = None):
    rng, data, _ = _run(service.kpis, ctx(request), last, start, end, scope, key)
    series = [{"key": s.key, "attempts": s.attempts, **{m: [list(p) for p in pts] for m, pts in s.points.items()}}
              for s in data.series]
    return KpisOut(range=_rng(rng), scope=data.scope, interval_s=data.interval_s, keys=data.keys, series=series)
