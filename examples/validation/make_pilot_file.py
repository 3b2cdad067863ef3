"""Cut a pilot file for `valuesim ask --pilot` from the real WVS-7 files (issue 20).

A pilot file is what a researcher would have after asking a few respondents a new
question: their country, id, weight, the items their persona needs and their answers.
Here the "new" questions are WVS-7 items the study does not ask
(``examples/validation/pilot_items.yaml``), so real respondents' answers exist: the file
is ``n`` respondents per country drawn uniformly (seeded) from the real files, with the
files' own column names and raw codes (negative codes = missing, as in WVS files):
``B_COUNTRY_ALPHA``, ``D_INTERVIEW``, ``W_WEIGHT``, the value persona items (Y002 and
Y003 as their source items Q154/Q155 and Q8/Q14/Q15/Q17, which the pilot reader
combines as the WVS does) and one column per question.

The rows are real WVS respondents, so the file must never enter the repository: the
script refuses an output path inside it.

    .venv/bin/python examples/validation/make_pilot_file.py --countries JPN,DEU --n 50 \\
        --out /tmp/pilot_jpn_deu.csv
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np
import polars as pl

from valuesim.survey.bank import load_bank
from valuesim.survey.derived import DERIVED
from valuesim.survey.new_questions import load_question_file

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wvs", default=str(REPO.parent / "shared/data/wvs7/v5"))
    ap.add_argument("--countries", default="JPN,DEU")
    ap.add_argument("--n", type=int, default=50, help="respondents per country")
    ap.add_argument("--questions", default=str(REPO / "examples/validation/pilot_items.yaml"))
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--out", default="/tmp/pilot_jpn_deu.csv")
    args = ap.parse_args(argv)

    out = Path(args.out).resolve()
    if out.is_relative_to(REPO):
        sys.exit(f"{out} is inside the repository; real WVS rows are never committed: write "
                 "the pilot file elsewhere, e.g. /tmp/pilot_jpn_deu.csv")
    bank = load_bank(REPO / "data/questions/wvs7.yaml")
    questions = [i.id for i in load_question_file(args.questions, bank)]
    persona: list[str] = []
    for item in bank.persona_items:  # derived indexes as their source items
        persona += list(DERIVED[item.id][0]) if item.id in DERIVED else [item.id]
    columns = ["B_COUNTRY_ALPHA", "D_INTERVIEW", "W_WEIGHT", *persona, *questions]
    parts = []
    for country in (c.strip() for c in args.countries.split(",") if c.strip()):
        frame = pl.read_csv(Path(args.wvs) / f"{country}.csv.gz", columns=columns,
                            infer_schema_length=0).sort("D_INTERVIEW")
        rng = np.random.default_rng([args.seed, zlib.crc32(country.encode())])
        idx = np.sort(rng.choice(frame.height, size=min(args.n, frame.height), replace=False))
        parts.append(frame[idx.tolist()].select(columns))
    pilot = pl.concat(parts, how="vertical")
    out.parent.mkdir(parents=True, exist_ok=True)
    pilot.write_csv(out)
    counts = ", ".join(f"{c} {k}" for c, k in pilot.group_by("B_COUNTRY_ALPHA", maintain_order=True)
                       .len().iter_rows())
    print(f"wrote {out}: {pilot.height} real WVS-7 respondents ({counts}); "
          f"questions {', '.join(questions)}")


if __name__ == "__main__":
    main()
