"""``sipscope capacity``: busy hour, Erlangs, peak concurrency and Erlang B circuits per trunk.

Examples::

    sipscope capacity --pcap day.pcap --trunks trunks.json --charts charts/
    sipscope capacity --from-es --last 1d --blocking 0.005
    sipscope capacity --erlang-b --traffic 8.108 --blocking 0.01        # -> 15 circuits
    sipscope capacity --erlang-b --circuits 15 --blocking 0.01          # -> 8.108 Erlangs
    sipscope capacity --erlang-b --traffic 8.108 --circuits 15          # -> blocking 0.99 %

Definitions (holding time, busy hour, Erlangs, Erlang B) are in ``streams/capacity.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from streams.capacity import (
    ALL,
    TrunkCapacity,
    circuits_for,
    erlang_b,
    plan_capacity,
    traffic_for,
)


def _t(ts: float | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime(fmt)


def render_table(rows: list[TrunkCapacity], grade: float, method: str, step: int, holding: str) -> str:
    head = ["trunk", "calls", "busy hour (UTC)", "BH calls", "Erlangs", "calls*hold Erl", "mean hold s",
            "peak conc.", "peak at (UTC)", f"circuits @{grade:g}", "blocking"]
    body = []
    for r in rows:
        bh = r.busy_hour
        when = (f"{_t(bh.start, '%H:%M')}-{_t(bh.start + 3600, '%H:%M')} ({bh.days} days)" if method == "tcbh"
                else f"{_t(bh.start)}-{_t(bh.start + 3600, '%H:%M')}")
        body.append(["all" if r.key == ALL else r.key, str(r.calls), when, str(r.bh_calls), f"{r.erlangs:.3f}",
                     f"{r.erlangs_calls:.3f}", f"{r.bh_mean_hold_s:.1f}", str(r.peak_concurrent),
                     _t(r.peak_ts, "%Y-%m-%d %H:%M:%S"), str(r.circuits), f"{r.blocking:.4f}"])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *body]]
    kind = "time-consistent busy hour" if method == "tcbh" else "busy hour"
    lines.append(f"{kind}: 60-minute windows every {step} min; holding time: {holding}; circuits by Erlang B "
                 f"at {grade:g} blocking")
    return "\n".join(lines) + "\n"


def rows_json(rows: list[TrunkCapacity]) -> list[dict[str, Any]]:
    return [{"trunk": r.key, "calls": r.calls, "busy_hour_start": _t(r.busy_hour.start, "%Y-%m-%dT%H:%M:%SZ"),
             "busy_hour_days": r.busy_hour.days, "erlangs": r.erlangs, "bh_calls": r.bh_calls,
             "bh_mean_hold_s": r.bh_mean_hold_s, "erlangs_calls": r.erlangs_calls,
             "peak_concurrent": r.peak_concurrent, "peak_ts": r.peak_ts, "circuits": r.circuits,
             "blocking": r.blocking} for r in rows]


def _erlang_b(args: Any, grade: float) -> int:
    if args.traffic is not None and args.circuits is not None:
        b = erlang_b(args.traffic, args.circuits)
        print(f"{args.circuits} circuits offered {args.traffic:g} Erlangs: blocking {b:.6g} ({b * 100:.5g} %)")
    elif args.traffic is not None:
        n, b = circuits_for(args.traffic, grade)
        print(f"{n} circuits for {args.traffic:g} Erlangs at {grade:g} blocking "
              f"(blocking achieved {b:.6g} = {b * 100:.5g} %)")
    elif args.circuits is not None:
        a = traffic_for(args.circuits, grade)
        print(f"{args.circuits} circuits carry {a:.3f} Erlangs at {grade:g} blocking")
    else:
        print("sipscope capacity: error: --erlang-b needs --traffic and/or --circuits", file=sys.stderr)
        return 2
    return 0


def _cmd_capacity(args: Any) -> int:
    from sipscope.settings import get_settings

    settings = get_settings()
    cfg = settings.capacity
    grade = args.blocking if args.blocking is not None else cfg.blocking
    if not 0 < grade < 1:
        print("sipscope capacity: error: --blocking must be between 0 and 1 (0.01 = 1 %)", file=sys.stderr)
        return 2
    if args.erlang_b:
        return _erlang_b(args, grade)
    step = args.step or cfg.step_min
    method = args.busy_hour or cfg.busy_hour
    holding = args.holding or cfg.holding
    try:
        calls = _load_calls(args, settings)
        rows = plan_capacity(calls, grade=grade, step=step, holding_mode=holding, by=args.by, method=method)
    except (OSError, ValueError) as exc:
        print(f"sipscope capacity: error: {exc}", file=sys.stderr)
        return 1
    if not rows:
        print("sipscope capacity: no calls with a holding time in the data", file=sys.stderr)
        return 1
    if args.json:
        json.dump(rows_json(rows), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(rows, grade, method, step, holding))
    if args.charts:
        from streams.capacity_charts import write_charts

        files = write_charts(rows, args.charts, step=step, grade=grade)
        print(f"sipscope capacity: {len(files)} charts written to {args.charts}", file=sys.stderr)
    return 0


def _load_calls(args: Any, settings) -> list:
    from streams.capacity_sources import (
        calls_from_es,
        calls_from_pcap,
        load_trunk_map,
        renamed,
    )

    mapping = load_trunk_map(args.trunks, args.trunk)
    if args.pcap:
        from producers.pcapfile import CaptureFormatError
        from producers.tshark_source import TsharkError

        try:
            calls = calls_from_pcap(args.pcap, settings, args.keylog)
        except (CaptureFormatError, TsharkError) as exc:
            raise ValueError(f"{args.pcap}: {exc}") from None
        return list(renamed(calls, mapping))
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    from indexers.errors import InvalidTimeRange
    from indexers.es import client

    es = client(settings, args.es_url)
    try:
        return list(renamed(calls_from_es(es, settings, last=args.last, start=args.start, end=args.end), mapping))
    except InvalidTimeRange as exc:
        raise ValueError(str(exc)) from None
    except (ApiError, TransportError) as exc:
        raise ValueError(f"Elasticsearch at {args.es_url or settings.elasticsearch.url}: {exc}") from None
    finally:
        es.close()


def register(sub) -> None:
    c = sub.add_parser("capacity", help="busy hour, Erlangs, peak concurrent calls and Erlang B circuits per trunk",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--pcap", metavar="FILE", help="a capture (calls correlated offline, as sipscope analyze)")
    src.add_argument("--from-es", action="store_true", help="the indexed calls (sip-calls-*) of --last / --from/--to")
    src.add_argument("--erlang-b", action="store_true", help="Erlang B only: circuits for --traffic, traffic for "
                                                             "--circuits, or blocking for both")
    c.add_argument("--traffic", type=float, metavar="A", help="with --erlang-b: offered traffic in Erlangs")
    c.add_argument("--circuits", type=int, metavar="N", help="with --erlang-b: number of circuits")
    c.add_argument("--blocking", type=float, metavar="B",
                   help="grade of service, e.g. 0.01 for 1 %% (default capacity.blocking = 0.01)")
    c.add_argument("--last", help="with --from-es: 30m, 1h, 3h, 6h, 1d, 5d (default 1d)")
    c.add_argument("--from", dest="start", help="with --from-es: start, ISO-8601 (UTC when no offset)")
    c.add_argument("--to", dest="end", help="with --from-es: end, ISO-8601")
    c.add_argument("--es-url", help="Elasticsearch URL (default elasticsearch.url)")
    c.add_argument("--keylog", help="with --pcap: NSS key log to decrypt SIP over TLS")
    c.add_argument("--trunks", metavar="FILE|JSON", help="CIDR -> trunk name map (as correlation.trunks, e.g. the "
                                                         "file of loadgen --trunks-out); replaces stored names")
    c.add_argument("--trunk", action="append", metavar="CIDR=NAME", help="one trunk of the map (repeat)")
    c.add_argument("--by", choices=["trunk", "src", "dst"], default="trunk",
                   help="rows per trunk (source and destination trunk of each call), source or destination IP")
    c.add_argument("--step", type=int, choices=[1, 5, 15, 30, 60],
                   help="busy-hour windows start every STEP minutes (default 15: E.500 quarter hours)")
    c.add_argument("--busy-hour", choices=["peak", "tcbh"], help="peak (default) or time-consistent over days")
    c.add_argument("--holding", choices=["seizure", "answered"], help="seizure: INVITE to end (default); "
                                                                      "answered: 200 to BYE")
    c.add_argument("--charts", metavar="DIR", help="write PNG charts (busy-hour curve, concurrent calls) here")
    c.add_argument("--json", action="store_true", help="JSON rows instead of the table")
    c.set_defaults(func=_cmd_capacity)


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.capacity_cli ARGS`` = ``sipscope capacity ARGS``."""
    parser = argparse.ArgumentParser(prog="python -m streams.capacity_cli")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["capacity", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
