"""What a model server really holds in memory, per process, where the OS can say better than RSS.

On macOS the model's weights and KV cache live in Metal buffers in unified memory. Resident size
(RSS) misses much of that (IOKit-backed memory) and counts clean, reclaimable file pages instead.
The kernel's own ledger is the *physical footprint*: dirty and compressed memory plus IOKit (Metal)
memory; Activity Monitor's Memory column and the memory-pressure killer use it. It is read with
`proc_pid_rusage` from libproc, which a process may call for its own children (same user; no
`task_for_pid` rights needed). Elsewhere there is no such ledger and the sampler keeps using RSS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

RUSAGE_INFO_V0 = 0  # the oldest flavour; it already carries ri_phys_footprint
_COUNTERS = (
    "ri_user_time", "ri_system_time", "ri_pkg_idle_wkups", "ri_interrupt_wkups", "ri_pageins",
    "ri_wired_size", "ri_resident_size", "ri_phys_footprint", "ri_proc_start_abstime", "ri_proc_exit_abstime",
)  # fmt: skip

Footprint = Callable[[int], int | None]  # pid -> bytes, or None when it cannot be read


class RusageInfoV0(ctypes.Structure):
    """`struct rusage_info_v0` from <sys/resource.h>: a 16-byte UUID, then 64-bit counters."""

    _fields_ = [("ri_uuid", ctypes.c_uint8 * 16), *((name, ctypes.c_uint64) for name in _COUNTERS)]


def footprint_reader(platform: str = sys.platform) -> Footprint | None:
    """A reader of physical footprints on macOS; None elsewhere (or when libproc is missing)."""
    if platform != "darwin":
        return None
    path = ctypes.util.find_library("proc")
    if path is None:
        log.warning("libproc not found: server memory is shown as RSS, which misses Metal buffers")
        return None
    libproc = ctypes.CDLL(path, use_errno=True)
    call = libproc.proc_pid_rusage
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(RusageInfoV0)]
    call.restype = ctypes.c_int

    def read(pid: int) -> int | None:
        info = RusageInfoV0()
        if call(pid, RUSAGE_INFO_V0, ctypes.byref(info)) != 0:
            return None  # gone, or not ours: the caller falls back to RSS
        return int(info.ri_phys_footprint)

    return read
