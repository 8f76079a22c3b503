"""What each API dialect's translation adds to the time to first token (issue 15), in one run:
the real app with a scripted model, the same streamed question asked alternately through the
raw OpenAI chat route, Anthropic Messages, OpenAI Responses and the Ollama API; the time from
sending to the first byte of answer text, p50 per route; each dialect's p50 minus the raw route's.
Goal: ≤ 2 ms added (p50).

Run alone: .venv/bin/python scripts/bench_dialects.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "scripts")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import httpx  # noqa: E402
from bench_all import print_rows, row  # noqa: E402 - needs the sys.path set-up above

ROUNDS = 40
GOAL_MS = 2.0
QUESTION = "hi"


def _routes(base: str, ollama: str) -> dict[str, tuple[str, dict, Callable[[bytes], bool]]]:
    """route -> (url, body, "does this piece of the stream carry answer text?")."""
    messages = [{"role": "user", "content": QUESTION}]
    return {
        "openai chat (raw relay)": (
            f"{base}/v1/chat/completions",
            {"model": "plain", "messages": messages, "stream": True},
            lambda piece: b'"content": "' in piece or b'"content":"' in piece,
        ),
        "anthropic messages": (
            f"{base}/v1/messages",
            {"model": "plain", "messages": messages, "max_tokens": 64, "stream": True},
            lambda piece: b"text_delta" in piece,
        ),
        "openai responses": (
            f"{base}/v1/responses",
            {"model": "plain", "input": QUESTION, "stream": True},
            lambda piece: b"response.output_text.delta" in piece,
        ),
        "ollama chat": (
            f"{ollama}/api/chat",
            {"model": "plain:latest", "messages": messages},
            lambda piece: b'"content":"' in piece.replace(b'": "', b'":"') and b'"content":""' not in piece,
        ),
    }


def _first_text_s(client: httpx.Client, url: str, body: dict, has_text: Callable[[bytes], bool]) -> float:
    started = time.perf_counter()
    first = None
    with client.stream(
        "POST", url, content=json.dumps(body), headers={"Content-Type": "application/json"}
    ) as r:
        r.raise_for_status()
        for piece in r.iter_raw():  # to the end: the next request finds the server idle
            if first is None and has_text(piece):
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"{url}: the stream carried no text")
    return first


def bench_ttft() -> list[dict]:
    from tests.harness.app_process import free_port, running_app
    from tests.harness.models import build_scripted_plain

    with tempfile.TemporaryDirectory(prefix="mlxui-bench-dialects-") as tmp:
        model = build_scripted_plain(Path(tmp) / "plain")
        ollama_port = free_port()
        with running_app(Path(tmp) / "home", env={"MLXUI_OLLAMA_PORT": str(ollama_port)}) as app:
            client = httpx.Client(timeout=60, trust_env=False)
            created = client.post(f"{app.url}/api/profiles", json={"name": "plain", "model": str(model)})
            created.raise_for_status()
            client.post(f"{app.url}/api/servers/plain/start", timeout=120).raise_for_status()
            deadline = time.monotonic() + 30
            while not client.get(f"{app.url}/api/status").json().get("ollama", {}).get("listening"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Ollama listener did not start")
                time.sleep(0.2)
            routes = _routes(app.url, f"http://127.0.0.1:{ollama_port}")
            times: dict[str, list[float]] = {name: [] for name in routes}
            for url, body, has_text in routes.values():  # warm each path once
                _first_text_s(client, url, body, has_text)
            for _ in range(ROUNDS):
                for name, (url, body, has_text) in routes.items():
                    times[name].append(_first_text_s(client, url, body, has_text))
            client.post(f"{app.url}/api/servers/stop-all", timeout=60)
            client.close()
    raw = statistics.median(times["openai chat (raw relay)"]) * 1000
    rows = [
        row("ttft openai chat (raw relay)", raw, "ms", detail=f"p50 of {ROUNDS}, alternating with the others")
    ]
    for name, samples in times.items():
        if name.startswith("openai chat"):
            continue
        p50 = statistics.median(samples) * 1000
        rows.append(row(f"ttft added: {name}", p50 - raw, "ms", GOAL_MS, better="lower",
                        detail=f"p50 {p50:.2f} ms vs raw {raw:.2f} ms"))  # fmt: skip
    return rows


BENCHES = {"dialect-ttft": bench_ttft}

if __name__ == "__main__":
    print_rows([r for name in sys.argv[1:] or BENCHES for r in BENCHES[name]()])
