"""valuesim: simulate survey populations with calibrated value personas.

The public API is what ``__all__`` lists; a plugin author imports from here only::

    from valuesim import APIProvider, Capabilities, ProviderOptions, hookimpl

Names load on first access (PEP 562), so ``import valuesim`` stays cheap and
imports no provider SDK, no torch, nothing of the pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # plugin contracts and the hook marker
    "hookimpl": "valuesim.hookspecs",
    "Provider": "valuesim.contracts",
    "ProviderFactory": "valuesim.contracts",
    "TextGenerator": "valuesim.contracts",
    "TransientProviderError": "valuesim.contracts",
    "DescriptorGeneratorFactory": "valuesim.contracts",
    "GenerationRequest": "valuesim.contracts",
    # request and result types
    "AnswerDistribution": "valuesim.llm.types",
    "Capabilities": "valuesim.llm.types",
    "ChatMessage": "valuesim.llm.types",
    "Decoding": "valuesim.llm.types",
    "ScoreRequest": "valuesim.llm.types",
    "Usage": "valuesim.llm.types",
    "ModelSpec": "valuesim.config",
    "DescriptorSet": "valuesim.personas.descriptors",
    "QuestionBank": "valuesim.survey.bank",
    # errors a plugin raises
    "ValuesimError": "valuesim.errors",
    "ConfigError": "valuesim.errors",
    "DataError": "valuesim.errors",
    "ProviderError": "valuesim.errors",
    # building an API provider: base class, typed options, batch runner
    "APIProvider": "valuesim.llm.api_provider",
    "ProviderOptions": "valuesim.llm.provider_options",
    "BatchOptions": "valuesim.llm.provider_options",
    "transport": "valuesim.llm.provider_options",
    "BatchRunner": "valuesim.llm.batch_runner",
    "BatchPoll": "valuesim.llm.batch_runner",
    "BatchEntry": "valuesim.llm.batch_runner",
    "Estimator": "valuesim.llm.types",
    "RetryMemo": "valuesim.llm.api_support",
    "redact": "valuesim.llm.api_support",
    "retry_after_seconds": "valuesim.llm.api_support",
    "http_status_error": "valuesim.llm.api_support",
    # turning an API's replies into answer distributions
    "from_top_logprobs": "valuesim.llm.answer_estimates",
    "from_samples": "valuesim.llm.answer_estimates",
    "from_verbalized": "valuesim.llm.answer_estimates",
    "merge_logprobs": "valuesim.llm.answer_estimates",
    "verbalized_instruction": "valuesim.llm.answer_estimates",
    "check_answer_rule": "valuesim.llm.answer_estimates",
    # notebooks: a study's results as frames, and asking new questions
    "load_study": "valuesim.study",
    "Study": "valuesim.study",
    "ask": "valuesim.asking",
    "run_ask": "valuesim.asking",
    "AskResult": "valuesim.asking",
    # pilot mode (PPI++) and the prediction intervals the study fits
    "run_pilot": "valuesim.pilot_asking",
    "PilotResult": "valuesim.pilot_asking",
    "ppi_mean": "valuesim.analysis.ppi",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'valuesim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from valuesim.asking import AskResult, ask, run_ask  # noqa: F401
    from valuesim.config import ModelSpec  # noqa: F401
    from valuesim.contracts import (  # noqa: F401
        DescriptorGeneratorFactory,
        GenerationRequest,
        Provider,
        ProviderFactory,
        TextGenerator,
        TransientProviderError,
    )
    from valuesim.errors import ConfigError, DataError, ProviderError, ValuesimError  # noqa: F401
    from valuesim.hookspecs import hookimpl  # noqa: F401
    from valuesim.llm.answer_estimates import (  # noqa: F401
        check_answer_rule,
        from_samples,
        from_top_logprobs,
        from_verbalized,
        merge_logprobs,
        verbalized_instruction,
    )
    from valuesim.llm.api_provider import APIProvider  # noqa: F401
    from valuesim.llm.api_support import (  # noqa: F401
        RetryMemo,
        http_status_error,
        redact,
        retry_after_seconds,
    )
    from valuesim.llm.batch_runner import BatchEntry, BatchPoll, BatchRunner  # noqa: F401
    from valuesim.llm.provider_options import BatchOptions, ProviderOptions, transport  # noqa: F401
    from valuesim.llm.types import (  # noqa: F401
        AnswerDistribution,
        Capabilities,
        ChatMessage,
        Decoding,
        Estimator,
        ScoreRequest,
        Usage,
    )
    from valuesim.personas.descriptors import DescriptorSet  # noqa: F401
    from valuesim.study import Study, load_study  # noqa: F401
    from valuesim.survey.bank import QuestionBank  # noqa: F401
