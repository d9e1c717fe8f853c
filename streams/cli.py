"""Commands of the stream processors: ``sipscope analyze``, ``sipscope worker``."""

from __future__ import annotations

import json
import sys


def _cmd_analyze(args) -> int:
    from producers.pcapfile import CaptureFormatError
    from producers.tshark_source import TsharkError
    from sipscope.settings import get_settings
    from sipscope.cli import tune_gc
    from streams.analyze import analyze_file, render_text, report_json

    tune_gc(get_settings().batch_gc_young_threshold)
    try:
        report = analyze_file(args.file, get_settings(), keylog=args.keylog)
    except (OSError, ValueError, CaptureFormatError, TsharkError) as exc:
        print(f"sipscope analyze: error: {args.file}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(report_json(report), sys.stdout, indent=None if args.compact else 2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(report))
    return 0


def _cmd_worker(args) -> int:
    from sipscope.settings import get_settings
    from streams.app import run

    settings = get_settings()
    if args.app_id:
        settings = settings.model_copy(update={"worker": settings.worker.model_copy(update={"app_id": args.app_id})})
    return run(settings, args.role)


def register(sub) -> None:
    a = sub.add_parser("analyze", help="calls, registrations, KPIs and alerts of a capture (offline, no servers)")
    a.add_argument("file", help="pcap or pcapng file")
    a.add_argument("--json", action="store_true",
                   help="one JSON object with calls, registrations, stats, alerts and a summary")
    a.add_argument("--compact", action="store_true", help="with --json: no indentation")
    a.add_argument("--keylog", help="NSS key log (SSLKEYLOGFILE format) to decrypt SIP over TLS")
    a.set_defaults(func=_cmd_analyze)

    w = sub.add_parser("worker", help="Faust worker: sip.messages -> calls, registrations; --role analytics: KPIs, alerts")
    w.add_argument("--app-id", help="Faust app id / consumer group (default: worker.app_id, SIPSCOPE_WORKER__APP_ID)")
    w.add_argument("--role", choices=("correlate", "analytics"), default="correlate",
                   help="correlate: sip.messages -> sip.calls, sip.registrations (scale out by partitions); "
                        "analytics: messages, calls, registrations -> sip.stats, sip.alerts (run exactly one)")
    w.set_defaults(func=_cmd_worker)
