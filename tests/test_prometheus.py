"""`GET /metrics` in-process: the exposition a Prometheus scraper reads (names, HELP/TYPE, one
sample per profile, odd names escaped, unmeasured values left out), OpenMetrics on request, and
profiles read at scrape time. The wired-up endpoint on real servers: test_gateway.py."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlxui.servers.prometheus import MetricsEndpoint
from mlxui.servers.state import ServerMetrics, ServerState

ODD = 'we"ird\\na\nme'  # profile names are checked, but the exposition must not rely on it


def server(name: str, state: ServerState, **values: float) -> SimpleNamespace:
    metrics = ServerMetrics()
    for attribute, value in values.items():
        setattr(metrics, attribute, value)
    return SimpleNamespace(name=name, state=state, metrics=metrics)


@pytest.fixture
def fleet() -> SimpleNamespace:
    return SimpleNamespace(
        servers={
            "plain": server(
                "plain", ServerState.READY, requests=3, completion_tokens_total=42,
                rss_bytes=1_621_442_560, cpu_percent=12.5, uptime_s=3.25,
            ),
            ODD: server(ODD, ServerState.FAILED),
        }
    )  # fmt: skip


async def scrape(fleet: SimpleNamespace, method: str = "GET", **headers: str) -> httpx.Response:
    return await scrape_endpoint(MetricsEndpoint(fleet), method, **headers)


async def scrape_endpoint(endpoint: MetricsEndpoint, method: str = "GET", **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=endpoint)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.request(method, "/metrics", headers=headers)


async def test_text_format_per_profile(fleet: SimpleNamespace) -> None:
    response = await scrape(fleet)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = response.text.splitlines()
    assert lines[:2] == [
        "# HELP mlxui_server_state Server state per profile (1 on the current state's line).",
        "# TYPE mlxui_server_state gauge",
    ]
    assert "# TYPE mlxui_server_requests_total counter" in lines
    assert "# HELP mlxui_server_requests_total Requests answered through the gateway." in lines
    assert 'mlxui_server_state{profile="we\\"ird\\\\na\\nme",state="failed"} 1.0' in lines

    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert [f.type for f in families.values()].count("counter") == 4  # requests, tokens x2, evictions
    samples = {
        (s.name, s.labels["profile"], s.labels.get("state")): s.value
        for family in families.values()
        for s in family.samples
    }
    assert samples[("mlxui_server_state", "plain", "ready")] == 1
    assert samples[("mlxui_server_state", "plain", "stopped")] == 0
    assert (
        sum(v for (name, profile, _), v in samples.items() if (name, profile) == ("mlxui_server_state", ODD))
        == 1
    )
    assert samples[("mlxui_server_up", "plain", None)] == 1 and samples[("mlxui_server_up", ODD, None)] == 0
    assert samples[("mlxui_server_requests_total", "plain", None)] == 3
    assert samples[("mlxui_server_completion_tokens_total", "plain", None)] == 42
    assert samples[("mlxui_server_memory_rss_bytes", "plain", None)] == 1_621_442_560
    assert samples[("mlxui_server_uptime_seconds", "plain", None)] == 3.25
    assert samples[("mlxui_server_evictions_total", "plain", None)] == 0
    assert ("mlxui_server_memory_rss_bytes", ODD, None) not in samples  # not running: no fake 0
    assert not any(name == "mlxui_server_gpu_memory_bytes" for name, _, _ in samples)  # no GPU: a gap


async def test_openmetrics_when_the_scraper_asks(fleet: SimpleNamespace) -> None:
    response = await scrape(fleet, accept="application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")
    assert 'mlxui_server_requests_total{profile="plain"} 3.0' in response.text.splitlines()


async def test_profiles_are_read_at_scrape_time_and_only_get_is_answered(fleet: SimpleNamespace) -> None:
    endpoint = MetricsEndpoint(fleet)
    assert "later" not in (await scrape_endpoint(endpoint)).text
    fleet.servers["later"] = server("later", ServerState.STOPPED)
    fleet.servers["plain"].metrics.requests = 4
    text = (await scrape_endpoint(endpoint)).text
    assert 'mlxui_server_up{profile="later"} 0.0' in text
    assert 'mlxui_server_requests_total{profile="plain"} 4.0' in text
    refused = await scrape(fleet, "POST")
    assert refused.status_code == 405 and "mlxui_server" not in refused.text
