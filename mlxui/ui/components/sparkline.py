"""A tiny line chart of one metric's recent history, redrawn when the sampler ticks.

Only the data array travels (via setOption), rounded and capped at WINDOW points, so a tile
costs a few hundred bytes per second of websocket traffic."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import binding, ui

from mlxui.servers.state import ServerMetrics

WINDOW = 60  # points shown: the last minute at 1 Hz (five minutes stay in memory)


class Sparkline(ui.echart):
    def __init__(
        self, metrics: ServerMetrics, series: str, *, color: str, scale: Callable[[float], float]
    ) -> None:
        super().__init__(
            {
                "animation": False,
                "grid": {"left": 0, "right": 0, "top": 2, "bottom": 2},
                "xAxis": {"type": "category", "show": False, "boundaryGap": False},
                "yAxis": {"type": "value", "show": False, "min": 0},
                "series": [
                    {
                        "type": "line",
                        "data": [],
                        "showSymbol": False,
                        "smooth": True,
                        "lineStyle": {"width": 1.5, "color": color},
                        "areaStyle": {"color": color, "opacity": 0.15},
                    }
                ],
            }
        )
        self.classes("w-full h-10")
        self.metrics, self.series, self.scale = metrics, series, scale
        self._sent: list[float | None] = []
        self.last_tick = 0
        # The binding fires once per sample (metrics.tick); nothing here runs on a timer.
        binding.bind_from(self, "last_tick", metrics, "tick", backward=self._redraw)

    def _redraw(self, tick: int) -> int:
        points = list(self.metrics.history.get(self.series, ()))[-WINDOW:]
        data = [None if v is None else round(self.scale(v), 1) for _, v in points]
        if data != self._sent and not self.is_deleted:
            self._sent = data
            self.run_chart_method("setOption", {"series": [{"data": data}]})
        return tick
