"""Request and result types shared by the engine and every provider.

A provider takes a list of :class:`ScoreRequest` and returns one
:class:`AnswerDistribution` per request, in order; how it batches is its business.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

Role = Literal["system", "user", "assistant"]
#: How a provider reaches the model (README, "Answer probabilities").
Estimator = Literal["logprobs", "top_logprobs", "sampling", "verbalized"]
#: What an answer's probability measures, whatever the estimator (README, "Answer
#: probabilities"): ``answer_start`` the reply begins with the answer and does not go
#: on into a longer admissible answer; ``answer_eot`` the reply is the answer and then
#: ends; ``first_token`` the answer's first token alone; ``leading_integer`` like
#: ``answer_start``, but an integer answer counts only when the reply's whole leading
#: integer is that answer (the next token does not begin with a digit: "15" is no
#: answer on a 1-10 scale).
AnswerRule = Literal["answer_start", "answer_eot", "first_token", "leading_integer"]
ANSWER_RULES: tuple[AnswerRule, ...] = get_args(AnswerRule)
#: Recorded on rows whose probabilities the model wrote out itself (verbalized).
STATED = "stated"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Decoding:
    """Settings that change answers (and so belong in the cache key)."""

    estimator: Estimator | None = None  # None: the provider's best available
    # None where the estimator fixes what is measured (sampling, verbalized); the
    # engine fills it in for logprobs and top_logprobs.
    answer_rule: AnswerRule | None = None
    temperature: float | None = None  # sampling temperature, where it applies
    samples: int = 1  # draws for the sampling estimator
    top_k: int = 20  # top-logprobs width for API providers


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """Score every admissible answer to one prompt.

    ``answers`` are the exact strings the assistant may reply with, in scale order
    (e.g. ``("1", "2", ..., "10")``). ``sample_index`` distinguishes repeated draws
    of the same prompt so that each draw has its own cache entry.
    """

    messages: tuple[ChatMessage, ...]
    answers: tuple[str, ...]
    decoding: Decoding = Decoding()
    sample_index: int = 0

    def key_payload(self) -> dict[str, object]:
        decoding = asdict(self.decoding)
        if decoding["answer_rule"] is None:
            # keeps the keys of sampled and verbalized answers as they were before the
            # rule existed: answers already paid for stay found
            del decoding["answer_rule"]
        return {
            "messages": [[m.role, m.content] for m in self.messages],
            "answers": list(self.answers),
            "decoding": decoding,
            "sample_index": self.sample_index,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class AnswerDistribution:
    """Probability of each admissible answer, renormalised over the answers.

    ``coverage`` is the mass the model put on admissible answers before
    renormalising (1.0 for exact local scoring of a closed set is not implied: a
    model may prefer other replies). ``floored`` lists answers whose probability was
    not observed (absent from an API's top-k) and was set to a floor instead.
    ``flag`` is non-empty when the row is unusable (e.g. coverage 0).
    ``answer_rule`` says what the probabilities measure (an :data:`AnswerRule`, or
    ``"stated"`` for verbalized distributions).
    """

    probs: tuple[float, ...]
    coverage: float
    estimator: Estimator
    usage: Usage = field(default_factory=Usage)
    floored: tuple[str, ...] = ()
    flag: str = ""
    answer_rule: str = "answer_start"

    def to_json(self) -> dict[str, object]:
        # What dataclasses.asdict gives (field order, usage as a dict), built directly:
        # asdict's recursive deep copy was ~2% of the API client's CPU per answer.
        return {
            "probs": self.probs, "coverage": self.coverage, "estimator": self.estimator,
            "usage": asdict(self.usage), "floored": self.floored, "flag": self.flag,
            "answer_rule": self.answer_rule,
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> AnswerDistribution:
        usage = Usage(**d.get("usage", {}))  # type: ignore[arg-type]
        return cls(
            probs=tuple(d["probs"]),  # type: ignore[arg-type]
            coverage=float(d["coverage"]),  # type: ignore[arg-type]
            estimator=d["estimator"],  # type: ignore[arg-type]
            usage=usage,
            floored=tuple(d.get("floored", ())),  # type: ignore[arg-type]
            flag=str(d.get("flag", "")),
            answer_rule=str(
                d.get("answer_rule", STATED if d["estimator"] == "verbalized" else "answer_start")
            ),
        )


@dataclass(frozen=True, slots=True)
class Capabilities:
    logprobs: bool = False  # exact log-probabilities of arbitrary answer strings
    top_logprobs: int = 0  # width of first-token top-k log-probabilities (0 = none)
    sampling: bool = False
    text_generation: bool = False
    batch_api: bool = False
    # What the logprobs/top_logprobs estimators can measure; the first is the default.
    answer_rules: tuple[AnswerRule, ...] = ("answer_start",)


def cache_key(
    provider: str,
    model: str,
    revision: str | None,
    request: ScoreRequest,
    settings: Mapping[str, object] | None = None,
) -> str:
    """Content address of one answer: everything that changes it, nothing else.

    ``settings`` are model settings outside the request that change answers (e.g.
    numeric precision, provider options); they enter the key only when given, so
    keys without them stay stable.
    """
    payload = {"provider": provider, "model": model, "revision": revision, **request.key_payload()}
    if settings:
        payload["settings"] = dict(settings)
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
