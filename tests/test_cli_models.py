"""`mlxui models ...` as a user types it: a real process each time, the fake Hub as the Hub, a
fresh MLXUI_HOME and HF cache. Every failure must be one line on stderr, never a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mlxui.cli.models_commands import OFFLINE_LINE
from mlxui.hub import cache
from mlxui.hub.errors import gated_message
from tests.harness.downloads import kept_bytes, weight_gets
from tests.harness.fakehub import FakeHub
from tests.harness.fixtures_hub import HubEnv
from tests.harness.fixtures_models import HubCache, ModelDirs
from tests.test_cli import run_into_closed_pipe

WEIGHTS = 6 * 1024 * 1024 + 77  # odd: no chunk boundary lines up with the end


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with 6 MB of (random) weights: slow enough to interrupt when throttled."""
    folder = tmp_path_factory.mktemp("cli-models") / "big"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}')
    (folder / "tokenizer_config.json").write_text('{"eos_token": "</s>"}')
    (folder / "model.safetensors").write_bytes(os.urandom(WEIGHTS))
    return folder


def cli_env(hf_env: HubEnv, home: Path, cache_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_", "HF_"))}
    env.pop("HUGGING_FACE_HUB_TOKEN", None)
    env |= {
        "MLXUI_HOME": str(home), "HF_ENDPOINT": hf_env.endpoint, "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(hf_env.hf_home), "HF_HUB_CACHE": str(cache_dir or hf_env.cache_dir),
        "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1",
        "MLXUI_PORT": str(NO_APP_PORT),  # `pull` hands off to a running app: here, none
    }  # fmt: skip
    return env


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


NO_APP_PORT = _closed_port()


def mlxui(hf_env: HubEnv, home: Path, *args: str, cache_dir: Path | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "mlxui", "models", *args],
        env=cli_env(hf_env, home, cache_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def serve(hub: FakeHub, folder: Path, **options: object) -> str:
    repo_id = f"cli/{folder.name}-{uuid.uuid4().hex[:8]}"
    hub.add_repo(repo_id, folder, **options)
    return repo_id


def test_search_prints_a_table_and_json(hf_env: HubEnv, tmp_path: Path) -> None:
    author = f"cli-{uuid.uuid4().hex[:8]}"
    for name, downloads in (("small-4bit", 10), ("large-4bit", 30), ("medium-4bit", 20)):
        hf_env.hub.add_listing_only(f"{author}/{name}", downloads=downloads, library_name="mlx")
    result = mlxui(hf_env, tmp_path, "search", "4bit", "--author", author, "--json")
    assert result.returncode == 0, result.stderr
    assert [m["repo_id"] for m in json.loads(result.stdout)] == [
        f"{author}/large-4bit", f"{author}/medium-4bit", f"{author}/small-4bit",
    ]  # fmt: skip
    text = mlxui(hf_env, tmp_path, "search", "--author", author, "--limit", "2", "--sort", "downloads")
    assert text.returncode == 0, text.stderr
    rows = text.stdout.splitlines()
    assert rows[0].startswith("MODEL") and len(rows) == 3
    assert rows[1].startswith(f"{author}/large-4bit") and "MLX" in rows[1]


def test_info_of_a_hub_repo_then_from_the_database(
    hf_env: HubEnv, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    repo_id = serve(hf_env.hub, model_dirs.think_tokens)
    result = mlxui(hf_env, tmp_path, "info", repo_id, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("repo_id", "architecture", "model_type", "parameters", "quant_bits", "context_length",
                "vision", "tools", "thinking", "size_bytes", "fit", "memory"):  # fmt: skip
        assert key in data
    assert data["repo_id"] == repo_id and data["source"] == "hub"
    assert data["thinking"] is True and data["vision"] is False
    assert data["size_bytes"] == sum(p.stat().st_size for p in model_dirs.think_tokens.iterdir())
    assert data["fit"] in ("fits", "tight", "wont_fit") and data["memory"]["total_bytes"] > 0

    hf_env.hub.requests.clear()
    text = mlxui(hf_env, tmp_path, "info", repo_id)
    assert text.returncode == 0, text.stderr
    assert hf_env.hub.requests == []  # MLXUI_HOME's database answered
    assert text.stdout.startswith(repo_id) and text.stderr == ""
    assert "LlamaForCausalLM" in text.stdout and "thinking" in text.stdout


def test_info_of_a_local_folder(hf_env: HubEnv, model_dirs: ModelDirs, tmp_path: Path) -> None:
    result = mlxui(hf_env, tmp_path, "info", str(model_dirs.vlm), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "local" and data["path"] == str(model_dirs.vlm)
    assert data["vision"] is True and data["parameters"] and not data["parameters_estimated"]
    assert hf_env.hub.requests == []


def test_info_into_a_closed_pipe_ends_quietly(hf_env: HubEnv, model_dirs: ModelDirs, tmp_path: Path) -> None:
    """`mlxui models info X --json | head -1` ended with a BrokenPipe traceback."""
    args = ["models", "info", str(model_dirs.vlm), "--json"]
    code, stderr = run_into_closed_pipe(args, cli_env(hf_env, tmp_path))
    assert (code, stderr) == (1, "")


def test_pull_list_rm_round_trip(hf_env: HubEnv, big_model: Path, tmp_path: Path) -> None:
    repo_id = serve(hf_env.hub, big_model)
    pulled = mlxui(hf_env, tmp_path, "pull", repo_id)
    assert pulled.returncode == 0, pulled.stderr
    assert "100.0%" in pulled.stdout and f"Downloaded {repo_id}" in pulled.stdout
    (model,) = cache.cached_revisions(hf_env.cache_dir)
    assert _sha256(model.path / "model.safetensors") == _sha256(big_model / "model.safetensors")

    listed = mlxui(hf_env, tmp_path, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["repo_id"] == repo_id and entry["complete"] and entry["size_on_disk"] >= WEIGHTS
    assert repo_id in mlxui(hf_env, tmp_path, "list").stdout

    refused = mlxui(hf_env, tmp_path, "rm", repo_id)  # no TTY, no --yes
    assert refused.returncode == 2
    assert one_line_error(refused) == f"Refusing to delete {repo_id} without confirmation: add --yes"
    assert cache.repo_dir(hf_env.cache_dir, repo_id).exists()

    removed = mlxui(hf_env, tmp_path, "rm", repo_id, "--yes")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith(f"Deleted {repo_id}")
    assert json.loads(mlxui(hf_env, tmp_path, "list", "--json").stdout) == []


def test_ctrl_c_keeps_the_bytes_and_the_next_pull_fetches_only_the_rest(
    hf_env: HubEnv, big_model: Path, tmp_path: Path
) -> None:
    hub = hf_env.hub
    repo_id = serve(hub, big_model)
    hub.throttle_bps = 2_000_000
    process = subprocess.Popen(
        [sys.executable, "-m", "mlxui", "models", "pull", repo_id],
        env=cli_env(hf_env, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        blobs = cache.repo_dir(hf_env.cache_dir, repo_id) / "blobs"
        deadline = time.monotonic() + 30
        while kept_bytes(blobs) < 1_500_000:
            assert process.poll() is None and time.monotonic() < deadline, "the download never got going"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert f"Run `mlxui models pull {repo_id}` again to resume." in stderr.strip().splitlines()[-1]
    assert f"{repo_id}: " in stdout and "%" in stdout  # periodic progress lines without a TTY

    on_disk = kept_bytes(blobs)  # what the range maps say arrived (partial files are full-length)
    assert 1_500_000 <= on_disk < WEIGHTS
    hub.throttle_bps = None
    served_before = hub.bytes_served(repo_id)
    again = mlxui(hf_env, tmp_path, "pull", repo_id)
    assert again.returncode == 0, again.stderr
    total = sum(p.stat().st_size for p in big_model.iterdir())
    assert hub.bytes_served(repo_id) - served_before == total - on_disk  # nothing fetched twice
    (model,) = cache.cached_revisions(hf_env.cache_dir)
    assert _sha256(model.path / "model.safetensors") == _sha256(big_model / "model.safetensors")


def test_ctrl_c_interrupts_a_pull_started_with_sigint_ignored(
    hf_env: HubEnv, big_model: Path, tmp_path: Path
) -> None:
    """A shell starts a background job's commands with SIGINT ignored (`mlxui models pull x &` in a
    script, `scripts/test &`); mlxui restores Ctrl-C itself."""
    repo_id = serve(hf_env.hub, big_model)
    hf_env.hub.stall_after_bytes, hf_env.hub.stall_seconds = 1_000_000, 30.0  # then silent: it waits
    process = subprocess.Popen(
        [sys.executable, "-m", "mlxui", "models", "pull", repo_id],
        env=cli_env(hf_env, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # what the shell does
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ((gets := weight_gets(hf_env.hub, repo_id)) and gets[0].bytes_sent == 1_000_000):
            assert process.poll() is None and time.monotonic() < deadline, "the download never got going"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("Interrupted: "), stderr


def test_offline_search_fails_in_one_line_and_list_still_works(
    hf_env: HubEnv, hub_cache: HubCache, tmp_path: Path
) -> None:
    hf_env.hub.offline = True
    started = time.monotonic()
    result = mlxui(hf_env, tmp_path, "search", "qwen", cache_dir=hub_cache.cache_dir)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert one_line_error(result).startswith(OFFLINE_LINE)
    listed = mlxui(hf_env, tmp_path, "list", cache_dir=hub_cache.cache_dir)
    assert listed.returncode == 0, listed.stderr
    for repo_id in hub_cache.repos.values():
        assert repo_id in listed.stdout
    assert one_line_error(mlxui(hf_env, tmp_path, "pull", "cli/anything")).startswith(OFFLINE_LINE)


@pytest.mark.parametrize("command", ["info", "pull"])
def test_missing_repo_is_one_clear_line(hf_env: HubEnv, tmp_path: Path, command: str) -> None:
    result = mlxui(hf_env, tmp_path, command, "cli/no-such-model")
    assert result.returncode == 1
    assert one_line_error(result).startswith("No public model named cli/no-such-model on the Hub")


def test_gated_repo_asks_for_a_token(hf_env: HubEnv, model_dirs: ModelDirs, tmp_path: Path) -> None:
    repo_id = serve(hf_env.hub, model_dirs.plain, gated=True)
    for command in ("info", "pull"):
        result = mlxui(hf_env, tmp_path, command, repo_id)
        assert result.returncode == 1
        line = one_line_error(result)
        assert line.startswith(f"{repo_id} is gated") and "HF_TOKEN" in line
    assert cache.cached_revisions(hf_env.cache_dir) == []


def test_a_gate_met_while_downloading_reads_the_same(
    hf_env: HubEnv, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    """The card was read with a token (the details are cached in MLXUI_HOME), so `pull` without one
    meets the gate only in the download itself: one mapping, the same sentence as `info` says."""
    repo_id = serve(hf_env.hub, model_dirs.plain, gated=True)
    with_token = subprocess.run(
        [sys.executable, "-m", "mlxui", "models", "info", repo_id],
        env=cli_env(hf_env, tmp_path) | {"HF_TOKEN": hf_env.token},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert with_token.returncode == 0, with_token.stderr
    hf_env.hub.requests.clear()
    result = mlxui(hf_env, tmp_path, "pull", repo_id)
    assert result.returncode == 1
    assert one_line_error(result) == gated_message(repo_id)
    assert any("/resolve/" in r.path for r in hf_env.hub.requests), "the download itself met the gate"
    assert hf_env.hub.bytes_served(repo_id) == 0


@pytest.mark.parametrize("command", ["pull", "rm"])
def test_bad_repo_id_is_refused(hf_env: HubEnv, tmp_path: Path, command: str) -> None:
    result = mlxui(hf_env, tmp_path, command, "../../etc/passwd")
    assert result.returncode == 2
    assert one_line_error(result) == (
        "'../../etc/passwd' is not a model id: use the form org/name, e.g. mlx-community/Qwen3-0.6B-4bit."
    )
    assert hf_env.hub.requests == []


def test_rm_of_a_model_that_is_not_there(hf_env: HubEnv, tmp_path: Path) -> None:
    result = mlxui(hf_env, tmp_path, "rm", "cli/not-here", "--yes")
    assert result.returncode == 1
    assert one_line_error(result) == "cli/not-here is not downloaded (see `mlxui models list`)"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
