"""The profile editor's "Run on several processes or machines" part: ranks, hosts, backend,
hostfile, remote Python and mode, folded away so the simple form stays simple (docs/distributed.md)."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from mlxui.ui.testid import testid

INTRO = (
    "MLX's own engine (mlx.launch) splits the model over several processes: tensor parallel by "
    "default. More ranks on one Mac do not make it faster; joining Macs lets a model run that does "
    "not fit one."
)
HOSTS_HINT = "This Mac first (rank 0 answers here), then the others, by IP for the ring backend."
BACKENDS = {"ring": "ring (Ethernet, TB IP)", "jaccl": "jaccl (Thunderbolt 5 RDMA)", "mpi": "mpi"}
MODES = {"tensor": "tensor parallel (every model)", "pipeline": "pipeline (some families)"}


class DistributedFields(ui.expansion):
    """`fields` join the editor's (so a refused field shows its sentence under it); `fill` and
    `values` translate between a profile and the inputs."""

    def __init__(self) -> None:
        super().__init__("Run on several processes or machines", icon="hub")
        self.classes("w-full").props("dense header-class='text-sm px-0'")
        testid(self, "profile-distributed")
        self.fields: dict[str, ui.element] = {}
        with self, ui.column().classes("w-full gap-2"):
            ui.label(INTRO).classes("text-xs text-slate-500")
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.fields["ranks"] = _outlined(ui.number("Ranks per host", format="%d", min=1), "ranks")
                self.fields["ranks"].props["placeholder"] = "1 (not distributed)"
                self.fields["hosts"] = _outlined(ui.input("Hosts (comma-separated)"), "hosts")
                self.fields["hosts"].classes("grow-[2]").props["placeholder"] = "none: all on this Mac"
            ui.label(HOSTS_HINT).classes("text-xs text-slate-500 -mt-1")
            # A refused field is outlined in red; its sentence (a head count can be long) goes here.
            self.problem = testid(ui.label().classes("text-xs text-negative"), "profile-distributed-problem")
            self.problem.set_visibility(False)
            with ui.row().classes("w-full gap-2 no-wrap"):
                backend = ui.select(BACKENDS, label="Backend", value="ring")
                self.fields["backend"] = _outlined(backend, "backend")
                self.fields["parallel"] = _outlined(
                    ui.select(MODES, label="Mode", value="tensor"), "parallel"
                )
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.fields["hostfile"] = _outlined(ui.input("Hostfile (instead of hosts)"), "hostfile")
                self.fields["hostfile"].props["placeholder"] = "from mlx.distributed_config"
                self.fields["remote_python"] = _outlined(
                    ui.input("Python on the other hosts"), "remote-python"
                )
                self.fields["remote_python"].props["placeholder"] = "this Mac's path"

    def fill(self, values: dict[str, Any]) -> None:
        hosts = values.get("hosts")
        self.show_errors({})
        self.fields["ranks"].value = values.get("ranks")
        self.fields["hosts"].value = ", ".join(hosts) if isinstance(hosts, list) else hosts or ""
        self.fields["backend"].value = values.get("backend") or "ring"
        self.fields["parallel"].value = values.get("parallel") or "tensor"
        self.fields["hostfile"].value = values.get("hostfile") or ""
        self.fields["remote_python"].value = values.get("remote_python") or ""
        self.value = bool(values.get("ranks") or hosts or values.get("hostfile"))  # open when in use

    def show_errors(self, errors: dict[str, str]) -> None:
        """Outline the refused fields and say why under the hosts; open the part if any."""
        mine = {name: message for name, message in errors.items() if name in self.fields}
        for name, element in self.fields.items():
            element.error = "" if name in mine else None
        self.problem.text = " ".join(mine.values())
        self.problem.set_visibility(bool(mine))
        if mine:
            self.value = True

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, element in self.fields.items():
            value = element.value
            if isinstance(value, str):
                value = value.strip() or None
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            out[name] = value
        return out


def _outlined(element: ui.element, marker: str) -> Any:
    element.props("outlined dense stack-label hide-bottom-space").classes("grow basis-0 min-w-0")
    return testid(element, f"profile-{marker}")
