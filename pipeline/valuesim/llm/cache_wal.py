"""Read a SQLite write-ahead log (``<db>-wal``) the way SQLite's recovery does, and say
what a damaged one would silently drop.

SQLite replays the log frame by frame and stops at the first frame whose cumulative
checksum or salt does not match: every transaction committed after that frame is
dropped without an error, and the next writer resets the log, so the loss becomes
permanent. A killed process leaves at most an unfinished *uncommitted* tail (no
commit frame after the break), which is harmless; a commit frame with the log's
salts after the break means committed answers would be lost. :func:`inspect_wal`
tells the two apart before SQLite opens the file, so the cache refuses to open a
damaged log for writing until the user accepts the loss (``valuesim cache prune
--wal-tail``: SQLite's own recovery and a checkpoint then keep what it can).

Format: https://www.sqlite.org/fileformat2.html#walformat
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_MAGIC_LE = 0x377F0682  # checksums over little-endian 32-bit words
_MAGIC_BE = 0x377F0683  # ... over big-endian words
_HEADER = 32
_FRAME_HEADER = 24


@dataclass(frozen=True, slots=True)
class WalReport:
    """What SQLite would replay from a log, and what it would drop."""

    path: Path
    good_end: int  # bytes of the log SQLite replays (header plus the good committed frames)
    good_commits: int  # transactions SQLite keeps
    lost_commits: int  # committed transactions after the damage, which SQLite would drop
    damaged_at: int | None  # byte offset of the first bad frame (None: no committed data lost)

    @property
    def damaged(self) -> bool:
        return self.lost_commits > 0

    def describe(self) -> str:
        return (
            f"its write-ahead log {self.path} is damaged at byte {self.damaged_at}: SQLite would "
            f"keep the {self.good_commits} transaction(s) before it and silently drop the "
            f"{self.lost_commits} committed after it"
        )


def _checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def inspect_wal(path: Path) -> WalReport | None:
    """The log's state, or None when there is no log (or an empty one) to replay."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < _HEADER:
        return None  # SQLite ignores a log shorter than its header: nothing was committed in it
    magic, _version, page_size, _seq, salt1, salt2, c0, c1 = struct.unpack(">8I", data[:_HEADER])
    frame_size = _FRAME_HEADER + page_size
    n_frames = (len(data) - _HEADER) // frame_size if page_size else 0
    big = magic == _MAGIC_BE
    header_ok = magic in (_MAGIC_LE, _MAGIC_BE) and (c0, c1) == _checksum(data[:24], 0, 0, big)
    if not header_ok or page_size < 512 or page_size & (page_size - 1):
        # SQLite ignores the whole log; it lost something only if frames were written after it
        lost = sum(
            1 for i in range(n_frames)
            if struct.unpack_from(">I", data, _HEADER + i * frame_size + 4)[0]
        ) if page_size >= 512 else (1 if len(data) > _HEADER else 0)
        return WalReport(path, 0, 0, lost, 0 if lost else None)
    s0, s1 = c0, c1
    good_end, good, lost = _HEADER, 0, 0
    broken_at: int | None = None
    for i in range(n_frames):
        off = _HEADER + i * frame_size
        _pgno, commit, f_salt1, f_salt2, f_c0, f_c1 = struct.unpack_from(">6I", data, off)
        if (f_salt1, f_salt2) != (salt1, salt2):
            if broken_at is None:
                broken_at = off  # a frame left from before the last reset: the log ends here
            continue
        if broken_at is None:
            s0, s1 = _checksum(data[off : off + 8], s0, s1, big)
            s0, s1 = _checksum(data[off + _FRAME_HEADER : off + frame_size], s0, s1, big)
            if (s0, s1) == (f_c0, f_c1):
                if commit:
                    good += 1
                    good_end = off + frame_size
                continue
            broken_at = off
        if commit:
            lost += 1  # a commit with this log's salts after the break: SQLite drops it
    return WalReport(path, good_end, good, lost, broken_at if lost else None)
