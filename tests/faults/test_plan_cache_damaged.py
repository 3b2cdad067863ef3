"""A damaged, foreign or unwritable kept plan (``<cache_dir>/plan.json``) is a plan to
make again: the cost check plans from scratch, with the same numbers, and never crashes
or acts on numbers it could not read; a full or read-only disk leaves no partial file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mounts import fill, read_only, read_write, tmpfs
from tests.test_plan_cache import KEPT, fake, fresh, kept, params_for  # noqa: F401 (fake: fixture)
from valuesim.plan_cache import FORMAT, inputs_digest


def good_file(params: Any) -> dict[str, Any]:
    kept(params)
    return json.loads(KEPT.read_text())


def damage(kind: str, params: Any) -> None:
    data = good_file(params)
    text = json.dumps(data)
    counts = next(iter(data["plan"]["methods"].values()))
    if kind == "garbage":
        KEPT.write_bytes(b"\x00\xff\xfe not json \x80" * 50)
    elif kind == "truncated":  # a writer killed halfway (what the atomic rename prevents)
        KEPT.write_text(text[: len(text) // 2])
    elif kind == "empty":
        KEPT.write_text("")
    elif kind == "not an object":
        KEPT.write_text("[1, 2, 3]")
    elif kind == "count as text":
        counts["requests"] = str(counts["requests"])
        KEPT.write_text(json.dumps(data))
    elif kind == "negative count":  # in what a model has to send: what the check reads
        _, rows = next(iter(data["plan"]["models"].values()))
        next(iter(rows.values()))["prompt_tokens"] = -5
        KEPT.write_text(json.dumps(data))
    elif kind == "missing field":
        del counts["unique"]
        KEPT.write_text(json.dumps(data))
    elif kind == "other format":
        data["format"] = FORMAT + 1
        KEPT.write_text(json.dumps(data))
    else:  # a folder where the file should be
        KEPT.unlink()
        KEPT.mkdir()


KINDS = ["garbage", "truncated", "empty", "not an object", "count as text", "negative count",
         "missing field", "other format", "a folder"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_kept_plan_is_made_again_with_no_crash(fake: Any, kind: str) -> None:  # noqa: F811
    params = params_for(fake)
    damage(kind, params)
    assert kept(params) == fresh(params)
    if kind == "a folder":
        assert KEPT.is_dir()  # not replaced (a rename cannot): the next check plans again
        assert kept(params) == fresh(params)
        return
    # replaced by a good one, for this key, that the next check reads
    data = json.loads(KEPT.read_text())
    assert data["key"] == inputs_digest(params, Path())
    assert kept(params) == fresh(params)
    assert not list(KEPT.parent.glob(f".{KEPT.name}.*"))  # no temporary file left


@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_a_disk_that_cannot_take_the_kept_plan_still_plans(fake: Any, disk: str) -> None:  # noqa: F811
    params = params_for(fake)
    with tmpfs(Path(".cache").resolve(), "1m", carry=False) as cache:
        if disk == "full":
            filler = fill(cache)
        else:
            read_only(cache)
        try:
            assert kept(params) == fresh(params)
            assert kept(params) == fresh(params)
            assert not KEPT.exists()
            assert [p.name for p in cache.iterdir()] == ([filler.name] if disk == "full" else [])
        finally:
            if disk == "read-only":
                read_write(cache)
