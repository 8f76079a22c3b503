"""GPU readings: NVML (NVIDIA, per-process memory) or macOS `ioreg` (Apple GPU, device-wide).

Where neither is available the sampler is None and the UI shows "n/a": a GPU number we do not
know is never reported as 0. All calls block (NVML, a subprocess): run them in a thread.
"""

from __future__ import annotations

import logging
import plistlib
import shutil
import subprocess
import sys
import xml.parsers.expat
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

logger = logging.getLogger(__name__)

IOREG_COMMAND = ["ioreg", "-a", "-r", "-d", "1", "-c", "IOAccelerator"]
IOREG_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class DeviceReading:
    name: str
    util_percent: float | None  # the whole device
    used_bytes: int | None  # the whole device
    per_pid_bytes: dict[int, int] | None = None  # None: the platform cannot attribute memory


@dataclass(frozen=True)
class GpuReading:
    devices: tuple[DeviceReading, ...]

    def for_pids(self, pids: Iterable[int]) -> tuple[float | None, int | None]:
        """(utilisation %, memory bytes) to show for a server whose process tree is `pids`.

        With per-process data (NVML): the memory of those processes, and the utilisation of the
        devices they use (None when they use none). Without (macOS): the device's figures, since
        Apple GPUs report only device-wide numbers.
        """
        pids = set(pids)
        util: float | None = None
        mem: int | None = None
        for device in self.devices:
            if device.per_pid_bytes is None:
                util = _max(util, device.util_percent)
                mem = device.used_bytes if mem is None else mem + (device.used_bytes or 0)
                continue
            mine = [b for pid, b in device.per_pid_bytes.items() if pid in pids]
            mem = (mem or 0) + sum(mine)
            if mine:
                util = _max(util, device.util_percent)
        return util, mem


class GpuSampler(Protocol):
    name: str

    def sample(self) -> GpuReading | None: ...

    def close(self) -> None: ...


def detect_gpu_sampler() -> GpuSampler | None:
    """The sampler for this machine, or None when no GPU can be read."""
    if sys.platform == "darwin":
        return IoregSampler() if shutil.which("ioreg") else None
    return nvml_sampler()


# --- macOS -------------------------------------------------------------------------------------


class IoregSampler:
    name = "ioreg"

    def sample(self) -> GpuReading | None:
        try:
            done = subprocess.run(IOREG_COMMAND, capture_output=True, timeout=IOREG_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.debug("ioreg failed: %s", exc)
            return None
        return parse_ioreg(done.stdout) if done.returncode == 0 else None

    def close(self) -> None:
        return None


def parse_ioreg(data: bytes) -> GpuReading | None:
    """Read `ioreg -a -r -d 1 -c IOAccelerator` output: each accelerator's PerformanceStatistics."""
    try:
        root = plistlib.loads(data)
    except (plistlib.InvalidFileException, xml.parsers.expat.ExpatError, ValueError) as exc:
        logger.debug("ioreg output is not a plist: %s", exc)
        return None
    entries = root if isinstance(root, list) else [root]
    devices = []
    for entry in entries:
        stats = entry.get("PerformanceStatistics") if isinstance(entry, dict) else None
        if not isinstance(stats, dict):
            continue
        name = entry.get("model") or entry.get("IOClass") or "GPU"
        util = _number(stats.get("Device Utilization %"))
        used = _number(stats.get("In use system memory"))
        devices.append(DeviceReading(str(name), util, int(used) if used is not None else None))
    return GpuReading(tuple(devices)) if devices else None


# --- NVIDIA ------------------------------------------------------------------------------------


def nvml_sampler() -> NvmlSampler | None:
    """An NVML sampler when nvidia-ml-py is installed and NVML finds a GPU, else None."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # no driver, no device
        logger.debug("NVML unavailable: %s", exc)
        return None
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError as exc:
        logger.debug("NVML lists no device: %s", exc)
        handles = []
    if not handles:
        pynvml.nvmlShutdown()
        return None
    return NvmlSampler(pynvml, handles)


class NvmlSampler:
    name = "nvml"

    def __init__(self, nvml: ModuleType, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles

    def sample(self) -> GpuReading | None:
        return GpuReading(tuple(self._device(i, h) for i, h in enumerate(self._handles)))

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:
            logger.debug("NVML shutdown: %s", exc)

    def _device(self, index: int, handle: Any) -> DeviceReading:
        nvml = self._nvml
        util = used = None
        per_pid: dict[int, int] = {}
        try:
            util = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nvml.NVMLError as exc:
            logger.debug("NVML utilisation of GPU %d: %s", index, exc)
        try:
            used = int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
        except nvml.NVMLError as exc:
            logger.debug("NVML memory of GPU %d: %s", index, exc)
        for query in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
            try:
                processes = query(handle)
            except nvml.NVMLError as exc:
                logger.debug("NVML processes of GPU %d: %s", index, exc)
                continue
            for proc in processes:
                if proc.usedGpuMemory is not None:  # None when the driver withholds it
                    # A process using CUDA and graphics is listed twice with the same memory.
                    per_pid[proc.pid] = max(per_pid.get(proc.pid, 0), int(proc.usedGpuMemory))
        return DeviceReading(f"GPU {index}", util, used, per_pid)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
