"""`mlxui models add PATH` / `forget PATH`: folders outside the HF cache, checked, listed, forgotten."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness.app_process import app_env
from tests.harness.fixtures_models import ModelDirs


def mlxui(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = app_env(home, {"HF_HUB_CACHE": str(home / "hf-cache")})
    return subprocess.run([sys.executable, "-m", "mlxui", "models", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def listed(home: Path) -> list[dict]:
    result = mlxui(home, "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_add_a_folder_by_relative_path_then_forget_it(model_dirs: ModelDirs, tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = shutil.copytree(model_dirs.plain, tmp_path / "models" / "my-plain")
    added = mlxui(home, "add", "models/my-plain", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith(f"Added {folder} (")
    assert [(m["name"], m["source"], m["path"]) for m in listed(home)] == [
        ("my-plain", "folder", str(folder))
    ]
    assert mlxui(home, "add", str(folder)).returncode == 0, "adding it twice is fine"
    assert len(listed(home)) == 1

    forgot = mlxui(home, "forget", str(folder))
    assert (forgot.returncode, forgot.stdout) == (0, f"Forgot {folder}; its files are still there.\n")
    assert listed(home) == [] and (folder / "config.json").is_file()


def test_folders_that_are_not_models_get_one_line(model_dirs: ModelDirs, tmp_path: Path) -> None:
    home = tmp_path / "home"
    no_weights = shutil.copytree(model_dirs.plain, tmp_path / "no-weights")
    for weights in no_weights.glob("*.safetensors"):
        weights.unlink()
    (tmp_path / "empty").mkdir()
    for path, message in (
        (tmp_path / "missing", f"{tmp_path / 'missing'} is not a folder."),
        (
            tmp_path / "empty",
            f"{tmp_path / 'empty'} has no config.json: it does not look like a model folder.",
        ),
        (no_weights, f"{no_weights} has no weights (*.safetensors): MLX servers load safetensors files."),
    ):
        result = mlxui(home, "add", str(path))
        assert (result.returncode, result.stderr) == (2, message + "\n"), result
    assert listed(home) == []
    unknown = mlxui(home, "forget", str(tmp_path / "empty"))
    assert (unknown.returncode, unknown.stderr) == (
        1,
        f"{tmp_path / 'empty'} is not in the list of local folders.\n",
    )
