"""The descriptor generators, through the plugin hooks.

The llm generator talks to a provider registered with ``register_providers``; the
provider here is a stand-in for a model's network edge: its ``generate`` returns
canned replies and records what it was sent.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path

import pluggy
import pytest
import yaml

from tests.fixtures.personas import value_set_dict
from valuesim import hookimpl, hookspecs
from valuesim.config import DescriptorParams, ModelSpec
from valuesim.contracts import GenerationRequest, TransientProviderError
from valuesim.errors import ConfigError, DataError, ProviderError
from valuesim.llm.types import Capabilities, ChatMessage
from valuesim.personas import generators
from valuesim.personas.generation import get_generator, request_from_params
from valuesim.survey.bank import QuestionBank

VALID = yaml.safe_dump(value_set_dict()["items"])
INVALID = yaml.safe_dump({"P1": {1: "You trust most people."}})  # misses answers and items


class CannedModel:
    name = "canned"
    model = "canned-1"
    revision = None

    def __init__(self, replies: list[object], capabilities: Capabilities) -> None:
        self.replies = replies
        self.capabilities = capabilities
        self.calls: list[tuple[ChatMessage, ...]] = []

    def score(self, requests):  # not used by descriptor generation
        raise NotImplementedError

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        self.calls.append(tuple(messages))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return str(reply)


class CannedFactory:
    name = "canned"
    package = "tests"

    def __init__(self, replies: list[object], text: bool = True) -> None:
        self.capabilities = Capabilities(text_generation=text)
        self.provider = CannedModel(replies, self.capabilities)
        self.created = 0

    def create(self, spec: ModelSpec, *, state_dir: Path) -> CannedModel:
        self.created += 1
        return self.provider


class CannedPlugin:
    def __init__(self, factory: CannedFactory) -> None:
        self.factory = factory

    @hookimpl
    def register_providers(self, register) -> None:
        register(self.factory)


def plugin_manager(factory: CannedFactory) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("valuesim")
    pm.add_hookspecs(hookspecs)
    pm.register(generators, name="valuesim.personas.generators")
    pm.register(CannedPlugin(factory), name="canned")
    pm.check_pending()
    return pm


MODELS = {"gen": ModelSpec(provider="canned", model="canned-1")}


def llm_request(bank: QuestionBank, factory: CannedFactory, tmp_path: Path, **params) -> tuple[str, GenerationRequest]:
    dp = DescriptorParams(variant="modular", generator_model="gen", **params)
    return request_from_params(dp, MODELS, bank, state_dir=tmp_path, pm=plugin_manager(factory))


def test_both_builtin_generators_register_through_the_hook() -> None:
    from valuesim.plugins import descriptor_generators

    found = descriptor_generators(plugin_manager(CannedFactory([])))
    assert {"static", "llm"} <= set(found)


def test_llm_generator_retries_invalid_output_then_succeeds(tiny_bank: QuestionBank, tmp_path: Path) -> None:
    factory = CannedFactory([INVALID, "```yaml\n" + VALID + "```"])
    name, req = llm_request(tiny_bank, factory, tmp_path)
    ds = get_generator(name).generate(req)
    assert name == "llm"
    assert ds.items == value_set_dict()["items"]
    assert ds.meta["variant"] == "modular"
    assert ds.meta["model"] == "gen"
    first, second = factory.provider.calls
    # the first prompt carries Table 3's modular instruction verbatim and every item
    assert generators.load_generation_prompts().variants["modular"] in first[1].content
    assert "P3: Which child qualities?\n  -2 = level -2" in first[1].content
    # the retry sends back the model's reply and what was wrong with it
    assert second[2] == ChatMessage("assistant", INVALID)
    assert second[3].role == "user"
    assert "item P1 has no descriptor for answer 2 (Need to be very careful)" in second[3].content
    assert "item P2 (Abortion) is missing" in second[3].content


def test_llm_generator_fails_clearly_after_the_retries(tiny_bank: QuestionBank, tmp_path: Path) -> None:
    factory = CannedFactory([INVALID, "not: [yaml", "just prose"])
    _, req = llm_request(tiny_bank, factory, tmp_path, max_retries=2)
    with pytest.raises(ProviderError, match=r"no valid modular descriptor set in 3 attempts .*not a YAML mapping"):
        generators.LLMGenerator().generate(req)
    assert len(factory.provider.calls) == 3
    assert "not valid YAML" in factory.provider.calls[2][-1].content


def test_llm_generator_rides_out_transient_errors(tiny_bank: QuestionBank, tmp_path: Path) -> None:
    factory = CannedFactory([TransientProviderError("429", retry_after=0), VALID])
    _, req = llm_request(tiny_bank, factory, tmp_path, max_retries=0)
    assert generators.LLMGenerator().generate(req).items == value_set_dict()["items"]
    always = CannedFactory([TransientProviderError("503", retry_after=0)] * generators.TRANSIENT_ATTEMPTS)
    _, req = llm_request(tiny_bank, always, tmp_path, max_retries=0)
    with pytest.raises(ProviderError, match="kept failing"):
        generators.LLMGenerator().generate(req)


def test_provider_without_text_generation_is_refused_before_any_call(tiny_bank: QuestionBank, tmp_path: Path) -> None:
    factory = CannedFactory([VALID], text=False)
    # refused while the request is built, before the generator or the model is touched
    with pytest.raises(ProviderError, match="cannot generate text"):
        llm_request(tiny_bank, factory, tmp_path)
    assert factory.created == 0


def test_unknown_provider_is_named(tiny_bank: QuestionBank, tmp_path: Path) -> None:
    factory = CannedFactory([VALID])
    dp = DescriptorParams(variant="nohedge", generator_model="x")
    models = {"x": ModelSpec(provider="nowhere", model="m")}
    with pytest.raises(ProviderError, match=r"unknown provider 'nowhere'.*installed: canned"):
        request_from_params(dp, models, tiny_bank, state_dir=tmp_path, pm=plugin_manager(factory))


@pytest.mark.parametrize(
    ("params", "models", "message"),
    [
        ({"variant": "modular", "generator_model": "missing"}, MODELS, "generator_model 'missing' is not defined"),
        ({"variant": "handwritten", "generator": "llm"}, MODELS, "handwritten is a file"),
        ({"variant": "handwritten_nohedge", "generator": "llm"}, MODELS, "handwritten_nohedge is a file"),
        ({"variant": "modular", "generator": "oracle", "generator_model": "gen"}, MODELS, "unknown descriptor generator 'oracle'"),
    ],
)
def test_bad_requests_fail_before_any_model_call(tiny_bank, tmp_path, params, models, message) -> None:
    factory = CannedFactory([VALID])
    with pytest.raises(ConfigError, match=message):
        request_from_params(DescriptorParams(**params), models, tiny_bank, state_dir=tmp_path, pm=plugin_manager(factory))
    assert factory.created == 0
    assert factory.provider.calls == []


def test_unknown_variant_is_rejected(tiny_bank: QuestionBank, tmp_path: Path) -> None:
    factory = CannedFactory([VALID])
    dp = DescriptorParams.model_construct(**{**DescriptorParams().model_dump(), "variant": "poetic"})
    with pytest.raises(ConfigError, match=r"unknown descriptors\.variant 'poetic'"):
        request_from_params(dp, MODELS, tiny_bank, state_dir=tmp_path, pm=plugin_manager(factory))
    req = GenerationRequest(bank=tiny_bank, variant="poetic", model_name="gen", model=MODELS["gen"])
    with pytest.raises(ConfigError, match="has no generation prompt"):
        generators.LLMGenerator().generate(req)
    assert factory.provider.calls == []


def test_static_generator_serves_handwritten(shipped_bank: QuestionBank, root: Path, tmp_path: Path) -> None:
    dp = DescriptorParams(path=str(root / "data/descriptors/value_handwritten.yaml"))
    name, req = request_from_params(dp, MODELS, shipped_bank, state_dir=tmp_path, pm=plugin_manager(CannedFactory([])))
    assert name == "static"
    ds = get_generator(name).generate(req)
    assert set(ds.items) == {i.id for i in shipped_bank.persona_items}
    broken = tmp_path / "broken.yaml"
    data = yaml.safe_load((root / "data/descriptors/value_handwritten.yaml").read_text())
    del data["items"]["Q46"][3]
    broken.write_text(yaml.safe_dump(data))
    with pytest.raises(DataError, match=r"item Q46 has no descriptor for answer 3"):
        generators.StaticGenerator().generate(GenerationRequest(bank=shipped_bank, variant="handwritten", source=broken))


def test_every_configurable_variant_is_served(tiny_bank: QuestionBank, tmp_path: Path) -> None:
    # the params Literal and the generator's variants must not drift apart
    literal = typing.get_args(DescriptorParams.model_fields["variant"].annotation)
    assert set(literal) == set(generators.variants())
    pm = plugin_manager(CannedFactory([]))
    static_sources = {}
    for variant in literal:
        dp = DescriptorParams(variant=variant, generator_model="gen", path=str(tmp_path / "v.yaml"))
        name, req = request_from_params(dp, MODELS, tiny_bank, state_dir=tmp_path, pm=pm)
        assert name == ("static" if variant.startswith("handwritten") else "llm")
        if name == "static":
            static_sources[variant] = req.source
    assert static_sources == {
        "handwritten": tmp_path / "v.yaml",
        "handwritten_nohedge": tmp_path / "value_nohedge_handwritten.yaml",
        "handwritten_bare": tmp_path / "value_bare_handwritten.yaml",
    }
