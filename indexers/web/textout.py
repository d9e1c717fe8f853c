"""A call as plain text: the legs' summaries, then every message with time, addresses and its raw text."""

from __future__ import annotations

from typing import Any

from indexers.web.ladder import host, label_of

SUMMARY_FIELDS = (
    ("outcome", "Outcome"), ("final_status", "Final status"), ("final_reason", "Reason"),
    ("caller", "Caller"), ("callee", "Callee"), ("start_ts", "Start"), ("end_ts", "End"),
    ("pdd_ms", "Post-dial delay (ms)"), ("ring_time_s", "Ring time (s)"), ("duration_s", "Duration (s)"),
    ("hangup_by", "Hung up by"), ("q850_cause", "Q.850 cause"), ("codecs", "Codecs offered"),
    ("answer_codecs", "Codecs answered"), ("src_ip", "From IP"), ("dst_ip", "To IP"),
    ("caller_agent", "Caller agent"), ("callee_agent", "Callee agent"), ("correlation_id", "Correlation id"),
)


def _value(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)


def call_text(call_id: str, summaries: list[dict[str, Any]], messages: list[dict[str, Any]]) -> str:
    out = [f"sipscope call export: {call_id}", f"{len(messages)} message(s), {len({m['call_id'] for m in messages})} leg(s)", ""]
    for s in summaries:
        out.append(f"== leg {s['call_id']}")
        for f, name in SUMMARY_FIELDS:
            if s.get(f) not in (None, "", []):
                out.append(f"   {name + ':':<22} {_value(s[f])}")
        out.append("")
    for i, m in enumerate(messages, 1):
        what = label_of(m.get("method"), m.get("status_code"), m.get("reason"), None if m.get("method") else m.get("cseq_method"))
        out.append(f"---- #{i} {m.get('ts')}  {host(m['src_ip'], m['src_port'])} -> {host(m['dst_ip'], m['dst_port'])}"
                   f"  {str(m.get('transport', '')).upper()}  {what}  (Call-ID {m['call_id']})")
        out.append((m.get("raw") or "").replace("\r\n", "\n").rstrip("\n"))
        out.append("")
    return "\n".join(out) + "\n"
