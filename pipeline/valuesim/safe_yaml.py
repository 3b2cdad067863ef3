"""YAML the user gives, read within limits.

Every YAML file a user writes or hands over (``params.yaml``, question files, the
question bank, descriptor sets, and a model's descriptor reply) is read here, never
with ``yaml.safe_load`` directly. ``safe_load`` happily builds a 600-byte "billion
laughs" file (nine levels of aliases) into a structure whose every walk, validation or
``repr`` takes minutes and gigabytes, gives a RecursionError traceback on a few
thousand nested brackets, and parses a 50 MB string before anything looks at it.

The limits (README, "Limits"), per kind of file (:data:`PARAMS`, :data:`QUESTION_FILE`,
:data:`QUESTION_BANK`, :data:`DESCRIPTOR_SET`, :data:`DESCRIPTOR_REPLY`):

* size: checked before a byte is parsed (``max_bytes``);
* aliases (``&name`` anchors, ``*name`` aliases): allowed, since PyYAML's own dumper
  writes them for any object a generated file shares (one answer scale for 10,000
  items), but the values counted with every alias expanded may be at most
  ``max_nodes``; they are counted from the node tree without expanding anything, so
  a billion laughs stops within milliseconds. An alias inside what it names (a
  recursive structure) is refused;
* nesting: at most ``max_depth`` levels of lists and mappings;
* text: no single value (or key) longer than ``max_scalar`` characters; fields with
  tighter bounds (labels, descriptor sentences) check those where they are parsed,
  with the constants below.

A violation is a :class:`YamlError` whose message is one line naming the file (and the
line, where there is one) and never a value longer than ~80 characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from valuesim.names import clip

MB = 1_000_000
# Text fields with their own, tighter bound than max_scalar (checked where parsed).
MAX_QUESTION_TEXT = 2_000  # a question's wording (the bank's longest: 473)
MAX_LABEL = 200  # an item's or an answer's label (the bank's longest: 118)
MAX_SENTENCE = 1_000  # a descriptor sentence or numeric template (shipped: <= 185)
_PROBLEM_CHARS = 100  # of a YAML syntax error's problem text


class YamlError(ValueError):
    """YAML that is invalid or over a limit; the message is one line."""


@dataclass(frozen=True)
class Limits:
    what: str  # the kind of file, as messages name it: "a question file"
    max_bytes: int
    max_depth: int = 20
    max_scalar: int = MAX_QUESTION_TEXT
    max_nodes: int = 1_000_000  # values with aliases expanded (scalars, keys, lists, mappings)

    @property
    def size_text(self) -> str:
        return f"{self.max_bytes:,} bytes ({self.max_bytes / MB:g} MB)"


PARAMS = Limits("a params file", max_bytes=1 * MB, max_scalar=10_000, max_nodes=100_000)
QUESTION_FILE = Limits("a question file", max_bytes=5 * MB)
QUESTION_BANK = Limits("the question bank", max_bytes=5 * MB)
DESCRIPTOR_SET = Limits("a descriptor set", max_bytes=1 * MB, max_nodes=100_000)
DESCRIPTOR_REPLY = DESCRIPTOR_SET  # a model's reply, parsed from text


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer enforces :class:`Limits` while it builds the node tree,
    before any Python object exists (PyYAML's scanner and parser keep explicit stacks;
    only the composer recurses, and it stops at ``max_depth``)."""

    def __init__(self, stream: str, limits: Limits, origin: str) -> None:
        super().__init__(stream)
        self.limits = limits
        self.origin = origin
        self.depth = 0
        self.sizes: dict[int, int] = {}  # id(node) -> values under it, aliases expanded

    def refuse(self, event: yaml.Event, message: str) -> YamlError:
        return YamlError(f"{self.origin}: line {event.start_mark.line + 1}: {message}")

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        event = self.peek_event()
        lim = self.limits
        if isinstance(event, AliasEvent):  # the node it names, whose size is known
            target = self.anchors.get(event.anchor)  # type: ignore[arg-type]
            if target is not None and id(target) not in self.sizes:
                raise self.refuse(event, f"alias *{clip(event.anchor or '', 40)} is inside the list or "
                                  "mapping it names (a recursive structure); write the values out")
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        if isinstance(event, ScalarEvent) and len(event.value) > lim.max_scalar:
            raise self.refuse(event, f"a value of {len(event.value):,} characters; {lim.what} allows "
                              f"at most {lim.max_scalar:,} per value")
        collection = isinstance(event, CollectionStartEvent)
        if collection:
            self.depth += 1
            if self.depth > lim.max_depth:
                raise self.refuse(event, f"lists and mappings nested more than {lim.max_depth} levels "
                                  f"deep; {lim.what} allows at most {lim.max_depth}")
        try:
            node = super().compose_node(parent, index)
        finally:
            if collection:
                self.depth -= 1
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(self.sizes[id(child)] for child in node.value)
        elif isinstance(node, MappingNode):
            size += sum(self.sizes[id(k)] + self.sizes[id(v)] for k, v in node.value)
        if size > lim.max_nodes:
            raise self.refuse(event, f"more than {lim.max_nodes:,} values with its aliases (*name) "
                              f"expanded, the limit of {lim.what}; write fewer or share less")
        self.sizes[id(node)] = size
        return node  # type: ignore[no-any-return]


def _syntax_error(exc: yaml.YAMLError, origin: str) -> YamlError:
    """PyYAML's multi-line error (it quotes the offending text) as one short line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    problem = " ".join(str(problem).split())
    if len(problem) > _PROBLEM_CHARS:
        problem = problem[: _PROBLEM_CHARS - 1] + "…"
    where = f"line {mark.line + 1}: " if mark is not None else ""
    return YamlError(f"{origin}: not valid YAML: {where}{problem}")


def load_text(text: str, limits: Limits, origin: str) -> Any:
    """Parse YAML ``text`` within ``limits``; ``origin`` names it in errors."""
    size = len(text.encode("utf-8", errors="replace")) if len(text) * 4 > limits.max_bytes else 0
    if size > limits.max_bytes:
        raise YamlError(f"{origin} is {size:,} bytes; {limits.what} may have at most {limits.size_text}")
    loader = _Loader(text, limits, origin)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, origin) from exc
    except RecursionError as exc:  # not expected (the composer stops at max_depth); stay one line
        raise YamlError(f"{origin}: nested too deeply for {limits.what}") from exc
    finally:
        loader.dispose()


def load_bytes(data: bytes, limits: Limits, origin: str) -> Any:
    """Parse UTF-8 YAML ``data`` within ``limits``."""
    if len(data) > limits.max_bytes:
        raise YamlError(f"{origin} is over {limits.max_bytes:,} bytes; {limits.what} may have at "
                        f"most {limits.size_text}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"{origin}: not valid YAML: not UTF-8 text (byte {exc.start:,})") from exc
    return load_text(text, limits, origin)


def load_file(path: str | Path, limits: Limits, origin: str | None = None) -> Any:
    """Read and parse a YAML file within ``limits``: its size is checked before it is
    read (a regular file) or while it is read (anything else), never after parsing."""
    p = Path(path)
    where = origin or str(p)
    try:
        size = p.stat().st_size
        if p.is_file() and size > limits.max_bytes:
            raise YamlError(f"{where} is {size:,} bytes; {limits.what} may have at most {limits.size_text}")
        with p.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise YamlError(f"{where} cannot be read ({exc.strerror or type(exc).__name__})") from exc
    return load_bytes(data, limits, where)


def too_long(value: str, limit: int) -> str | None:
    """``"of N characters; at most LIMIT"`` when ``value`` is over ``limit``, else None."""
    if len(value) <= limit:
        return None
    return f"has {len(value):,} characters; at most {limit:,} are allowed"
