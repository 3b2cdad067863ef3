"""Typed study parameters.

`params.yaml` is parsed once into :class:`Params`; stages receive the section they
need as a typed object and never read the YAML themselves. Every model forbids
unknown keys so that a typo in params fails loudly instead of being ignored.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from valuesim import safe_yaml
from valuesim.errors import ConfigError
from valuesim.methods import METHOD_NAMES, unknown_method_message
from valuesim.names import clip, name_problem, shorten
from valuesim.urls import base_url_problem, redact_url, url_credential

# The paper's ten countries where WVS-7 files exist, with documented substitutes for
# the four that have none here (README, "Country selection").
DEFAULT_COUNTRIES: tuple[str, ...] = (
    "JPN", "TWN", "PRI", "COL", "JOR", "ROU", "ZWE", "NZL", "DEU", "AUS",
)

# Validation context of a params file (load_params): what is refused there only.
FROM_PARAMS_FILE = "from_params_file"

# Enum-like settings, shared with the CLI options that override them (valuesim score).
ESTIMATORS: tuple[str, ...] = ("logprobs", "top_logprobs", "sampling", "verbalized")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Numbers and switches are strict: YAML `true` is a bool, and pydantic's lax mode would
# otherwise take it as 1 (`n_per_country: true` -> one persona) or 1.0. Floats still
# accept integers (`timeout_s: 120`).
Seed = Annotated[int, Field(ge=0, strict=True)]  # numpy seeds must be >= 0
Count = Annotated[int, Field(ge=1, strict=True)]
Flag = Annotated[bool, Field(strict=True)]
# Every size, count and float also has an upper bound (README, "Params are checked before
# anything runs"), far above any study this tool is for: `bootstrap: 1e12` or `t_grid_max:
# .inf` would pass a lower bound alone and then exhaust memory or run for days. Floats are
# finite (allow_inf_nan=False): YAML's .inf and .nan are numbers to pydantic.


def _name(what: str) -> AfterValidator:
    """A name that becomes a path or a shell word (valuesim.names: one pattern)."""

    def check(value: str) -> str:
        problem = name_problem(value)
        if problem:
            raise ValueError(f"{what} {problem}")
        return value

    return AfterValidator(check)


# Model names become folders (data/simulated/<model>/<method>) and words of the
# simulate stage's command under `dvc repro`.
ModelName = Annotated[str, Field(strict=True), _name("model name")]


# The most synthetic respondents a country may have (params and --demo-n): 50 times the
# largest real WVS-7 sample (BOL 2,067); all 56 demo countries at this size take about
# 3 GB and 30 s on a 2-core machine, and 10**8 asked for 45 GB and died in a traceback.
MAX_DEMO_RESPONDENTS = 100_000


class DataParams(_Strict):
    # A path. The default is the shipped demo aggregates (a .json file): a synthetic
    # population is generated from them. Anything else is real WVS data: a directory
    # of per-country CSV(.gz) files, the cross-national CSV, .sav, .dta or .parquet.
    source: str = "data/demo/aggregates.json"
    questions: str = "data/questions/wvs7.yaml"
    demo_respondents_per_country: int = Field(1200, gt=0, le=MAX_DEMO_RESPONDENTS, strict=True)
    # Drop rows identical to an earlier one (with a warning); off: duplicates are an error.
    drop_duplicates: bool = Field(False, strict=True)
    # Question files of new items (README, "Ask your own questions") that the
    # new_questions stage asks every (model, method) of the study; never evaluated.
    new_questions: list[str] = Field(default_factory=list)

    @field_validator("new_questions")
    @classmethod
    def _under_questions_dir(cls, v: list[str]) -> list[str]:
        for path in v:
            p = Path(path)
            inside = (not p.is_absolute() and ".." not in p.parts
                      and p.parts[:2] == ("data", "questions") and len(p.parts) > 2)
            if not (inside and p.suffix in (".yaml", ".yml")):
                raise ValueError(
                    f"{clip(path)} must be a .yaml file under data/questions/ (the directory dvc.yaml "
                    "declares for the new_questions stage); move the file there"
                )
        return v

    @property
    def is_demo(self) -> bool:
        return self.source.endswith(".json")


class CountryParams(_Strict):
    # An explicit ISO3 list, or "hull" (countries on the convex hull of the map).
    # an empty list would leave every later stage with nothing to do
    select: list[str] | Literal["hull"] = Field(
        default_factory=lambda: list(DEFAULT_COUNTRIES), min_length=1
    )
    extra: list[str] = Field(default_factory=list)

    @field_validator("select", "extra")
    @classmethod
    def _iso3(cls, v: Any) -> Any:
        if isinstance(v, list):
            for c in v:
                if not (isinstance(c, str) and len(c) == 3 and c.isascii() and c.isalpha()
                        and c.isupper()):
                    raise ValueError(f"country {shorten(c)} is not an upper-case ISO3 code")
        return v


class FilterParams(_Strict):
    max_missing: float = Field(0.20, gt=0, le=1, strict=True, allow_inf_nan=False)


class MapParams(_Strict):
    # A respondent needs at least this many of the five items of a dimension to be scored.
    min_items: int = Field(3, ge=1, le=5, strict=True)
    zones: Flag = True


class DescriptorParams(_Strict):
    # "handwritten*" are shipped hand-written sets (no model needed): "handwritten" is
    # the YAML at `path` (hedged, the default); "handwritten_nohedge" and
    # "handwritten_bare" are value_nohedge_handwritten.yaml / value_bare_handwritten.yaml
    # beside it. "composable", "modular" and "nohedge" are generated by
    # `generator_model` with the paper's Table 3 prompts.
    variant: Literal[
        "handwritten", "handwritten_nohedge", "handwritten_bare", "composable", "modular", "nohedge"
    ] = "handwritten"
    # "auto": `static` for the handwritten* variants, `llm` for the generated ones; or
    # the name of any registered descriptor generator.
    generator: str = "auto"
    generator_model: ModelName = "smollm2"
    path: str = "data/descriptors/value_handwritten.yaml"
    sociodemographic_path: str = "data/descriptors/sociodemographic.yaml"
    max_retries: int = Field(3, ge=0, le=10, strict=True)


class PersonaParams(_Strict):
    # above any WVS-7 country's sample (the largest has ~4,000 respondents)
    n_per_country: Annotated[Count, Field(le=10_000)] = 6
    seed: Seed = 0


class PromptParams(_Strict):
    guidance: str = "social_science"


class ModelSpec(_Strict):
    provider: str
    model: str
    revision: str | None = None
    # One server, or a list of servers of the same model (a fleet, valuesim.llm.fleet):
    # each persona's requests go to one server; concurrency is per server.
    base_url: str | list[str] | None = None
    precision: Literal["fp32", "bf16"] = "fp32"
    estimator: Literal[ESTIMATORS] | None = None  # type: ignore[valid-type]
    # What an answer's probability measures (README, "Answer probabilities"); None:
    # the provider's default (answer_start for the built-in and OpenAI providers).
    answer_rule: Literal["answer_start", "answer_eot", "first_token", "leading_integer"] | None = None
    samples: Annotated[Count, Field(le=1_000)] = 20
    # 2: the most the OpenAI and Gemini APIs accept (Anthropic's is 1)
    temperature: float | None = Field(None, ge=0, le=2, strict=True, allow_inf_nan=False)
    concurrency: Annotated[Count, Field(le=256)] = 8  # threads, per server
    batch_api: Flag = False
    options: dict[str, Any] = Field(default_factory=dict)
    # Figure 2's model order (paper: by decreasing size, proprietary left of open):
    # parameters in billions (an estimate for closed models) and open weights or not.
    size_b: float | None = Field(None, gt=0, le=100_000, strict=True, allow_inf_nan=False)
    open: Flag | None = None

    @field_validator("base_url")
    @classmethod
    def _servers(cls, value: str | list[str] | None, info: ValidationInfo) -> str | list[str] | None:
        """A fleet's URLs are checked here, before anything is created or sent."""
        if info.context and info.context.get(FROM_PARAMS_FILE):
            # params.yaml is committed, and DVC copies the params a stage depends on
            # into dvc.lock and its run cache: a secret written here would outlive any
            # redaction. Keys come from the environment (options.api_key_env).
            urls = value if isinstance(value, list) else [value] if value else []
            for url in urls:
                secret = url_credential(url)
                if secret:
                    raise ValueError(
                        f"base_url {redact_url(url)!r} carries {secret}, which would be kept in git, "
                        "dvc.lock and DVC's run cache; put the secret in an environment variable "
                        "and name it in options.api_key_env"
                    )
        if not isinstance(value, list):
            return value
        if not value:
            raise ValueError("an empty list of servers; give one URL or a list of several")
        seen: set[str] = set()
        for url in value:
            problem = base_url_problem(url)
            if problem:
                raise ValueError(problem)
            if url.rstrip("/") in seen:
                raise ValueError(f"server {redact_url(url)!r} is listed twice; list each server once")
            seen.add(url.rstrip("/"))
        return value

    @model_validator(mode="after")
    def _fleet_without_batch_api(self) -> ModelSpec:
        if isinstance(self.base_url, list) and len(self.base_url) > 1 and self.batch_api:
            raise ValueError(
                "batch_api sends to one vendor's batch endpoint, not to a fleet of servers; "
                "set batch_api: false or give one base_url"
            )
        return self


# USD per million tokens: never negative, never YAML `true`
Usd = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]


class PriceEntry(_Strict):
    """One model's price in ``simulate.prices``, USD per million tokens.

    Typed so that a misspelled key (``inptu``) is an error at load: read as a mapping it
    made the model's input free and let the cost ceiling wave a paid run through.
    ``input`` and ``output`` are both required for the same reason; ``cached_input``
    (prompt tokens the vendor served from its prompt cache) defaults to ``input``.
    """

    input: Usd
    output: Usd
    cached_input: Usd | None = None

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # shown (report, compare) as written: no `cached_input: null` the user never set
        return {k: v for k, v in handler(self).items() if v is not None}

    def rates(self) -> dict[str, float]:
        """The entry as :func:`valuesim.llm.engine.cost_of` reads it."""
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @property
    def free(self) -> bool:
        return not any(self.rates().values())


class SimulateParams(_Strict):
    # empty lists would make the DVC matrix empty and calibrate/evaluate score nothing
    methods: list[str] = Field(
        default_factory=lambda: ["generic", "country", "value"], min_length=1
    )
    # names of entries in the top-level `models` section (a list, so DVC's matrix
    # can fan out over it)
    models: list[ModelName] = Field(default_factory=lambda: ["smollm2"], min_length=1)
    cache_dir: str = ".valuesim-cache"
    # 50,000: the most requests one OpenAI batch takes (a chunk is one batch with batch_api)
    batch_size: Annotated[Count, Field(le=50_000)] = 32
    max_retries: int = Field(4, ge=0, le=20, strict=True)
    # also the longest wait a server's Retry-After gets (valuesim.llm.engine)
    timeout_s: float = Field(120.0, gt=0, le=3600, strict=True, allow_inf_nan=False)
    # price per million tokens, by provider model name:
    # {"gpt-4o-mini": {"input": 0.15, "output": 0.6}} (PriceEntry: unknown keys refused)
    prices: dict[str, PriceEntry] = Field(default_factory=dict)
    # also ask the Inglehart-Welzel map items (Figure 1); kept out of the metrics
    map_items: Flag = True
    # USD: every stage and command that sends paid requests (simulate, new_questions,
    # shapley, ask, score) stops before sending anything when what it would still pay
    # costs more (valuesim.spending); with it set, a remote model needs a price
    max_cost_usd: float | None = Field(None, ge=0, le=1_000_000, strict=True, allow_inf_nan=False)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: list[str]) -> list[str]:
        for m in v:  # the table's names all match valuesim.names' pattern
            if m not in METHOD_NAMES:  # the table of methods: valuesim.methods
                raise ValueError(unknown_method_message(m))
        return v


class CalibrationParams(_Strict):
    # Temperatures act on log-probabilities: below 0.01 every distribution is one-hot, above
    # 100 uniform to many digits, so a wider grid only adds points that say nothing new.
    t_grid_min: float = Field(0.25, ge=0.01, le=100, strict=True, allow_inf_nan=False)
    t_grid_max: float = Field(8.0, ge=0.01, le=100, strict=True, allow_inf_nan=False)
    t_grid_size: int = Field(60, ge=5, le=1_000, strict=True)

    @model_validator(mode="after")
    def _grid_order(self) -> CalibrationParams:
        if self.t_grid_min >= self.t_grid_max:
            raise ValueError(
                f"t_grid_min ({self.t_grid_min}) must be below t_grid_max ({self.t_grid_max})"
            )
        return self


class AnalysisParams(_Strict):
    # personas per country for the sample-size curve (Figure 3); sizes above
    # personas.n_per_country are skipped by the curve (see sample_size_warnings)
    sample_sizes: list[Annotated[Count, Field(le=10_000)]] = Field(
        default_factory=lambda: [1, 2, 3, 6], min_length=1, max_length=100
    )
    subsample_repeats: Annotated[Count, Field(le=10_000)] = 20
    bootstrap: Annotated[Count, Field(le=100_000)] = 1000
    shapley: Flag = False
    shapley_permutations: Annotated[Count, Field(le=1_000)] = 8
    seed: Seed = 0


def _default_models() -> dict[str, ModelSpec]:
    return {"smollm2": ModelSpec(provider="transformers", model="embedded")}


class Params(_Strict):
    data: DataParams = DataParams()
    countries: CountryParams = CountryParams()
    filter: FilterParams = FilterParams()
    map: MapParams = MapParams()
    descriptors: DescriptorParams = DescriptorParams()
    personas: PersonaParams = PersonaParams()
    prompts: PromptParams = PromptParams()
    models: dict[str, ModelSpec] = Field(default_factory=_default_models)
    simulate: SimulateParams = SimulateParams()
    calibration: CalibrationParams = CalibrationParams()
    analysis: AnalysisParams = AnalysisParams()

    @field_validator("models", mode="before")
    @classmethod
    def _model_names(cls, v: Any) -> Any:
        # checked here rather than as dict[ModelName, ...]: pydantic would put the bad
        # key itself into the error's location
        if isinstance(v, dict):
            for name in v:
                problem = name_problem(name)
                if problem:
                    raise ValueError(f"model name {problem}")
        return v

    @model_validator(mode="after")
    def _models_defined(self) -> Params:
        for name in self.simulate.models:
            if name not in self.models:
                known = ", ".join(sorted(self.models)) or "none"
                raise ValueError(f"simulate.models names {shorten(name)}, not defined under models ({known})")
        return self


def sample_size_warnings(params: Params) -> list[str]:
    """Settings that validate but quietly do less than asked, as one-line warnings.

    Sample sizes above personas.n_per_country are a warning, not an error: the curve
    (valuesim.analysis.curves.sample_size_curve) skips a size for a country with fewer
    personas, which is also what happens where a country has fewer respondents than
    n_per_country, so the study still runs; the user learns that the point is missing.
    """
    n = params.personas.n_per_country
    above = sorted({s for s in params.analysis.sample_sizes if s > n})
    if not above:
        return []
    return [
        f"analysis.sample_sizes {', '.join(map(str, above))} exceed personas.n_per_country ({n}): "
        "the sample-size curve has no points there; lower them or raise n_per_country"
    ]


def check_option(model: type[BaseModel], field: str, value: Any, option: str) -> Any:
    """Validate a CLI option with the params field it overrides (same domain, one line).

    E.g. ``check_option(PersonaParams, "seed", -5, "--seed")`` raises
    ConfigError("--seed -5: Input should be greater than or equal to 0").
    """
    info = model.model_fields[field]
    try:
        return TypeAdapter(Annotated[(info.annotation, *info.metadata)]).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(f"{option} {value}: {exc.errors()[0]['msg']}") from exc


def _location(loc: tuple[int | str, ...]) -> str:
    """``simulate.prices.<key>.input``, each key cut short (keys come from the file)."""
    return ".".join(clip(str(x), 40) for x in loc)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Parse and validate params; raise ConfigError with a one-line message.

    The file is read within :data:`valuesim.safe_yaml.PARAMS` (size, nesting, alias
    expansion, value length). Warnings (see :func:`sample_size_warnings`) go to stderr,
    one line each."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"params file {p} not found; run from the project root or pass --params")
    try:
        raw = safe_yaml.load_file(p, safe_yaml.PARAMS) or {}
    except safe_yaml.YamlError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        params = Params.model_validate(raw, context={FROM_PARAMS_FILE: True})
    except ValidationError as exc:
        errors = exc.errors()
        # a misspelled key also leaves the key it meant missing: name the typo, not the gap
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = _location(err["loc"])
        hint = ""
        if err["type"] == "extra_forbidden":
            hint = " (typo? unknown keys are rejected)"
            if err["loc"][:2] == ("simulate", "prices"):
                keys = ", ".join(PriceEntry.model_fields)
                hint = f" (typo? a price takes {keys}, in USD per million tokens)"
        raise ConfigError(f"{p}: {loc}: {err['msg']}{hint}") from exc
    for line in sample_size_warnings(params):
        print(f"warning: {p}: {line}", file=sys.stderr)
    return params
