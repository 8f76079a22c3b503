"""A model split over several processes or machines with MLX's own distributed engine.

mlxui drives `mlx.launch` (the ring backend by default, JACCL over Thunderbolt or MPI when chosen)
running `mlx_lm.server` on every rank; `mlx_lm.server` shards the model itself (tensor parallel,
or pipeline for the model families that have it) and only rank 0 answers HTTP, on this machine's
127.0.0.1. Nothing here is a home-made engine: this module decides the command line and checks what
would make the launch fail (heads that do not split, a host without the model, taken ports) before
anything is spawned. Supervision of the running group is `group_launch.py` (docs/distributed.md).

A profile is distributed when it has more than one local rank (`ranks`), `hosts`, or a `hostfile`.
`ranks` is the number of processes on each host (`mlx.launch -n`); without hosts they all run here.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from mlxui.servers.profiles import Profile

BACKENDS = ("ring", "jaccl", "mpi")
PARALLEL_MODES = ("tensor", "pipeline")
MAX_RANKS = 64
LOCAL_HOST = "127.0.0.1"  # mlx.launch starts this host's ranks without ssh
SSH_TIMEOUT_S = 5
RING_BASE_PORT = 32323  # mlx.launch's default --starting-port; each rank takes the next one
# What every rank runs (`python -c`, so no file has to exist on the remote hosts): mlx_lm.server's
# own main, imported, not run through runpy (it pickles its request class, which must live in
# mlx_lm.server), with each output line prefixed by the rank so a crash shows that rank's lines.
RANK_ENTRY = """\
import os, sys
class _Ranked:
    def __init__(self, stream, prefix):
        self._stream, self._prefix, self._fresh = stream, prefix, True
    def write(self, text):
        out = []
        for piece in text.splitlines(keepends=True):
            out.append(self._prefix + piece if self._fresh else piece)
            self._fresh = piece.endswith("\\n")
        self._stream.write("".join(out))
        self._stream.flush()
        return len(text)
    def __getattr__(self, name):
        return getattr(self._stream, name)
_prefix = "[rank " + os.environ.get("MLX_RANK", "?") + "] "
sys.stdout, sys.stderr = _Ranked(sys.stdout, _prefix), _Ranked(sys.stderr, _prefix)
sys.argv[0] = "mlx_lm.server"
from mlx_lm.server import main
main()
"""


# mlx.launch's own main, with one change: its per-rank threads `select` on the rank's stdin pipe
# for writing, which is always writable, so with a 1 s timeout they never wait and the launcher
# spins on a core for as long as the model runs (measured: 40 % of a core on 3 ranks). mlxui sends
# the ranks no input, so the threads are given no write set. Reading (the ranks' output), the
# launcher's own stdin loop, rank exits and the kill scripts are untouched.
LAUNCHER_ENTRY = """\
import select as _select
import mlx._distributed_utils.launch as launch
launch.select = lambda r, w, x, timeout=None: (_select.select(r, [], x, timeout)[0], [], [])
launch.main()
"""


def is_distributed(profile: Profile) -> bool:
    return (profile.ranks or 1) > 1 or bool(profile.hosts) or bool(profile.hostfile)


def hostfile_hosts(path: str) -> list[str]:
    """The ssh names of a hostfile (`mlx.distributed_config --output-hostfile`), in rank order."""
    data = json.loads(Path(path).read_text())
    entries = data["hosts"] if isinstance(data, dict) else data
    return [str(entry["ssh"]) for entry in entries]


def rank_hosts(profile: Profile) -> list[str]:
    """One entry per rank: the host it runs on (rank 0 first). Reads the hostfile if there is one."""
    hosts = hostfile_hosts(profile.hostfile) if profile.hostfile else list(profile.hosts or [LOCAL_HOST])
    per_host = 1 if profile.hostfile else (profile.ranks or 1)
    return [host for host in hosts for _ in range(per_host)]


def local_share(profile: Profile) -> float:
    """The part of the model this machine holds: its ranks ÷ all ranks (1.0 when not distributed).
    The memory check before a launch and the memory plan use it: a model too big for one Mac is
    the reason to join several."""
    if not is_distributed(profile):
        return 1.0
    try:
        hosts = rank_hosts(profile)
    except (OSError, ValueError, KeyError, TypeError):
        return 1.0  # the launch check says what is wrong with the hostfile
    here = this_machine_names()
    return sum(1 for host in hosts if host in here) / len(hosts) if hosts else 1.0


def head_split_problem(config: Mapping[str, Any], ranks: int, model_name: str) -> str | None:
    """Tensor parallelism shards attention heads: both head counts must divide by the ranks."""
    heads = config.get("num_attention_heads")
    kv_heads = config.get("num_key_value_heads") or heads
    if not isinstance(heads, int) or not isinstance(kv_heads, int) or ranks <= 1:
        return None
    if heads % ranks == 0 and kv_heads % ranks == 0:
        return None
    valid = [n for n in range(1, min(heads, kv_heads) + 1) if heads % n == 0 and kv_heads % n == 0]
    counts = _spoken_list(valid)
    return (
        f"{model_name} has {heads} attention heads and {kv_heads} KV heads: it splits over {counts} "
        f"ranks, not {ranks}."
    )


def pipeline_problem(config: Mapping[str, Any], ranks: int, model_name: str) -> str | None:
    """Pipeline parallelism exists only for the model families mlx_lm gives it; layers >= ranks."""
    from mlx_lm.models.pipeline import PipelineMixin  # imported on demand: it loads mlx
    from mlx_lm.utils import MODEL_REMAPPING

    model_type = str(config.get("model_type", ""))
    try:
        module = importlib.import_module(f"mlx_lm.models.{MODEL_REMAPPING.get(model_type, model_type)}")
    except ImportError:
        return f"mlx_lm does not know the model type {model_type!r} of {model_name}."
    classes = [c for c in vars(module).values() if isinstance(c, type)]
    if not any(issubclass(c, PipelineMixin) and c is not PipelineMixin for c in classes):
        return (
            f"mlx_lm has no pipeline mode for {model_type} models such as {model_name}: "
            "use tensor parallelism."
        )
    layers = config.get("num_hidden_layers")
    if isinstance(layers, int) and layers < ranks:
        return f"{model_name} has {layers} layers: a pipeline over {ranks} ranks needs at least {ranks}."
    return None


def split_problem(profile: Profile, model_folder: Path) -> str | None:
    """Whether the model can be split as the profile asks (blocking: reads config.json, the hostfile)."""
    if profile.kind != "lm":
        return "Only text models (mlx_lm.server) can run distributed; this one needs mlx_vlm.server."
    if profile.draft_model:
        return "mlx_lm.server cannot use a draft model when it runs distributed: remove the draft model."
    try:
        ranks = len(rank_hosts(profile))
        config = json.loads((model_folder / "config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"The hostfile or the model's config.json cannot be read: {exc}"
    name = model_folder.name if profile.model.startswith("/") else profile.model.rsplit("/", 1)[-1]
    name = str(config.get("_name_or_path") or name).rsplit("/", 1)[-1] or name
    if profile.parallel == "pipeline":
        return pipeline_problem(config, ranks, name)
    return head_split_problem(config, ranks, name)


def first_host_problem(hosts: list[str]) -> str | None:
    """Rank 0 answers HTTP on 127.0.0.1, so it must run on this machine."""
    if not hosts or hosts[0] in this_machine_names():
        return None
    return (
        f"The first host ({hosts[0]}) must be this machine: rank 0 serves the model here. Put this "
        "Mac's address first."
    )


def this_machine_names() -> set[str]:
    names = {LOCAL_HOST, "localhost", socket.gethostname(), socket.gethostname().split(".")[0]}
    for addresses in psutil.net_if_addrs().values():
        names.update(
            a.address.split("%")[0] for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6)
        )
    return names


def ssh_problems(hosts: list[str], model_folder: Path, python: str) -> list[str]:
    """One `ssh HOST test -e MODEL && test -x PYTHON` per remote host (argument lists, batch mode):
    a sentence per host that cannot be reached or lacks the model or the Python."""
    problems = []
    for host in dict.fromkeys(h for h in hosts if h != LOCAL_HOST):
        cmd = [
            "ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_TIMEOUT_S}", host,
            "test", "-e", _quoted(str(model_folder)), "||", "exit", "3", ";",
            "test", "-x", _quoted(python), "||", "exit", "4",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=SSH_TIMEOUT_S + 10, check=False
            )
        except FileNotFoundError:
            return ["ssh is not installed on this machine; it is needed to start ranks on other hosts."]
        except subprocess.TimeoutExpired:
            problems.append(f"{host}: no answer over ssh within {SSH_TIMEOUT_S + 10} s.")
            continue
        if done.returncode == 3:
            problems.append(
                f"{host}: the model folder {model_folder} is not there (copy it to the same path)."
            )
        elif done.returncode == 4:
            problems.append(f"{host}: no Python at {python} (set the remote Python of the profile).")
        elif done.returncode != 0:
            said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1].rstrip(".")
            problems.append(
                f"{host}: cannot be reached over ssh without a password ({said}). "
                "Copy this Mac's key there (ssh-copy-id) and try `ssh " + host + " true`."
            )
    return problems


def ring_base_port(count: int, avoid: int | None = None) -> int | None:
    """A starting port whose next `count` ports are free here (the ring backend listens on them)."""
    from mlxui.servers.launch import port_in_use

    for base in range(RING_BASE_PORT, RING_BASE_PORT + 2000, count):
        ports = range(base, base + count)
        if avoid not in ports and not any(port_in_use(p) for p in ports):
            return base
    return None


def launcher_prefix() -> list[str]:
    """`mlx.launch` (its own `main`) from this venv, run through LAUNCHER_ENTRY."""
    return [sys.executable, "-c", LAUNCHER_ENTRY]


def group_command(
    profile: Profile, server_args: list[str], *, ring_port: int, env: Mapping[str, str]
) -> list[str]:
    """`mlx.launch ... -- -c RANK_ENTRY <mlx_lm.server arguments>` (an argument list, never a shell).

    `server_args` are mlx_lm.server's flags (from --model on). The remote Python defaults to this
    one's path; the HF cache path and offline mode travel as --env (remote shells start afresh).
    """
    cmd = [*launcher_prefix(), "--backend", profile.backend or "ring", "--starting-port", str(ring_port)]
    if profile.hostfile:
        cmd += ["--hostfile", profile.hostfile]
    else:
        cmd += ["--hosts", ",".join(profile.hosts or [LOCAL_HOST]), "-n", str(profile.ranks or 1)]
    cmd += ["--python", profile.remote_python or sys.executable]
    for key in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "PYTHONUNBUFFERED"):
        if env.get(key):
            cmd += ["--env", f"{key}={env[key]}"]
    cmd += ["--", "-c", RANK_ENTRY, *server_args]
    if profile.parallel == "pipeline":
        cmd += ["--pipeline"]
    return cmd


def is_group_command(cmdline: list[str]) -> bool:
    return RANK_ENTRY in cmdline


def describe_ranks(profile: Profile) -> str:
    """For the tile: "3 ranks here" or "4 ranks: 2 here, 2 on mac-b"."""
    try:
        hosts = rank_hosts(profile)
    except (OSError, ValueError, KeyError, TypeError):
        return "distributed (hostfile unreadable)"
    here = this_machine_names()
    local = sum(1 for h in hosts if h in here)
    remote = sorted(dict.fromkeys(h for h in hosts if h not in here))
    if not remote:
        return f"{len(hosts)} ranks here"
    return f"{len(hosts)} ranks: {local} here, {len(hosts) - local} on {', '.join(remote)}"


def valid_host(text: str) -> bool:
    """A host name or an IP address, nothing a shell or ssh would read as an option."""
    if not text or text.startswith("-") or len(text) > 253:
        return False
    return is_ip(text) or all(c.isalnum() or c in ".-_@" for c in text)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _quoted(text: str) -> str:
    """ssh joins its arguments into one remote shell line: quote a path for that shell."""
    return "'" + text.replace("'", "'\\''") + "'"


def _spoken_list(numbers: list[int]) -> str:
    words = [str(n) for n in numbers]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
