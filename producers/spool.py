"""A bounded, append-only disk queue of Kafka records, replayed in order (the agent's outage buffer).

File layout in ``spool_dir``: ``spool.bin`` holds frames ``u32 topic_len, topic, u32 key_len, key,
u32 value_len, value``; ``spool.cursor`` holds the byte offset of the first frame not yet delivered.
Appends are flushed to the OS at once, so a crashed agent finds its backlog on restart. When the file
is fully drained it is truncated. When ``max_bytes`` would be exceeded, :meth:`append` refuses the
record (returns False) so the caller counts it as dropped: the oldest data, already queued, is kept.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

_LEN = struct.Struct(">I")


class Spool:
    def __init__(self, spool_dir: str | os.PathLike[str], max_bytes: int = 1 << 30) -> None:
        self.dir = Path(spool_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "spool.bin"
        self.cursor_path = self.dir / "spool.cursor"
        self.max_bytes = max_bytes
        self._fh = open(self.path, "ab+")  # noqa: SIM115 - closed in close()
        self.cursor = self._read_cursor()
        self.count = self._count_pending()

    def _read_cursor(self) -> int:
        try:
            return int(self.cursor_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _count_pending(self) -> int:
        return sum(1 for _ in self._iter_from(self.cursor, limit=None))

    @property
    def size(self) -> int:
        return self._fh.seek(0, os.SEEK_END)

    def __len__(self) -> int:
        return self.count

    def append(self, topic: str, key: bytes | None, value: bytes) -> bool:
        t = topic.encode()
        k = key or b""
        frame = b"".join((_LEN.pack(len(t)), t, _LEN.pack(len(k)), k, _LEN.pack(len(value)), value))
        if self.size - self.cursor + len(frame) > self.max_bytes:
            return False
        self._fh.seek(0, os.SEEK_END)
        self._fh.write(frame)
        self._fh.flush()
        self.count += 1
        return True

    def peek(self, limit: int) -> list[tuple[int, str, bytes | None, bytes]]:
        """Up to ``limit`` pending records as (end_offset, topic, key, value), oldest first."""
        return list(self._iter_from(self.cursor, limit))

    def _iter_from(self, offset: int, limit: int | None):
        self._fh.flush()
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            n = 0
            while limit is None or n < limit:
                parts = []
                for _ in range(3):
                    head = fh.read(4)
                    if len(head) < 4:
                        return
                    (ln,) = _LEN.unpack(head)
                    body = fh.read(ln)
                    if len(body) < ln:
                        return  # a torn last frame (crash mid-write) is ignored
                    parts.append(body)
                n += 1
                yield fh.tell(), parts[0].decode(), (parts[1] or None), parts[2]

    def commit(self, end_offset: int, n: int) -> None:
        """Mark everything before ``end_offset`` (``n`` records) delivered."""
        self.cursor = end_offset
        self.count = max(0, self.count - n)
        if self.count == 0 and self.cursor >= self.size:
            self._fh.truncate(0)
            self.cursor = 0
        tmp = self.cursor_path.with_suffix(".tmp")
        tmp.write_text(str(self.cursor))
        os.replace(tmp, self.cursor_path)

    def close(self) -> None:
        self._fh.close()
