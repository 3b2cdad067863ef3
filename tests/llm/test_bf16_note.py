"""The one-line note for bf16 on a CPU that emulates it (no AMX / AVX512-BF16)."""

from __future__ import annotations

import pytest
import torch

from valuesim.llm import local_model
from valuesim.llm.local_model import bf16_slow_note, cpu_has_native_bf16


def test_probe_answers_for_this_cpu() -> None:
    assert cpu_has_native_bf16() in (True, False, None)


@pytest.mark.parametrize(("native", "noted"), [(False, True), (True, False), (None, False)])
def test_note_only_for_bf16_on_an_emulating_cpu(
    monkeypatch: pytest.MonkeyPatch, native: bool | None, noted: bool
) -> None:
    # the hardware probe is the edge: pretend each kind of CPU
    monkeypatch.setattr(local_model, "cpu_has_native_bf16", lambda: native)
    note = bf16_slow_note("bf16", torch.device("cpu"))
    assert (note is not None) == noted
    if note:
        assert "precision: fp32" in note
        assert "\n" not in note
    assert bf16_slow_note("fp32", torch.device("cpu")) is None
    assert bf16_slow_note("bf16", torch.device("cuda")) is None
