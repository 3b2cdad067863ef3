"""Loading the embedded model says so in one valuesim line (issue 24, item 4): transformers'
own progress bars and warnings stay quiet while it loads, and its settings come back after."""

from __future__ import annotations

import re
import subprocess
import sys

LOAD = (
    "import sys\n"
    "from transformers.utils import logging as hf\n"
    "from valuesim.llm.local_model import default_model_cache, load_model\n"
    "hf.set_verbosity_warning(); hf.enable_progress_bar()\n"
    "lm = load_model('embedded', precision='fp32', cache_root=default_model_cache())\n"
    "print(hf.get_verbosity() == hf.WARNING, hf.is_progress_bar_enabled())\n"
)
LINE = re.compile(r"loading SmolLM2-135M-Instruct \(embedded, fp32\)\.\.\. \d+\.\d s")


def test_loading_the_embedded_model_is_one_line() -> None:
    # a fresh process: what a user's `valuesim ask --model embedded` prints while loading
    proc = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert LINE.fullmatch(proc.stderr.strip()), proc.stderr  # no "Loading weights" bar
    assert proc.stdout.split() == ["True", "True"]  # transformers' own settings restored
