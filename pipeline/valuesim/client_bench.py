"""`valuesim bench-client`: the API client's own throughput, against zero-latency servers.

Server mode (the openai plugin with ``options.server: vllm``) scores each request
through the real ``openai`` SDK; at the paper's scale a fleet of GPU servers can
answer thousands of requests a second, so the client's CPU per request decides how
many one machine can send. This measures it against
:mod:`valuesim.testing.instant_vllm` servers, each in a process of its own (so their
CPU is not the client's and is reported apart, from their own resource usage), with
one server and with a fleet, through four paths on the same kind of requests
(value-persona-like prompts, a 1-10 scale), one after another in one run:

- ``sdk-create``: one first-token request per answer through the SDK's typed method,
  ``client.chat.completions.create(**body).model_dump()`` (how the plugin sent before);
- ``sdk-post``: the same bodies through the plugin's ``send`` (the SDK client's
  ``post`` with the JSON body, the reply's JSON kept as it is);
- ``provider``: the plugin's exact server mode, ``provider.score`` per chunk (a first
  request, and a continuation after "1" since "1" begins "10": two requests per answer);
- ``engine``: the same through :class:`valuesim.llm.engine.Engine` as ``simulate``
  runs it: chunks, threads, watchdogs, every answer committed to the response cache.

The bare paths use as many threads as the engine would (``concurrency`` per server,
chunks of ``batch_size``). Client CPU is this process's user + system time
(``getrusage``); wall-clock rates depend on what else runs on the machine, CPU per
request much less.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuesim.errors import ConfigError
from valuesim.llm.types import ChatMessage, Decoding, ScoreRequest

if TYPE_CHECKING:
    from valuesim.llm.engine import Engine

PATHS = ("sdk-create", "sdk-post", "provider", "engine")
QUESTIONS = 30  # per persona: a persona's requests share its system message and server


@dataclass
class PathResult:
    servers: int
    path: str
    answers: int
    requests: int  # HTTP requests the servers answered
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float

    @property
    def answers_per_s(self) -> float:
        return self.answers / self.wall_s

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.wall_s

    @property
    def client_ms_per_request(self) -> float:
        return 1e3 * self.client_cpu_s / max(self.requests, 1)

    @property
    def client_ms_per_answer(self) -> float:
        return 1e3 * self.client_cpu_s / max(self.answers, 1)

    @property
    def server_ms_per_request(self) -> float:
        return 1e3 * self.server_cpu_s / max(self.requests, 1)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "answers_per_s": round(self.answers_per_s, 1),
            "requests_per_s": round(self.requests_per_s, 1),
            "client_cpu_ms_per_request": round(self.client_ms_per_request, 3),
            "client_cpu_ms_per_answer": round(self.client_ms_per_answer, 3),
            "server_cpu_ms_per_request": round(self.server_ms_per_request, 3),
        }


@dataclass
class ClientBenchResult:
    rows: list[PathResult]
    concurrency: int
    batch_size: int
    cpus: int

    def ratio(self, servers: int, before: str, after: str) -> float | None:
        """CPU per request of ``before`` over ``after`` (how much less the client spends)."""
        rows = {r.path: r for r in self.rows if r.servers == servers}
        if before not in rows or after not in rows:
            return None
        return rows[before].client_ms_per_request / rows[after].client_ms_per_request

    def to_json(self) -> str:
        counts = sorted({r.servers for r in self.rows})
        return json.dumps({
            "concurrency": self.concurrency, "batch_size": self.batch_size, "cpus": self.cpus,
            "rows": [r.to_json() for r in self.rows],
            "create_over_post_cpu": {str(n): _round(self.ratio(n, "sdk-create", "sdk-post")) for n in counts},
        }, indent=2)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def bench_requests(n: int, tag: str) -> list[ScoreRequest]:
    """``n`` distinct requests shaped like a value persona's: ~800-character system
    message shared by ``QUESTIONS`` questions, a 1-10 scale."""
    out = []
    for i in range(n):
        persona = f"You are respondent {tag}-{i // QUESTIONS}. " + "You value family, work and tradition. " * 20
        question = f"Question {i % QUESTIONS}: how important is this in your life?\nRespond with ONLY a number (1-10):"
        out.append(ScoreRequest(
            messages=(ChatMessage("system", persona), ChatMessage("user", question)),
            answers=tuple(str(a) for a in range(1, 11)),
        ))
    return out


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)  # this process only: the servers are children
    return ru.ru_utime + ru.ru_stime


@contextmanager
def instant_servers(n: int) -> Iterator[list[str]]:
    """``n`` :mod:`valuesim.testing.instant_vllm` processes; their base URLs."""
    import valuesim

    env = dict(os.environ)
    root = str(Path(valuesim.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    procs: list[subprocess.Popen[str]] = []
    try:
        urls = []
        for _ in range(n):
            proc = subprocess.Popen(
                [sys.executable, "-m", "valuesim.testing.instant_vllm"],
                stdout=subprocess.PIPE, text=True, env=env,
            )
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if not line.startswith("http://"):
                raise ConfigError(f"bench-client: the loopback server did not start (exit {proc.poll()})")
            urls.append(line)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def _server_totals(urls: Sequence[str]) -> tuple[int, float]:
    requests, cpu = 0, 0.0
    for url in urls:
        with urllib.request.urlopen(url.removesuffix("/v1") + "/bench/stats", timeout=10) as reply:
            stats = json.load(reply)
        requests += int(stats["requests"])
        cpu += float(stats["cpu_s"])
    return requests, cpu


def _measure(
    urls: Sequence[str], path: str, answers: int, run: Callable[[], None]
) -> PathResult:
    req0, srv0 = _server_totals(urls)
    cpu0, t0 = _cpu_s(), time.perf_counter()
    run()
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    req1, srv1 = _server_totals(urls)
    return PathResult(
        servers=len(urls), path=path, answers=answers, requests=req1 - req0,
        wall_s=wall, client_cpu_s=cpu, server_cpu_s=srv1 - srv0,
    )


def _threaded(
    fn: Callable[[list[Any]], Any], items: list[Any], threads: int, batch_size: int
) -> Callable[[], None]:
    """``fn`` on chunks of ``batch_size`` items, ``threads`` at a time (as the engine runs chunks)."""
    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]

    def run() -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, chunks))

    return run


def _create(chunk: list[tuple[Any, dict[str, Any]]]) -> None:
    """The SDK's typed method and its pydantic reply, turned back into a dict (the old send)."""
    for provider, body in chunk:
        provider.client.chat.completions.create(**body).model_dump()


def _post(chunk: list[tuple[Any, dict[str, Any]]]) -> None:
    """The plugin's send: the SDK client's post, the reply's JSON as it is."""
    for provider, body in chunk:
        provider.send(body)


def _engine_run(engine: Engine, requests: list[ScoreRequest]) -> Callable[[], None]:
    def run() -> None:
        with engine:
            engine.run(requests)
    return run


def run_client_bench(
    *,
    answers: int = 1000,
    servers: Sequence[int] = (1, 4),
    concurrency: int = 8,
    batch_size: int = 32,
    paths: Sequence[str] = PATHS,
    log: Callable[[str], None] = lambda _m: None,
) -> ClientBenchResult:
    """Each path of ``paths`` for each fleet size of ``servers``, ``answers`` answers each."""
    from valuesim.config import ModelSpec
    from valuesim.llm.engine import Engine
    from valuesim.llm.fleet import create_provider
    from valuesim.plugins import get_provider_factory
    from valuesim.testing.instant_vllm import MODEL

    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        raise ConfigError(f"bench-client: unknown path {unknown[0]!r}; choose from {', '.join(PATHS)}")
    factory = get_provider_factory("openai")  # ConfigError (one line) when not installed
    rows: list[PathResult] = []
    for n in servers:
        with instant_servers(n) as urls, tempfile.TemporaryDirectory() as tmp:
            spec = ModelSpec(
                provider="openai", model=MODEL, base_url=urls if n > 1 else urls[0],
                options={"server": "vllm"}, concurrency=concurrency,
            )
            provider: Any = create_provider(factory, spec, state_dir=Path(tmp) / "state")
            singles = list(getattr(provider, "providers", [provider]))
            exact = Decoding(estimator="logprobs")
            threads = concurrency * n

            # warm-up: connections open, lazy imports done
            provider.score([replace(r, decoding=exact) for r in bench_requests(2 * threads, f"warm{n}")])
            for path in paths:
                tag = f"{path}-{n}-{time.time_ns()}"
                exact_requests = [replace(r, decoding=exact) for r in bench_requests(answers, tag)]
                if path in ("sdk-create", "sdk-post"):
                    # one first-token request per answer, spread over the servers
                    bodies = [
                        (singles[i % n], singles[i % n].request_body(r)) for i, r in enumerate(exact_requests)
                    ]
                    send = _create if path == "sdk-create" else _post
                    run = _threaded(send, bodies, threads, batch_size)
                elif path == "provider":
                    run = _threaded(provider.score, exact_requests, threads, batch_size)
                else:
                    engine = Engine(
                        "openai", spec, cache_dir=Path(tmp) / f"cache-{path}", progress=False,
                        batch_size=batch_size, log=lambda _m: None,
                    )
                    run = _engine_run(engine, bench_requests(answers, tag))
                log(f"bench-client: {path} on {n} server(s), {answers} answers")
                rows.append(_measure(urls, path, answers, run))
    return ClientBenchResult(rows=rows, concurrency=concurrency, batch_size=batch_size, cpus=os.cpu_count() or 1)


HEADER = (
    f"{'servers':>7} {'path':<10} {'answers':>7} {'requests':>8} {'wall s':>7} {'answers/s':>9} "
    f"{'requests/s':>10} {'client CPU ms/req':>17} {'ms/answer':>9} {'server CPU ms/req':>17}"
)


def format_row(r: PathResult) -> str:
    return (
        f"{r.servers:>7} {r.path:<10} {r.answers:>7} {r.requests:>8} {r.wall_s:>7.2f} "
        f"{r.answers_per_s:>9.0f} {r.requests_per_s:>10.0f} {r.client_ms_per_request:>17.3f} "
        f"{r.client_ms_per_answer:>9.3f} {r.server_ms_per_request:>17.3f}"
    )


def format_result(result: ClientBenchResult) -> str:
    lines = [HEADER, *(format_row(r) for r in result.rows)]
    for n in sorted({r.servers for r in result.rows}):
        ratio = result.ratio(n, "sdk-create", "sdk-post")
        if ratio is not None:
            lines.append(f"{n} server(s): the SDK's typed create costs {ratio:.2f}x the client CPU per request of post")
    lines.append(
        f"concurrency {result.concurrency} per server, batch_size {result.batch_size}, "
        f"{result.cpus} CPUs (servers included: each server's CPU is its own process's)"
    )
    return "\n".join(lines)
