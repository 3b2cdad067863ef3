"""The registry side of descriptor generation: which generator, and what to hand it.

Built-in and third-party generators only receive a :class:`GenerationRequest`; this
module resolves ``descriptors.*`` params against the installed plugins, checks
everything before any model loads, and hands the generator a text generator that
loads its model on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from valuesim.contracts import DescriptorGeneratorFactory, GenerationRequest, TextGenerator
from valuesim.errors import ConfigError, ProviderError
from valuesim.llm.types import ChatMessage
from valuesim.personas.generators import HANDWRITTEN_FILES, handwritten_source, variants
from valuesim.plugins import descriptor_generators, providers
from valuesim.survey.bank import QuestionBank

if TYPE_CHECKING:
    import pluggy

    from valuesim.config import DescriptorParams, ModelSpec


def get_generator(name: str, pm: pluggy.PluginManager | None = None) -> DescriptorGeneratorFactory:
    found = descriptor_generators(pm)
    if name not in found:
        raise ConfigError(
            f"unknown descriptor generator {name!r}; installed: {', '.join(sorted(found))}"
        )
    return found[name]


class LazyTextGenerator:
    """A registered provider's text generation, created on the first ``generate`` call.

    Checked when built (provider installed, able to write text), so a bad
    ``descriptors.generator_model`` fails before anything runs; the model itself is
    loaded only if a generator actually asks it something.
    """

    def __init__(
        self, model_name: str, spec: ModelSpec, *, state_dir: Path,
        pm: pluggy.PluginManager | None = None,
    ) -> None:
        found = providers(pm)
        factory = found.get(spec.provider)
        if factory is None:
            known = ", ".join(sorted(found)) or "none"
            raise ProviderError(
                f"unknown provider {spec.provider!r} for descriptor model "
                f"{model_name!r} (installed: {known}); install its plugin"
            )
        if not factory.capabilities.text_generation:
            raise ProviderError(
                f"provider {factory.name!r} cannot generate text, so it cannot write descriptors; "
                "set descriptors.generator_model to a model of a text-generating provider"
            )
        self._factory = factory
        self._spec = spec
        self._state_dir = state_dir
        self._provider: TextGenerator | None = None

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        if self._provider is None:
            from valuesim.llm.fleet import create_provider  # a list of base_urls: a fleet

            provider = create_provider(self._factory, self._spec, state_dir=self._state_dir)
            if not isinstance(provider, TextGenerator):
                raise ProviderError(
                    f"provider {self._factory.name!r} claims text generation but has no generate()"
                )
            self._provider = provider
        return self._provider.generate(messages, max_tokens=max_tokens)


def request_from_params(
    params: DescriptorParams,
    models: Mapping[str, ModelSpec],
    bank: QuestionBank,
    *,
    state_dir: Path,
    pm: pluggy.PluginManager | None = None,
) -> tuple[str, GenerationRequest]:
    """Which generator serves ``descriptors.variant``, and what to ask it.

    ``generator: auto`` picks ``static`` for the hand-written variants and ``llm`` for
    the generated ones; any other name is used as given (third-party generators).
    Everything is checked here, before any model is loaded or called.
    """
    known = variants()
    if params.variant not in known:
        raise ConfigError(f"unknown descriptors.variant {params.variant!r}; choose from {', '.join(known)}")
    handwritten = params.variant in HANDWRITTEN_FILES
    name = params.generator
    if name == "auto":
        name = "static" if handwritten else "llm"
    if name == "llm" and handwritten:
        raise ConfigError(
            f"descriptors.variant {params.variant} is a file, not a generation prompt; "
            "use generator static/auto, or a variant such as modular"
        )
    spec = None
    if name != "static":
        spec = models.get(params.generator_model)
        if spec is None:
            raise ConfigError(
                f"descriptors.generator_model {params.generator_model!r} is not defined under "
                f"models ({', '.join(sorted(models)) or 'none'})"
            )
    get_generator(name, pm)  # fail on an unknown generator before anything runs
    text_generator: TextGenerator | None = None
    if spec is not None:
        try:
            text_generator = LazyTextGenerator(params.generator_model, spec, state_dir=state_dir, pm=pm)
        except ProviderError:
            if name == "llm":
                raise  # the built-in llm generator cannot work without it: say so now
            # a third-party generator may not need text generation at all
    return name, GenerationRequest(
        bank=bank, variant=params.variant,
        source=handwritten_source(params.variant, params.path) if handwritten else Path(params.path),
        model_name=params.generator_model, model=spec, max_retries=params.max_retries,
        state_dir=state_dir, text_generator=text_generator,
    )
