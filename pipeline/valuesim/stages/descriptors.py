"""`descriptors` stage: write the chosen value descriptor set (descriptors.variant).

handwritten, handwritten_nohedge, handwritten_bare -> the validated hand-written file
(offline); composable/modular/nohedge -> written by `descriptors.generator_model` with
the paper's Table 3 prompt. The output is what the personas stage reads, so
`dvc exp run -S descriptors.variant=handwritten_nohedge` compares variants.
"""

from __future__ import annotations

from pathlib import Path

from valuesim.config import Params
from valuesim.paths import GENERATED_DESCRIPTORS
from valuesim.personas import descriptors, generation
from valuesim.survey.bank import load_bank


def run(params: Params, **_: object) -> None:
    bank = load_bank(params.data.questions)
    name, request = generation.request_from_params(
        params.descriptors, params.models, bank,
        state_dir=Path(params.simulate.cache_dir) / "descriptors",
    )
    ds = generation.get_generator(name).generate(request)
    descriptors.dump(ds, GENERATED_DESCRIPTORS)
    print(f"descriptors: {params.descriptors.variant} ({name}) -> {GENERATED_DESCRIPTORS}")
