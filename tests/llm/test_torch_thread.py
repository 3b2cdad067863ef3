"""The local model is loaded, scored and asked to generate on one thread
(valuesim.llm.torch_thread), in a fresh process: loading and scoring on two threads
gave libgomp two teams and throttled its spin-wait (15-19% slower scoring, 2 cores)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, threading
import torch
from valuesim.config import ModelSpec
from valuesim.llm.torch_thread import on_torch_thread
from valuesim.llm.types import ChatMessage, Decoding, ScoreRequest
from valuesim.plugins import providers

seen = {}
class Sink:
    def arrived(self, request, answer):
        seen.setdefault("arrived", set()).add(threading.current_thread().name)

spec = ModelSpec(provider="transformers", model="embedded", options={"threads": 1})
provider = providers()["transformers"].create(spec)
provider.answer_sink = Sink()
request = ScoreRequest(
    messages=(ChatMessage("system", "You live in Japan."),
              ChatMessage("user", "How important is family? Answer 1-4.")),
    answers=("1", "2", "3", "4"), decoding=Decoding(estimator="logprobs", answer_rule="answer_start"),
)
import valuesim.llm.exact_scoring as es
original = es.score_requests
def spy(*a, **k):
    seen["score"] = threading.current_thread().name
    return original(*a, **k)
es.score_requests = spy
dist = provider.score([request])[0]
print(json.dumps({
    "score": seen["score"], "arrived": sorted(seen["arrived"]),
    "threads_there": on_torch_thread(torch.get_num_threads),
    "n": len(dist.probs),
}))
"""


def test_loading_and_scoring_share_the_torch_thread() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["score"].startswith("valuesim-torch")
    assert all(name.startswith("valuesim-torch") for name in got["arrived"])
    # options.threads is set by load_model on the thread that scores (before, it was set
    # on the loading thread while the engine's worker scored with the default)
    assert got["threads_there"] == 1
    assert got["n"] == 4


def test_a_call_from_the_torch_thread_runs_inline() -> None:
    from valuesim.llm.torch_thread import is_torch_thread, on_torch_thread

    assert not is_torch_thread()
    assert on_torch_thread(lambda: on_torch_thread(is_torch_thread)) is True
