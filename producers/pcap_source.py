"""The capture-file source: SIP payloads with their network metadata out of a pcap/pcapng file.

``iter_payloads(path)`` reads the file (:mod:`producers.pcapfile`), decodes each packet
(:mod:`producers.netdecode`), reassembles IP fragments, TCP streams and SCTP user messages
(:mod:`producers.reassembly`) and yields one :class:`Payload` per SIP message candidate:

* UDP and SCTP: the datagram / user message as it is;
* TCP: one complete SIP message at a time, framed by :func:`producers.sip_parser.frame_stream`;
* SIP over WebSocket (RFC 7118) on TCP after an HTTP upgrade: one WebSocket message, ``transport='ws'``.

What is kept: traffic on the SIP ports (5060, 5061, 5080 by default) or whose payload starts like SIP
(a request line ending in ``SIP/2.0`` or a ``SIP/2.0 `` status line). Everything else is skipped
cheaply (RTP, RTCP, HTTP, DNS...). The payloads are not parsed here: on a SIP port everything but
CRLF keep-alives reaches the SIP parser, which decides what is a valid message and names what is not.
TLS (5061, or TLS records on any followed stream) cannot be read without keys: ``tls_undecryptable``.

Nothing raises out of the iteration for bad input: every packet that yields nothing is counted by a
reason in :attr:`PcapSource.counters` (:class:`Counters`), e.g. ``not_sip``, ``truncated_packet``,
``unsupported_linktype``, ``tls_undecryptable``, ``tcp_gap``, ``fragment_timeout``; a file that ends
inside a record ends the iteration with ``truncated_file``. Only a file that is not a capture at all
raises :class:`producers.pcapfile.CaptureFormatError` when the iteration starts.

Times are capture times (the packet's ``ts``), and so are the reassembly timeouts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from producers.netdecode import FRAGMENT, SCTP, TCP, UDP, DecodeError, decode, decode_transport, ip_str
from producers.pcapfile import open_capture
from producers.reassembly import FIN, RST, SYN, FragmentTable, SctpReassembler, TcpReassembler, TcpStream
from producers.sip_parser import MAX_HEADER_BLOCK, MAX_STREAM_BODY, frame_stream

__all__ = ["DEFAULT_SIP_PORTS", "Counters", "Payload", "PcapSource", "iter_payloads", "looks_like_sip"]

DEFAULT_SIP_PORTS = frozenset({5060, 5061, 5080})
TLS_PORTS = frozenset({5061})

_SWEEP_EVERY = 1.0  # seconds of capture time between two timeout sweeps


class Payload(msgspec.Struct, gc=False):
    """One SIP message candidate and where it was seen."""

    ts: float
    """Capture time, seconds since the epoch (of the packet that completed the message)."""
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str
    """``udp``, ``tcp``, ``sctp`` or ``ws`` here; ``tls``/``wss`` need keys (the tshark source)."""
    data: bytes
    """The message bytes (UDP payload, one framed TCP message, one SCTP or WebSocket message)."""
    frame: int = 0
    """1-based number of the packet (in the file) that completed the message, as tshark counts."""


class Counters(Counter):
    """Reason -> count of what the source saw, skipped or repaired (a ``collections.Counter``).

    Volumes: ``packets``, ``payloads_udp``, ``payloads_tcp``, ``payloads_sctp``, ``payloads_ws``.

    Skipped packets, one reason each: ``not_sip`` (not on a SIP port and not starting like SIP),
    ``keepalive`` (CRLF pings on UDP), ``tls_undecryptable`` (TLS, no keys), ``tcp_control`` (TCP
    without payload), ``sctp_no_data``, ``bad_fragment``, and the
    :class:`producers.netdecode.DecodeError` reasons (``truncated_packet``, ``unsupported_linktype``,
    ``not_ip``, ``bad_ip_header``, ``unsupported_transport``...).

    Repairs and losses: the :mod:`producers.reassembly` reasons (``fragment_timeout``,
    ``fragment_incomplete``, ``tcp_retransmission``, ``tcp_out_of_order``, ``tcp_gap``,
    ``tcp_buffer_overflow``...); ``tcp_garbage``: chunks of a SIP stream the framer skipped to find
    the next start line (capture started mid-message, after a gap); ``tcp_incomplete_message``: a
    partial message left when a stream ended; ``ws_gap`` / ``ws_message_too_large``: a WebSocket
    stream given up (lost bytes, a message over the buffer limit).

    File level (from :mod:`producers.pcapfile`): ``truncated_file``, ``corrupt_file``,
    ``corrupt_block``, ``unknown_interface``.
    """


class PcapSource:
    """Iterable of :class:`Payload` for one capture file, with its :attr:`counters`.

    ``ports``: transport ports whose traffic is always kept; ``sip_only=False`` keeps every UDP/SCTP
    payload and TCP stream (for debugging). The reassembly limits are passed to the tables.
    ``packets``: an iterable of ``(ts, linktype, data, orig_len)`` used instead of reading ``path``
    (live capture: :func:`producers.live.iter_pcap_stream` over dumpcap's output).
    """

    def __init__(
        self,
        path: str | Path | BinaryIO,
        *,
        ports: Iterable[int] = DEFAULT_SIP_PORTS,
        sip_only: bool = True,
        counters: Counters | None = None,
        fragment_timeout: float = 30.0,
        max_fragments: int = 4096,
        tcp_timeout: float = 300.0,
        max_tcp_streams: int = 16384,
        max_tcp_buffer: int = MAX_HEADER_BLOCK + MAX_STREAM_BODY,
        packets: Iterable[tuple[float, int, bytes, int]] | None = None,
    ) -> None:
        self.path = path
        self.packets = packets
        self.ports = frozenset(ports)
        self.sip_only = sip_only
        self.counters = counters if counters is not None else Counters()
        self.fragments = FragmentTable(self.counters, max_datagrams=max_fragments, timeout=fragment_timeout)
        self.tcp = TcpReassembler(
            self.counters,
            max_streams=max_tcp_streams,
            max_buffer=max_tcp_buffer,
            max_pending=min(max_tcp_buffer, 256 * 1024),  # data queued behind a hole
            timeout=tcp_timeout,
        )
        self.sctp = SctpReassembler(self.counters)
        self.frame = 0
        """Packets read so far (the frame number of the last one)."""
        self.next_sweep = float("-inf")
        """Capture time of the next timeout sweep of the reassembly tables."""

    def __iter__(self) -> Iterator[Payload]:
        packets = self.packets if self.packets is not None else open_capture(self.path, self.counters)
        yield from self.payloads_of(packets)
        yield from self.finish()

    def payloads_of(self, packets: Iterable[tuple[float, int, bytes, int]]) -> Iterator[Payload]:
        """The payloads of these packets (the next ones of the capture); :meth:`finish` ends the capture.

        The native pcap path (:mod:`producers.native_pcap`) hands the packets it cannot finish alone to
        this, one at a time, between the records it builds itself."""
        counters = self.counters
        ports = self.ports
        sip_only = self.sip_only
        fragments = self.fragments
        next_sweep = self.next_sweep
        frame = self.frame
        n_udp = 0
        try:
            for ts, linktype, data, _orig_len in packets:
                frame += 1
                try:
                    d = decode(linktype, data)
                    if d[0] == FRAGMENT:
                        _, src, dst, key, offset, more, chunk, inner = d
                        whole = fragments.add(ts, key, offset, more, chunk)
                        if whole is None:
                            continue
                        d = decode_transport(inner, src, dst, whole)
                except DecodeError as exc:
                    counters[exc.reason] += 1
                    continue
                if ts >= next_sweep:
                    next_sweep = ts + _SWEEP_EVERY
                    self.sweep(ts)
                proto, src, dst, sport, dport, payload, seq, flags = d
                if proto == UDP:
                    if sport in ports or dport in ports:
                        # on a SIP port everything but keep-alives goes to the parser, which names
                        # what is wrong with a malformed message (the rejected topic wants it)
                        if len(payload) <= 8 and _is_keepalive(payload):
                            counters["keepalive"] += 1
                            continue
                    elif sip_only and not looks_like_sip(payload):
                        counters["not_sip"] += 1
                        continue
                    n_udp += 1
                    yield Payload(ts, ip_str(src), sport, ip_str(dst), dport, "udp", payload, frame)
                elif proto == TCP:
                    yield from self._tcp(ts, frame, src, dst, sport, dport, payload, seq, flags)
                elif proto == SCTP:
                    yield from self._sctp(ts, frame, src, dst, sport, dport, payload)
                else:
                    counters["bad_fragment"] += 1  # a fragment inside a reassembled datagram
        finally:
            counters["packets"] += frame - self.frame
            self.frame = frame
            self.next_sweep = next_sweep
            if n_udp:
                counters["payloads_udp"] += n_udp

    def finish(self) -> Iterator[Payload]:
        """End of the capture: what the reassembly tables still hold."""
        self.fragments.flush()
        self.sctp.flush()
        for st in self.tcp.flush():
            yield from self._close(st, st.ts, self.frame)

    # -- TCP ------------------------------------------------------------------------------------

    def _tcp(
        self,
        ts: float,
        frame: int,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        payload: bytes,
        seq: int,
        flags: int,
    ) -> Iterator[Payload]:
        counters = self.counters
        tcp = self.tcp
        key = (src, sport, dst, dport)
        st = tcp.streams.get(key)
        if not payload:  # SYN, FIN, RST, pure ACK: counted, and used for the stream's state
            counters["tcp_control"] += 1
            if st is None:
                if not flags & SYN or (self.sip_only and sport not in self.ports and dport not in self.ports):
                    return
            elif st.skip_reason is not None:
                if flags & (FIN | RST):
                    tcp.drop(key)
                return
        elif st is None:
            # not a SIP port: follow the stream only if it starts like SIP or a WebSocket upgrade
            off_port = self.sip_only and sport not in self.ports and dport not in self.ports
            if off_port and not (looks_like_sip(payload) or _is_ws_upgrade_start(payload)):
                counters["not_sip"] += 1
                return
        elif st.skip_reason is not None:
            counters[st.skip_reason] += 1
            if flags & (FIN | RST):
                tcp.drop(key)
            return
        st = tcp.segment(ts, key, seq, flags, payload)
        if st is None:
            return
        if st.buf:
            yield from self._consume(st, ts, frame)
        if st.closed:
            yield from self._close(st, ts, frame)

    def _close(self, st: TcpStream, ts: float, frame: int) -> Iterator[Payload]:
        if self.tcp.finish(st) and st.skip_reason is None:
            yield from self._consume(st, ts, frame)
        if st.buf and st.skip_reason is None and st.buf.strip(b"\r\n"):
            self.counters["tcp_incomplete_message"] += 1
        st.buf.clear()
        self.tcp.release(st)

    def _consume(self, st: TcpStream, ts: float, frame: int) -> Iterator[Payload]:
        """Frame the messages now complete in ``st.buf`` (classifying the stream first if new)."""
        kind = st.kind
        if kind is None:
            kind = self._classify(st)
            if kind is None:
                return
        if kind == "sip":
            messages = self._frame_sip(st)
            transport = "tcp"
        elif kind == "ws":
            messages = self._frame_ws(st)
            transport = "ws"
        else:  # "ws-http": waiting for the end of the HTTP upgrade header
            end = st.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(st.buf) > 16384:
                    self._skip(st, "not_sip")
                return
            del st.buf[: end + 4]
            st.kind = "ws"
            st.state = []
            messages = self._frame_ws(st)
            transport = "ws"
        if messages:
            src, sport, dst, dport = st.key
            src_ip, dst_ip = ip_str(src), ip_str(dst)
            counters = self.counters
            for msg in messages:
                if transport == "ws" and not looks_like_sip(msg):
                    counters["not_sip"] += 1
                    continue
                counters["payloads_" + transport] += 1
                yield Payload(ts, src_ip, sport, dst_ip, dport, transport, msg, frame)

    def _classify(self, st: TcpStream) -> str | None:
        buf = st.buf
        _src, sport, _dst, dport = st.key
        on_port = sport in self.ports or dport in self.ports
        if _is_tls_record(buf) or ((sport in TLS_PORTS or dport in TLS_PORTS) and not looks_like_sip(buf)):
            self._skip(st, "tls_undecryptable")
            return None
        if _is_ws_upgrade_start(buf):
            st.kind = "ws-http"
            st.gap = False  # the buffer starts at the HTTP upgrade: a known boundary
            return "ws-http"
        if on_port or looks_like_sip(buf) or not self.sip_only:
            st.kind = "sip"
            return "sip"
        self._skip(st, "not_sip")
        return None

    def _skip(self, st: TcpStream, reason: str) -> None:
        """Ignore the rest of this direction of the stream; its later segments count ``reason``."""
        self.counters[reason] += 1
        st.skip_reason = reason
        st.buf.clear()

    def _frame_sip(self, st: TcpStream) -> list[bytes]:
        # the framer skips what does not start like SIP (capture started mid-stream, after a gap)
        messages, consumed, garbage = frame_stream(bytes(st.buf), max_body=self.tcp.max_buffer)
        if consumed:
            del st.buf[:consumed]
        if garbage:
            self.counters["tcp_garbage"] += len(garbage)
        return messages

    def _frame_ws(self, st: TcpStream) -> list[bytes]:
        """Complete WebSocket data messages (RFC 6455 frames, unmasked, fragments joined)."""
        buf = st.buf
        parts: list[bytes] = st.state  # type: ignore[assignment]
        out: list[bytes] = []
        limit = self.tcp.max_buffer
        if st.gap:  # bytes were lost: the frame boundaries are unknown from here on
            self._skip(st, "ws_gap")
            return out
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            hlen = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hlen = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hlen = 10
            mask = b""
            if b1 & 0x80:
                mask = bytes(buf[pos + hlen : pos + hlen + 4])
                hlen += 4
            if length > limit:
                self._skip(st, "ws_message_too_large")
                return out
            if n - pos < hlen + length:
                break
            data = bytes(buf[pos + hlen : pos + hlen + length])
            pos += hlen + length
            if mask and length:
                key = (mask * (length // 4 + 1))[:length]
                data = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
            opcode = b0 & 0x0F
            if opcode > 2:  # close, ping, pong
                continue
            parts.append(data)
            if b0 & 0x80:  # FIN: the message is complete
                out.append(b"".join(parts))
                parts.clear()
            elif sum(map(len, parts)) > limit:
                self._skip(st, "ws_message_too_large")
                return out
        if pos:
            del buf[:pos]
        return out

    # -- SCTP -----------------------------------------------------------------------------------

    def _sctp(
        self, ts: float, frame: int, src: bytes, dst: bytes, sport: int, dport: int, chunks: list
    ) -> Iterator[Payload]:
        counters = self.counters
        if not chunks:
            counters["sctp_no_data"] += 1
            return
        on_port = sport in self.ports or dport in self.ports
        for flags, sid, tsn, data in chunks:
            if flags & 3 != 3:
                data = self.sctp.chunk((src, sport, dst, dport, sid), flags, tsn, data)
                if data is None:
                    continue
            if not (on_port or not self.sip_only or looks_like_sip(data)):
                counters["not_sip"] += 1
                continue
            counters["payloads_sctp"] += 1
            yield Payload(ts, ip_str(src), sport, ip_str(dst), dport, "sctp", data, frame)

    # -- timeouts -------------------------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Expire what the reassembly tables kept longer than their timeouts (every second of capture time)."""
        self.fragments.expire(now)
        for st in self.tcp.expire(now):
            if st.buf and st.skip_reason is None and st.buf.strip(b"\r\n"):
                self.counters["tcp_incomplete_message"] += 1


def iter_payloads(
    path: str | Path | BinaryIO, counters: Counters | None = None, **options: object
) -> Iterator[Payload]:
    """Yield the SIP payloads of a capture file; see :class:`PcapSource` for ``options``.

    Pass a :class:`Counters` to read what was skipped once the iteration is done.
    """
    return iter(PcapSource(path, counters=counters, **options))  # type: ignore[arg-type]


# -- cheap content checks -------------------------------------------------------------------------

_UPPER = frozenset(range(65, 91))


def looks_like_sip(payload: bytes | bytearray) -> bool:
    """True when the payload starts with a SIP status line or a request line ending in ``SIP/2.0``."""
    if not payload or payload[0] not in _UPPER:
        return False
    if payload[:8] == b"SIP/2.0 ":
        return True
    eol = payload.find(b"\n", 0, 2048)
    if eol < 0:
        return False
    end = eol - 1 if payload[eol - 1] == 13 else eol
    return payload[end - 8 : end] == b" SIP/2.0"


def _is_keepalive(payload: bytes) -> bool:
    """RFC 5626 CRLF keep-alives (and the NUL/space pings some phones send)."""
    return not payload.strip(b"\r\n\x00 ")


def _is_tls_record(buf: bytes | bytearray) -> bool:
    """A TLS record header: content type 20..23, version 3.x, length <= 2^14 + 2048."""
    return len(buf) >= 5 and 20 <= buf[0] <= 23 and buf[1] == 3 and buf[2] <= 4 and (buf[3] << 8 | buf[4]) <= 18432


def _is_ws_upgrade_start(buf: bytes | bytearray) -> bool:
    """An HTTP upgrade to WebSocket (client request or the server's 101)."""
    if buf[:4] != b"GET " and buf[:12] != b"HTTP/1.1 101":
        return False
    head = bytes(buf[:4096]).lower()
    return b"upgrade: websocket" in head or b"upgrade:websocket" in head
