"""Commands of the indexer stage: ``setup``, ``index``, ``retention enforce``, ``trace``, ``kibana``."""

from __future__ import annotations

import json
import os
import signal
import sys

from sipscope.settings import get_settings

_FAMILY_HELP = "comma-separated index families (messages,calls,registrations,stats,alerts; default all)"


def _families(text: str | None) -> list[str] | None:
    if not text:
        return None
    from indexers.families import get

    return [get(n.strip()).name for n in text.split(",") if n.strip()]


def _cmd_setup(args) -> int:
    from indexers import layout
    from indexers.errors import SetupError
    from indexers.es import client

    settings = get_settings()
    try:
        report = layout.setup(client(settings), settings, _families(args.families))
    except (SetupError, ValueError) as exc:
        print(f"sipscope setup: error: {exc}", file=sys.stderr)
        return 1
    for line in report.lines(settings.elasticsearch.retention_days):
        print(f"sipscope setup: {line}")
    return 0


def _cmd_index(args) -> int:
    from prometheus_client import start_http_server

    from indexers.indexer import Indexer

    settings = get_settings()
    if args.group_id:
        settings.indexer.group_id = args.group_id
    if args.batch_size:
        settings.indexer.batch_size = args.batch_size
    try:
        families = _families(args.families)
    except ValueError as exc:
        print(f"sipscope index: error: {exc}", file=sys.stderr)
        return 2
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    indexer = Indexer(settings, families=families)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: indexer.stop())
    s = indexer.run(exit_when_idle=args.exit_when_idle)
    print(f"sipscope index: {json.dumps({'docs': s.docs, 'rejected': s.by_reason, 'retries': s.retries, 'batches': s.batches, 'seconds': round(s.seconds, 1), 'docs_per_s': round(s.docs_per_s, 1)})}",
          file=sys.stderr)
    return 0


def _cmd_retention(args) -> int:
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    from indexers import retention
    from indexers.es import client

    settings = get_settings()
    try:
        gone = retention.enforce(client(settings), settings.elasticsearch.index_prefix,
                                 settings.elasticsearch.retention_days, dry_run=args.dry_run)
    except (ApiError, TransportError) as exc:
        print(f"sipscope retention: error: {exc}", file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    print(f"sipscope retention: {verb} {len(gone)} daily index(es) older than "
          f"{settings.elasticsearch.retention_days} days" + (": " + ", ".join(gone) if gone else ""))
    return 0


# ---------------------------------------------------------------- trace

_MSG_COLS = ("Date (UTC)", "Method/Status", "From", "To", "Agent", "Source IP", "Call-ID")
_CALL_COLS = ("Start (UTC)", "Outcome", "Caller", "Callee", "Final", "Duration", "Source IP", "Call-ID")
_WIDTH = {"Agent": 32, "From": 24, "To": 24, "Caller": 24, "Callee": 24}


def _when(iso: str | None) -> str:
    return (iso or "").replace("T", " ").rstrip("Z")[:26]


def _msg_row(d: dict) -> tuple:
    what = d.get("method") or f"{d.get('status_code', '')} {d.get('reason') or ''}".strip()
    return (_when(d.get("ts")), what, d.get("from_user") or "", d.get("to_user") or "", d.get("user_agent") or "",
            d.get("src_ip") or "", d.get("call_id") or "")


def _call_row(d: dict) -> tuple:
    dur = d.get("duration_s")
    final = f"{d.get('final_status') or ''} {d.get('final_reason') or ''}".strip()
    return (_when(d.get("start_ts")), d.get("outcome") or "", d.get("caller") or "", d.get("callee") or "", final,
            f"{dur:.1f}s" if isinstance(dur, int | float) else "", d.get("src_ip") or "", d.get("call_id") or "")


def _table(cols: tuple, rows: list[tuple]) -> str:
    def cut(text: str, col: str) -> str:
        w = _WIDTH.get(col)
        return text if not w or len(text) <= w else text[: w - 1] + "…"

    cells = [tuple(cut(str(v), c) for v, c in zip(r, cols)) for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
    return "\n".join([fmt(cols)] + [fmt(r) for r in cells])


def _cmd_trace(args) -> int:
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    from indexers.errors import QueryError
    from indexers.es import client
    from indexers.search import Searcher

    settings = get_settings()
    searcher = Searcher(client(settings, request_timeout=30), settings)
    family = "calls" if args.calls else "messages"
    try:
        page = searcher.search(family, args.number, last=args.last, start=args.start, end=args.end,
                               registrations=args.registrations, whole_calls=not args.matching_only,
                               size=args.limit, with_raw=args.json)
    except QueryError as exc:
        print(f"sipscope trace: error: {exc}", file=sys.stderr)
        return 2
    except (ApiError, TransportError) as exc:
        print(f"sipscope trace: error: Elasticsearch at {settings.elasticsearch.url}: {exc}", file=sys.stderr)
        return 3
    what = "call(s)" if args.calls else "message(s)"
    if page.calls is not None:
        what += f" of {len(page.calls)} call(s)"
    rng = f"{page.range.start:%Y-%m-%d %H:%M}Z .. {page.range.end:%Y-%m-%d %H:%M}Z"
    shown = f", showing the newest {len(page.hits)}" if len(page.hits) < page.total else ""
    print(f"sipscope trace: {page.total} {what} from {rng} matching {page.number.describe()}{shown}", file=sys.stderr)
    try:
        if args.json:
            for d in page.hits:
                sys.stdout.write(json.dumps(d, ensure_ascii=False) + "\n")
        elif page.hits:
            rows = [_call_row(d) if args.calls else _msg_row(d) for d in page.hits]
            print(_table(_CALL_COLS if args.calls else _MSG_COLS, rows))
        sys.stdout.flush()
    except BrokenPipeError:  # `sipscope trace ... | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
    return 0 if page.hits else 1


# ---------------------------------------------------------------- kibana


def _cmd_kibana(args) -> int:
    from indexers import kibana
    from indexers.errors import KibanaError

    settings = get_settings()
    try:
        if args.action == "check":
            types = kibana.template_field_types
            if args.live:
                from indexers.es import client

                types = kibana.caps_field_types(client(settings), settings.elasticsearch.index_prefix)
            objs = kibana.check(field_types=types)
            print(f"sipscope kibana: {len(objs)} objects valid"
                  + (" against the live mappings" if args.live else " against the template files"))
            return 0
        if not args.url:
            print("sipscope kibana import: error: --url is required (e.g. --url http://127.0.0.1:5601)", file=sys.stderr)
            return 2
        objs = kibana.check()
        answer = kibana.import_objects(args.url, kibana.render(objs, settings.elasticsearch.index_prefix),
                                       space=args.space, overwrite=not args.no_overwrite,
                                       username=args.username, password=args.password)
    except KibanaError as exc:
        print(f"sipscope kibana {args.action}: error: {exc}", file=sys.stderr)
        return 1
    print(f"sipscope kibana: imported {answer.get('successCount', len(objs))} objects into {args.url}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("setup", help="install the Elasticsearch index templates and lifecycle policy (idempotent)")
    p.add_argument("--families", help=_FAMILY_HELP)
    p.set_defaults(func=_cmd_setup)

    p = sub.add_parser("index", help="consume the sip.* topics and index them into daily Elasticsearch indices")
    p.add_argument("--families", help=_FAMILY_HELP)
    p.add_argument("--group-id", help="Kafka consumer group (default SIPSCOPE_INDEXER__GROUP_ID)")
    p.add_argument("--batch-size", type=int, help="records per bulk batch")
    p.add_argument("--exit-when-idle", type=float, metavar="SECONDS",
                   help="exit once nothing arrived for SECONDS and every assigned partition is committed to its end")
    p.set_defaults(func=_cmd_index)

    p = sub.add_parser("retention", help="delete daily indices older than the retention period (when there is no ILM)")
    p.add_argument("action", choices=["enforce"])
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    p.set_defaults(func=_cmd_retention)

    p = sub.add_parser("trace", help="list the SIP messages (or calls) of a phone number, newest first",
                       description="Exit status: 0 found, 1 nothing found, 2 invalid number or time range, "
                                   "3 Elasticsearch unreachable.")
    p.add_argument("number", help="number in any form: raw, +E.164, national, or its last 6+ digits; or a SIP user")
    p.add_argument("--last", choices=["30m", "1h", "3h", "6h", "1d", "5d"], help="time window ending now (default 1d)")
    p.add_argument("--from", dest="start", metavar="ISO", help="start of the window (ISO-8601, UTC if no offset)")
    p.add_argument("--to", dest="end", metavar="ISO", help="end of the window (default now)")
    p.add_argument("--registrations", action="store_true", help="include REGISTER transactions")
    p.add_argument("--calls", action="store_true", help="list call summaries instead of messages")
    p.add_argument("--matching-only", action="store_true",
                   help="only the messages carrying the number (default: every message of the matching calls)")
    p.add_argument("--json", action="store_true", help="one JSON document per line (raw message included)")
    p.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")
    p.set_defaults(func=_cmd_trace)

    p = sub.add_parser("kibana", help="check or import the Kibana saved objects of infra/kibana")
    p.add_argument("action", choices=["import", "check"])
    p.add_argument("--url", help="Kibana URL, e.g. http://127.0.0.1:5601 (import)")
    p.add_argument("--space", help="Kibana space id (default space when absent)")
    p.add_argument("--no-overwrite", action="store_true", help="keep objects that already exist")
    p.add_argument("--username", help="Kibana user (basic auth)")
    p.add_argument("--password", help="Kibana password")
    p.add_argument("--live", action="store_true", help="check: validate fields against the live _field_caps")
    p.set_defaults(func=_cmd_kibana)
