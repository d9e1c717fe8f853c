"""IP fragment, TCP stream and SCTP user-message reassembly, bounded in memory and in time.

All three tables are driven by capture time (the ``ts`` of the packets), never the wall clock, so a
file is processed the same way however fast it is read. They count what they drop in a
``counters`` mapping (reason -> count) given by the caller:

``fragment_timeout``
    a datagram still incomplete ``timeout`` seconds after its first fragment (or at end of input:
    ``fragment_incomplete``).
``fragment_table_full``
    the oldest incomplete datagram was dropped to make room.
``fragment_too_large``
    fragments reach past ``max_datagram`` (65535) bytes.
``tcp_retransmission`` / ``tcp_out_of_order``
    a segment entirely already seen (dropped) / a segment ahead of a hole (kept until the hole fills).
``tcp_gap``
    a hole that never filled (too much data queued behind it, FIN/RST or end of input): the bytes
    queued before the hole are dropped and the stream marked ``gap`` so the consumer resynchronises.
``tcp_buffer_overflow``
    more than ``max_buffer`` unconsumed bytes in one direction: they are dropped (``gap`` set).
``tcp_stream_evicted`` / ``tcp_stream_timeout``
    a stream dropped because the table was full / it was idle for ``timeout`` seconds.
``sctp_fragment_incomplete`` / ``sctp_retransmission``
    an SCTP user message whose fragments never all arrived / a fragment seen twice (same TSN).

Memory bounds (defaults): 4096 incomplete datagrams of at most 64 KiB; per TCP direction
``max_buffer`` unconsumed plus ``max_pending`` out-of-order bytes, for at most ``max_streams``
directions; 1024 partial SCTP messages of at most 256 KiB.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, MutableMapping

__all__ = ["FIN", "RST", "SYN", "FragmentTable", "SctpReassembler", "TcpReassembler", "TcpStream"]

FIN = 0x01
SYN = 0x02
RST = 0x04

_MASK32 = 0xFFFFFFFF
_HALF32 = 0x80000000


def _count(counters: MutableMapping[str, int], reason: str, n: int = 1) -> None:
    counters[reason] = counters.get(reason, 0) + n


# -- IP fragments -----------------------------------------------------------------------------


class _Datagram:
    __slots__ = ("first_ts", "parts", "received", "total")

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.total = -1  # known once the last fragment (MF=0) arrived
        self.received = 0
        self.parts: list[tuple[int, bytes]] = []


class FragmentTable:
    """Reassembles IPv4 and IPv6 datagrams from fragments (any order, duplicates, overlaps).

    ``add`` returns the whole transport payload once every byte from 0 to the end arrived, else None.
    At most ``max_datagrams`` incomplete datagrams are kept; each for at most ``timeout`` seconds.
    """

    def __init__(
        self,
        counters: MutableMapping[str, int],
        *,
        max_datagrams: int = 4096,
        timeout: float = 30.0,
        max_datagram: int = 65535,
    ) -> None:
        self.counters = counters
        self.max_datagrams = max_datagrams
        self.timeout = timeout
        self.max_datagram = max_datagram
        self._table: OrderedDict[tuple, _Datagram] = OrderedDict()  # the oldest evicted in O(1)

    def __len__(self) -> int:
        return len(self._table)

    def add(self, ts: float, key: tuple, offset: int, more: int, payload: bytes) -> bytes | None:
        table = self._table
        dg = table.get(key)
        if dg is None:
            if len(table) >= self.max_datagrams:
                del table[next(iter(table))]
                _count(self.counters, "fragment_table_full")
            dg = table[key] = _Datagram(ts)
        end = offset + len(payload)
        if end > self.max_datagram:
            del table[key]
            _count(self.counters, "fragment_too_large")
            return None
        if not more:
            dg.total = end
        dg.parts.append((offset, payload))
        dg.received += len(payload)
        if dg.total < 0 or dg.received < dg.total:
            return None
        parts = sorted(dg.parts, key=_first)
        pos = 0
        for off, data in parts:
            if off > pos:
                return None  # a hole remains (the byte count was inflated by overlaps)
            pos = max(pos, off + len(data))
        if pos < dg.total:
            return None
        del table[key]
        out = bytearray(dg.total)
        for off, data in parts:
            out[off : off + len(data)] = data[: dg.total - off]
        return bytes(out)

    def expire(self, now: float) -> None:
        """Drop the datagrams whose first fragment is older than ``timeout`` (``fragment_timeout``)."""
        limit = now - self.timeout
        table = self._table
        stale = [k for k, dg in table.items() if dg.first_ts < limit]
        for k in stale:
            del table[k]
        if stale:
            _count(self.counters, "fragment_timeout", len(stale))

    def flush(self) -> None:
        """End of input: count what is still incomplete (``fragment_incomplete``) and forget it."""
        if self._table:
            _count(self.counters, "fragment_incomplete", len(self._table))
            self._table.clear()


def _first(item: tuple[int, bytes]) -> int:
    return item[0]


# -- TCP streams ------------------------------------------------------------------------------


class TcpStream:
    """One direction of one TCP connection.

    ``buf`` holds the in-order bytes not yet consumed: the consumer frames messages out of it and
    deletes what it used. ``gap`` is True when bytes are missing before ``buf`` (capture started
    mid-stream, a hole was skipped, an overflow): the consumer must find the next message start.
    ``kind`` and ``skip_reason`` belong to the consumer (what the stream carries; why it is ignored).
    """

    __slots__ = (
        "buf",
        "closed",
        "gap",
        "key",
        "kind",
        "next_seq",
        "pending",
        "pending_bytes",
        "skip_reason",
        "state",
        "ts",
    )

    def __init__(self, key: tuple, next_seq: int, ts: float, gap: bool) -> None:
        self.key = key
        self.next_seq = next_seq
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.buf = bytearray()
        self.gap = gap
        self.closed = False
        self.ts = ts
        self.kind: str | None = None
        self.skip_reason: str | None = None
        self.state: object = None


class TcpReassembler:
    """Per-direction TCP reassembly keyed by ``(src, sport, dst, dport)``.

    :meth:`segment` appends in-order payload to the stream's ``buf`` and returns the stream when it
    has news (new bytes, or FIN/RST seen: ``closed``); otherwise None. After consuming a closed
    stream's bytes call :meth:`finish` (consume again if it returns True), then :meth:`release`.
    Out-of-order segments wait (at most ``max_pending`` bytes per direction), retransmissions and
    overlaps are trimmed, sequence numbers wrap.
    """

    def __init__(
        self,
        counters: MutableMapping[str, int],
        *,
        max_streams: int = 16384,
        max_buffer: int = 256 * 1024,
        max_pending: int = 256 * 1024,
        timeout: float = 300.0,
    ) -> None:
        self.counters = counters
        self.max_streams = max_streams
        self.max_buffer = max_buffer
        self.max_pending = max_pending
        self.timeout = timeout
        self.streams: OrderedDict[tuple, TcpStream] = OrderedDict()  # the oldest evicted in O(1)

    def __len__(self) -> int:
        return len(self.streams)

    def segment(self, ts: float, key: tuple, seq: int, flags: int, payload: bytes) -> TcpStream | None:
        st = self.streams.get(key)
        if st is None:
            if flags & RST or not (payload or flags & SYN):
                return None
            if len(self.streams) >= self.max_streams:
                self._drop(next(iter(self.streams.values())), "tcp_stream_evicted")
            # no SYN seen: the capture started mid-stream, the consumer must find a message start
            syn = bool(flags & SYN)
            st = TcpStream(key, (seq + 1) & _MASK32 if syn else seq, ts, not syn)
            self.streams[key] = st
        elif flags & SYN and not payload:
            if st.next_seq != (seq + 1) & _MASK32:  # a new connection reusing the 4-tuple
                st.next_seq = (seq + 1) & _MASK32
                st.pending.clear()
                st.pending_bytes = 0
            return None
        if flags & SYN:
            seq = (seq + 1) & _MASK32
        news = False
        if payload:
            news = self._data(st, seq, payload)
            if news:
                st.ts = ts
        if flags & (FIN | RST):
            st.closed = True
            return st
        return st if news else None

    def _data(self, st: TcpStream, seq: int, payload: bytes) -> bool:
        rel = (seq - st.next_seq) & _MASK32
        if rel == 0:
            self._append(st, payload)
        elif rel >= _HALF32:  # starts before what we have: retransmission or overlap
            overlap = (st.next_seq - seq) & _MASK32
            if overlap >= len(payload):
                _count(self.counters, "tcp_retransmission")
                return False
            self._append(st, payload[overlap:])
        else:
            old = st.pending.get(seq)
            if old is not None and len(old) >= len(payload):
                _count(self.counters, "tcp_retransmission")
                return False
            st.pending[seq] = payload
            st.pending_bytes += len(payload) - (len(old) if old is not None else 0)
            _count(self.counters, "tcp_out_of_order")
            if st.pending_bytes > self.max_pending:
                self._skip_holes(st)
                return True
            return False
        if st.pending:
            self._drain(st)
        return True

    def _append(self, st: TcpStream, data: bytes) -> None:
        if len(st.buf) + len(data) > self.max_buffer:
            _count(self.counters, "tcp_buffer_overflow")
            st.buf.clear()
            st.gap = True
        st.buf += data
        st.next_seq = (st.next_seq + len(data)) & _MASK32

    def _drain(self, st: TcpStream) -> None:
        """Move queued segments that now touch ``next_seq`` into the buffer."""
        pending = st.pending
        while pending:
            data = pending.pop(st.next_seq, None)
            if data is not None:
                st.pending_bytes -= len(data)
                self._append(st, data)
                continue
            behind = [s for s in pending if (s - st.next_seq) & _MASK32 >= _HALF32]
            if not behind:
                return  # the nearest queued segment is still ahead: a hole remains
            for seq in behind:
                data = pending.pop(seq)
                st.pending_bytes -= len(data)
                overlap = (st.next_seq - seq) & _MASK32
                if overlap < len(data):
                    self._append(st, data[overlap:])

    def _skip_holes(self, st: TcpStream) -> None:
        """Give up on the hole(s): jump to the queued data, dropping the bytes before each hole."""
        while st.pending:
            first = min(st.pending, key=lambda s: (s - st.next_seq) & _MASK32)
            if (first - st.next_seq) & _MASK32 < _HALF32 and first != st.next_seq:
                _count(self.counters, "tcp_gap")
                st.buf.clear()
                st.gap = True
                st.next_seq = first
            self._drain(st)

    def finish(self, st: TcpStream) -> bool:
        """Closing a stream whose buffer was consumed: give up on remaining holes so the data queued
        behind them reaches ``buf``. Returns True when ``buf`` then holds bytes to consume."""
        if st.pending:
            self._skip_holes(st)
        return bool(st.buf)

    def release(self, st: TcpStream) -> None:
        """Forget a stream (after FIN/RST, once its bytes were consumed)."""
        if self.streams.get(st.key) is st:
            del self.streams[st.key]

    def drop(self, key: tuple) -> None:
        """Forget the stream of ``key`` if any, without counting."""
        self.streams.pop(key, None)

    def _drop(self, st: TcpStream, reason: str) -> None:
        _count(self.counters, reason)
        self.release(st)

    def expire(self, now: float) -> list[TcpStream]:
        """Remove streams idle for ``timeout`` seconds (``tcp_stream_timeout``); returns them."""
        limit = now - self.timeout
        stale = [st for st in self.streams.values() if st.ts < limit]
        for st in stale:
            self._drop(st, "tcp_stream_timeout")
        return stale

    def flush(self) -> Iterator[TcpStream]:
        """End of input: hand every remaining stream over as closed (then forget them all); the
        consumer calls :meth:`finish` on each, as for a FIN."""
        for st in list(self.streams.values()):
            st.closed = True
            yield st
        self.streams.clear()


# -- SCTP user messages -----------------------------------------------------------------------


class SctpReassembler:
    """Joins fragmented SCTP user messages (DATA chunks without both B and E flags) per stream id.

    Chunks must arrive in TSN order (SCTP retransmissions of a fragment are detected by TSN).
    """

    def __init__(self, counters: MutableMapping[str, int], *, max_messages: int = 1024, max_size: int = 256 * 1024):
        self.counters = counters
        self.max_messages = max_messages
        self.max_size = max_size
        self._table: OrderedDict[tuple, tuple[int, list[bytes], int]] = OrderedDict()  # oldest evicted in O(1)

    def chunk(self, key: tuple, flags: int, tsn: int, data: bytes) -> bytes | None:
        """Feed one DATA chunk of a fragmented message; returns the whole message on its last chunk."""
        table = self._table
        if flags & 2:  # B: first fragment
            if key in table:
                _count(self.counters, "sctp_fragment_incomplete")
            elif len(table) >= self.max_messages:
                del table[next(iter(table))]
                _count(self.counters, "sctp_fragment_incomplete")
            table[key] = (tsn, [data], len(data))
        else:
            entry = table.get(key)
            if entry is None:
                _count(self.counters, "sctp_fragment_incomplete")
                return None
            last_tsn, parts, size = entry
            if tsn == last_tsn:
                _count(self.counters, "sctp_retransmission")
                return None
            if tsn != (last_tsn + 1) & _MASK32 or size + len(data) > self.max_size:
                del table[key]
                _count(self.counters, "sctp_fragment_incomplete")
                return None
            parts.append(data)
            table[key] = (tsn, parts, size + len(data))
        if flags & 1:  # E: last fragment
            _tsn, parts, _size = table.pop(key)
            return b"".join(parts)
        return None

    def flush(self) -> None:
        if self._table:
            _count(self.counters, "sctp_fragment_incomplete", len(self._table))
            self._table.clear()
