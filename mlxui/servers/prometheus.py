"""`GET /metrics`: every profile's server state and counters in Prometheus text format (0.0.4).

A value the sampler could not measure (no GPU, server not running) is left out rather than
written as 0, so a dashboard shows a gap instead of a fake reading.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from starlette.types import Receive, Scope, Send

from mlxui.servers.process import ManagedServer
from mlxui.servers.state import ServerState
from mlxui.servers.supervisor import Supervisor

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

# metric name, type, help, ServerMetrics attribute (None there = not measured: no sample line)
_SERIES = [
    ("mlxui_server_requests_total", "counter", "Requests answered through the gateway.", "requests"),
    (
        "mlxui_server_prompt_tokens_total",
        "counter",
        "Prompt tokens processed (from usage).",
        "prompt_tokens_total",
    ),
    (
        "mlxui_server_completion_tokens_total",
        "counter",
        "Completion tokens generated.",
        "completion_tokens_total",
    ),
    ("mlxui_server_tokens_per_second", "gauge", "Streamed tokens per second (0 when idle).", "tokens_per_s"),
    ("mlxui_server_memory_rss_bytes", "gauge", "Resident memory of the server's process tree.", "rss_bytes"),
    (
        "mlxui_server_cpu_percent",
        "gauge",
        "CPU use of the server's process tree (100 = one core).",
        "cpu_percent",
    ),
    ("mlxui_server_gpu_utilization_percent", "gauge", "GPU utilization while the server runs.", "gpu_util"),
    ("mlxui_server_gpu_memory_bytes", "gauge", "GPU memory used by the server's processes.", "gpu_mem_bytes"),
    ("mlxui_server_uptime_seconds", "gauge", "Seconds since the server process started.", "uptime_s"),
]


def render(servers: Iterable[ManagedServer]) -> str:
    """The exposition text for `servers` (sorted by profile name)."""
    servers = sorted(servers, key=lambda s: s.name)
    lines = [
        "# HELP mlxui_server_state Server state per profile (1 on the current state's line).",
        "# TYPE mlxui_server_state gauge",
    ]
    for server in servers:
        for state in ServerState:
            value = 1 if server.state == state else 0
            lines.append(f'mlxui_server_state{{profile="{_label(server.name)}",state="{state}"}} {value}')
    lines += [
        "# HELP mlxui_server_up 1 when the profile's server is ready to answer.",
        "# TYPE mlxui_server_up gauge",
    ]
    for server in servers:
        lines.append(
            f'mlxui_server_up{{profile="{_label(server.name)}"}} {int(server.state == ServerState.READY)}'
        )
    for name, kind, help_text, attribute in _SERIES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for server in servers:
            value = getattr(server.metrics, attribute)
            if value is not None:
                lines.append(f'{name}{{profile="{_label(server.name)}"}} {_number(value)}')
    return "\n".join(lines) + "\n"


class MetricsEndpoint:
    """ASGI app answering `GET /metrics` (the gateway routes the path here)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            status, body = 405, b"GET /metrics\n"
        else:
            status, body = 200, render(self.supervisor.servers.values()).encode()
        headers = [(b"content-type", CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | int) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))  # repr keeps full precision
