"""Is this observation a new message, a retransmission, or the same packet seen again?

Per Call-ID the engines keep ``seen``: payload hash -> ``[ts, node, node...]`` of the last *transmission*
of that payload and the capture nodes that reported it.

* **duplicate**: the same bytes reported again for the same transmission: by another node within
  ``dedup_window_s`` (two capture points, heplify-server's ~500 ms), or by the same node within
  ``dedup_same_node_window_s`` (a capture that sees one packet twice, e.g. on two interfaces).
* **retransmission**: the same bytes sent again later (RFC 3261 timers A/E/G retransmit the identical
  request/response after T1 = 500 ms, doubling). Identical bytes imply the same Call-ID, CSeq,
  method/status, Via branch and direction, so this is Wireshark's rule (Call-ID + CSeq + method/status +
  direction) made strict: a *different* message with the same CSeq and method (serial forking to another
  branch, a proxy's second 100 Trying) is not counted as a retransmission.
  The same node seeing the same bytes after the short window is a retransmission, never a duplicate:
  a timer A retransmission arrives ~499.98 ms after the original, inside a plain 500 ms window.
* **new**: first time these bytes are seen.

The hash is CRC-32 of the UTF-8 payload combined with its length: stable across processes (the state is
persisted), cheap, and only compared within one Call-ID.
"""

from __future__ import annotations

from zlib import crc32

NEW = 0
RETRANSMISSION = 1
DUPLICATE = 2


def payload_hash(raw: str) -> int:
    data = raw.encode("utf-8", "surrogatepass")
    return (len(data) << 32) | crc32(data)


def classify(seen: dict[int, list], h: int, ts: float, node: str, window: float, same_node_window: float) -> int:
    """Classify one observation and record it in ``seen`` (see the module docstring)."""
    prev = seen.get(h)
    if prev is None:
        seen[h] = [ts, node]
        return NEW
    dt = ts - prev[0]
    if dt < 0:
        dt = -dt
    if dt < same_node_window:
        if node not in prev:
            prev.append(node)
        return DUPLICATE
    if dt < window and node not in prev:
        prev.append(node)
        return DUPLICATE
    seen[h] = [ts, node]
    return RETRANSMISSION


def prune(seen: dict[int, list], older_than: float) -> None:
    """Forget transmissions older than ``older_than`` (retransmissions stop after 32 s, Timer B/F/H)."""
    for h in [h for h, v in seen.items() if v[0] < older_than]:
        del seen[h]
