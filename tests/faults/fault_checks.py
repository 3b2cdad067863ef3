"""Assertions the fault tests share."""

from __future__ import annotations

import subprocess


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one `error:` line on stderr and no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]
