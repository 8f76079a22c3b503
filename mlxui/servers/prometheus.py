"""`GET /metrics`: every profile's server state and counters for Prometheus.

A prometheus_client Collector reads the supervisor's servers at scrape time (nothing is copied
into the library's own metric objects, so nothing goes stale when profiles come and go), and the
library writes the exposition: text 0.0.4 by default, OpenMetrics or gzip when the scraper asks.

A value the sampler could not measure (no GPU, server not running) is left out rather than
written as 0, so a dashboard shows a gap instead of a fake reading.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from mlxui.servers.state import ServerState
from mlxui.servers.supervisor import Supervisor

# metric name, type, help, ServerMetrics attribute (None there = not measured: no sample line)
_SERIES = [
    ("mlxui_server_requests_total", "counter", "Requests answered through the gateway.", "requests"),
    ("mlxui_server_prompt_tokens_total", "counter", "Prompt tokens processed (from usage).", "prompt_tokens_total"),
    ("mlxui_server_completion_tokens_total", "counter", "Completion tokens generated.", "completion_tokens_total"),
    ("mlxui_server_tokens_per_second", "gauge", "Streamed tokens per second (0 when idle).", "tokens_per_s"),
    ("mlxui_server_memory_rss_bytes", "gauge", "Resident memory of the server's process tree.", "rss_bytes"),
    ("mlxui_server_cpu_percent", "gauge", "CPU use of the server's process tree (100 = one core).", "cpu_percent"),
    ("mlxui_server_gpu_utilization_percent", "gauge", "GPU utilization while the server runs.", "gpu_util"),
    ("mlxui_server_gpu_memory_bytes", "gauge", "GPU memory used by the server's processes.", "gpu_mem_bytes"),
    ("mlxui_server_evictions_total", "counter", "Times stopped to make room for another model.", "evictions"),
    ("mlxui_server_memory_planned_bytes", "gauge", "Memory the scheduler reserves for the running server.", "reserved_bytes"),
    ("mlxui_server_uptime_seconds", "gauge", "Seconds since the server process started.", "uptime_s"),
]  # fmt: skip


class ServersCollector(Collector):
    """The supervisor's servers as metric families, one sample per profile (sorted by name)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        servers = sorted(self.supervisor.servers.values(), key=lambda s: s.name)
        state = GaugeMetricFamily(
            "mlxui_server_state",
            "Server state per profile (1 on the current state's line).",
            labels=["profile", "state"],
        )
        up = GaugeMetricFamily(
            "mlxui_server_up", "1 when the profile's server is ready to answer.", labels=["profile"]
        )
        for server in servers:
            for each in ServerState:
                state.add_metric([server.name, each.value], int(server.state == each))
            up.add_metric([server.name], int(server.state == ServerState.READY))
        yield state
        yield up
        for name, kind, help_text, attribute in _SERIES:
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, help_text, labels=["profile"]
            )
            for server in servers:
                value = getattr(server.metrics, attribute)
                if value is not None:
                    family.add_metric([server.name], value)
            yield family


class MetricsEndpoint:
    """ASGI app answering `GET /metrics` (the gateway routes the path here)."""

    def __init__(self, supervisor: Supervisor) -> None:
        registry = CollectorRegistry(auto_describe=False)  # its own: one per app, none global
        registry.register(ServersCollector(supervisor))
        self._exporter = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):  # the exporter would answer any method
            await PlainTextResponse("GET /metrics\n", status_code=405)(scope, receive, send)
            return
        await self._exporter(scope, receive, send)
