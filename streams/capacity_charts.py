"""PNG charts of ``sipscope capacity --charts DIR`` (matplotlib, Agg backend: no display needed).

Per row (all calls and each trunk):

* ``busy-hour-<key>.png`` - the busy-hour curve: traffic (Erlangs) per ``step``-minute interval over the
  data's span, the busy hour shaded, its traffic and the circuits needed written in the title;
* ``concurrent-<key>.png`` - most calls in progress per minute, with the peak and the Erlang B circuit
  count as horizontal lines.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from streams.capacity import ALL, TrunkCapacity


def _safe(key: str) -> str:
    return "all" if key == ALL else re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_") or "key"


def _times(t0: float, n: int, step_s: float) -> list[datetime]:
    return [datetime.fromtimestamp(t0 + i * step_s, UTC) for i in range(n)]


def write_charts(rows: list[TrunkCapacity], outdir: str | Path, *, step: int = 15, grade: float = 0.01) -> list[Path]:
    """Write both charts for every row; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for row in rows:
        label = "all calls" if row.key == ALL else row.key
        n = len(row.occupancy) // step
        erl = [sum(row.occupancy[i * step:(i + 1) * step]) / (step * 60.0) for i in range(n)]
        xs = _times(row.t0, n, step * 60.0)
        bh0 = datetime.fromtimestamp(row.busy_hour.start, UTC)
        bh1 = datetime.fromtimestamp(row.busy_hour.start + 3600, UTC)

        fig, ax = plt.subplots(figsize=(11, 4), dpi=100)
        ax.bar(xs, erl, width=step / 1440.0, align="edge", color="#4c72b0", label=f"traffic per {step} min")
        ax.axvspan(bh0, bh1, color="#dd8452", alpha=0.3, label=f"busy hour {bh0:%H:%M}-{bh1:%H:%M} UTC")
        ax.axhline(row.erlangs, color="#c44e52", linestyle="--", linewidth=1, label=f"busy hour {row.erlangs:.2f} Erl")
        ax.set_title(f"{label}: busy hour {bh0:%Y-%m-%d %H:%M} UTC, {row.erlangs:.2f} Erl -> "
                     f"{row.circuits} circuits at {grade:g} blocking")
        ax.set_ylabel("Erlangs")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
        written.append(_save(fig, out / f"busy-hour-{_safe(row.key)}.png", plt))

        fig, ax = plt.subplots(figsize=(11, 4), dpi=100)
        xs = _times(row.t0, len(row.concurrent), 60.0)
        ax.step(xs, row.concurrent, where="post", color="#55a868", linewidth=1, label="most calls in progress per minute")
        ax.axhline(row.peak_concurrent, color="#c44e52", linestyle="--", linewidth=1, label=f"peak {row.peak_concurrent}")
        ax.axhline(row.circuits, color="#8172b3", linestyle=":", linewidth=1, label=f"Erlang B: {row.circuits} circuits")
        ax.set_title(f"{label}: concurrent calls (peak {row.peak_concurrent})")
        ax.set_ylabel("calls")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
        written.append(_save(fig, out / f"concurrent-{_safe(row.key)}.png", plt))
    return written


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
