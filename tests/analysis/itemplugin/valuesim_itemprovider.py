"""A provider plugin whose answers depend on which descriptor sentences a prompt holds.

``VALUESIM_ITEM_EFFECTS`` names a JSON file {sentence: shift}. The expected answer of
a request is the lowest answer plus the sum of the shifts of the sentences found in
its messages (clipped to the scale), put as mass on the two neighbouring answers, so
an item's effect on the expected answer is exactly its shift. One line per scored
request is appended to ``VALUESIM_ITEM_LOG`` (what was "paid for"). It is a real
provider under the engine, registered through the plugin hook.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from valuesim import hookimpl
from valuesim.llm.types import AnswerDistribution, Capabilities, ScoreRequest

CAPABILITIES = Capabilities(logprobs=True)


def position(request: ScoreRequest, effects: dict[str, float]) -> float:
    text = "\n".join(m.content for m in request.messages)
    x = sum(shift for sentence, shift in effects.items() if sentence in text)
    return min(max(x, 0.0), len(request.answers) - 1.0)


def distribution(request: ScoreRequest, effects: dict[str, float]) -> AnswerDistribution:
    x = position(request, effects)
    low = min(math.floor(x), len(request.answers) - 2)
    probs = [0.0] * len(request.answers)
    probs[low] = 1.0 - (x - low)
    probs[low + 1] = x - low
    return AnswerDistribution(probs=tuple(probs), coverage=1.0, estimator="logprobs")


class ItemProvider:
    name = "itemprovider"
    capabilities = CAPABILITIES
    local = True  # scored in the calling thread, like the embedded model

    def __init__(self) -> None:
        self.effects: dict[str, float] = json.loads(Path(os.environ["VALUESIM_ITEM_EFFECTS"]).read_text())
        self.log = Path(os.environ["VALUESIM_ITEM_LOG"])

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        out = [distribution(r, self.effects) for r in requests]
        with self.log.open("a") as fh:
            fh.writelines(f"{r.messages[0].content[:40]!r}\n" for r in requests)
        return out


class ItemFactory:
    name = "itemprovider"
    package = "valuesim-itemprovider"
    capabilities = CAPABILITIES

    def create(self, spec, *, state_dir: Path) -> ItemProvider:  # type: ignore[no-untyped-def]
        return ItemProvider()


@hookimpl
def register_providers(register: Callable[[ItemFactory], None]) -> None:
    register(ItemFactory())
