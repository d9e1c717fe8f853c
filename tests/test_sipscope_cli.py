"""The `sipscope` command loads every stage's subcommands (a broken import would break them all)."""

from __future__ import annotations

import subprocess
import sys


def test_help_lists_the_stage_commands():
    out = subprocess.run([sys.executable, "-m", "sipscope.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for cmd in ("stack", "parse", "capture", "hep", "analyze"):
        assert f"    {cmd}" in out.stdout, cmd


def test_unknown_file_is_one_clear_error():
    out = subprocess.run([sys.executable, "-m", "sipscope.cli", "parse", "/nonexistent.pcap"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith("sipscope parse: error: /nonexistent.pcap") and "Traceback" not in out.stderr
