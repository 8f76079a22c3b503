"""Metrics: the sampler on a real server process, the GPU readers (ioreg sample, NVML guarded)."""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import shutil
import subprocess
import sys
import time
import types
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from mlxui.config import Config
from mlxui.db import close_db, init_db
from mlxui.servers import gpu
from mlxui.servers.gpu import (
    DeviceReading,
    GpuReading,
    IoregSampler,
    detect_gpu_sampler,
    nvml_sampler,
    parse_ioreg,
)
from mlxui.servers.metrics import MetricsSampler
from mlxui.servers.state import HISTORY_SERIES
from mlxui.servers.supervisor import ManagedServer, Supervisor
from tests.harness.fixtures_models import HubCache

SAMPLE = Path(__file__).parent / "data" / "ioreg_sample.plist"
NO_GPU_HERE = sys.platform != "darwin" and shutil.which("nvidia-smi") is None


# --- GPU readers ---------------------------------------------------------------------------------


def test_ioreg_sample_gives_apple_gpu_utilisation_and_memory() -> None:
    reading = parse_ioreg(SAMPLE.read_bytes())
    assert reading == GpuReading((DeviceReading("Apple M2", 37.0, 1_621_442_560, None),))
    # Apple GPUs report device-wide figures only: every server shows the device's numbers.
    assert reading.for_pids({123}) == (37.0, 1_621_442_560)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a plist",
        b'<?xml version="1.0"?><plist version="1.0"><array/></plist>',
        b'<?xml version="1.0"?><plist version="1.0"><array><dict><key>IOClass</key>'
        b"<string>AGXAcceleratorG14G</string></dict></array></plist>",
    ],
    ids=["empty", "garbage", "no-accelerator", "no-statistics"],
)
def test_ioreg_output_without_statistics_is_unknown_not_zero(data: bytes) -> None:
    assert parse_ioreg(data) is None


def test_ioreg_missing_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "IOREG_COMMAND", ["/nonexistent/ioreg", "-a"])
    assert IoregSampler().sample() is None


def test_without_nvidia_ml_py_there_is_no_nvml_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert nvml_sampler() is None


class FakeNVMLError(Exception):
    pass


def fake_pynvml(*, init_fails: bool = False) -> types.ModuleType:
    """A stand-in for the third-party nvidia-ml-py module: one GPU, two processes."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = FakeNVMLError
    nvml.calls = []

    def init() -> None:
        if init_fails:
            raise FakeNVMLError("Driver Not Loaded")

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: nvml.calls.append("shutdown")
    nvml.nvmlDeviceGetCount = lambda: 1
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=63, memory=20)
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=9_000, total=80_000)
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda h: [
        types.SimpleNamespace(pid=101, usedGpuMemory=4_000),
        types.SimpleNamespace(pid=202, usedGpuMemory=None),  # withheld by the driver
    ]

    def graphics(handle: str) -> list:
        raise FakeNVMLError("Not Supported")

    nvml.nvmlDeviceGetGraphicsRunningProcesses = graphics
    return nvml


def test_nvml_reading_attributes_memory_to_the_servers_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    sampler = nvml_sampler()
    assert sampler is not None
    reading = sampler.sample()
    assert reading.for_pids({101, 5}) == (63.0, 4_000)
    assert reading.for_pids({202}) == (None, 0)  # on no device we know of: no utilisation to claim
    sampler.close()
    assert module.calls == ["shutdown"]


def test_nvml_without_a_driver_is_no_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_fails=True))
    assert nvml_sampler() is None


@pytest.mark.skipif(not NO_GPU_HERE, reason="this machine has a GPU")
def test_no_gpu_sampler_on_a_machine_without_gpu() -> None:
    if importlib.util.find_spec("pynvml") is None:
        assert detect_gpu_sampler() is None
    else:  # nvidia-ml-py installed, but no driver: NVML init fails
        assert detect_gpu_sampler() is None


# --- the sampler on a real server ----------------------------------------------------------------


@pytest.fixture
async def running(tmp_path: Path, hub_cache: HubCache) -> AsyncIterator[tuple[Supervisor, ManagedServer]]:
    await init_db(tmp_path / "mlxui.sqlite3")
    config = Config(home=tmp_path / "home", hf_cache=hub_cache.cache_dir)
    sup = Supervisor(config, sampler_interval=0.25)
    await sup.profiles.create({"name": "endless", "model": "mlxui-test/scripted-endless"})
    await sup.start_up()
    server = await sup.start("endless")
    try:
        yield sup, server
    finally:
        await sup.shut_down(stop_servers=True)
        await close_db()


async def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_sampler_reports_memory_cpu_uptime_and_tokens_for_the_real_process(
    running: tuple[Supervisor, ManagedServer],
) -> None:
    sup, server = running
    m = server.metrics
    await wait_for(lambda: m.cpu_percent is not None, timeout=2.0)  # the 2nd sample of the pid
    assert m.rss_bytes > 20 * 1024 * 1024  # a python process with mlx loaded
    assert m.uptime_s > 0
    if NO_GPU_HERE:
        assert (m.gpu_util, m.gpu_mem_bytes) == (None, None)  # "n/a", never a fake 0
    assert len(m.history["rss_bytes"]) >= 2 and set(m.history) == set(HISTORY_SERIES)

    # Generating makes the server busy: the CPU figure must show it (the seed app showed 0).
    body = {
        "model": server.upstream_model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1500,
    }
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        request = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        peak = 0.0
        while not request.done():
            peak = max(peak, m.cpu_percent or 0.0)
            await asyncio.sleep(0.05)
        assert (await request).status_code == 200
    assert peak > 20.0

    # tokens/s comes from the gateway's counts and falls back to 0 when nothing streams.
    server.record_stream_tokens(100)
    await wait_for(lambda: m.tokens_per_s > 0, timeout=1.0)
    assert m.tokens_per_s == pytest.approx(400, rel=0.5)  # 100 tokens in one 0.25 s tick
    await wait_for(lambda: m.tokens_per_s == 0.0, timeout=1.0)

    await sup.stop("endless")
    assert (m.rss_bytes, m.cpu_percent, m.uptime_s) == (None, None, None)


# --- what a process holds: the macOS footprint where the OS has one ------------------------------


def test_the_footprint_reader_exists_only_on_macos() -> None:
    from mlxui.servers.footprint import RusageInfoV0, footprint_reader

    assert footprint_reader("linux") is None
    # struct rusage_info_v0: a 16-byte uuid and ten 64-bit counters, phys_footprint the eighth
    assert ctypes.sizeof(RusageInfoV0) == 16 + 10 * 8
    assert RusageInfoV0.ri_phys_footprint.offset == 16 + 7 * 8


def test_the_sampler_counts_the_footprint_instead_of_rss_when_it_has_one() -> None:
    """On macOS a server's Metal buffers are in its footprint, not its RSS: the tree's memory must
    be the sum of footprints (falling back to RSS for a process the reader cannot read)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        me = psutil.Process()
        readings = {me.pid: 7_000_000_000}  # as if this process held 7 GB of Metal buffers
        sampler = MetricsSampler(None, footprint=readings.get)
        key = (me.pid, me.create_time())
        trees, _ = sampler._measure({"me": key})
        own_children = sum(p.memory_info().rss for p in me.children(recursive=True))
        assert own_children > 0
        assert trees["me"].rss_bytes == pytest.approx(7_000_000_000 + own_children, abs=own_children // 2)
        assert MetricsSampler(None, footprint=None)._measure({"me": key})[0]["me"].rss_bytes < 7_000_000_000
    finally:
        child.kill()
        child.wait()
