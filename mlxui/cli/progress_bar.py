"""The download progress of `mlxui models pull`, drawn by tqdm: redrawn in place on a terminal,
a line every few seconds otherwise (a pipe or a log file gets lines, never carriage returns)."""

from __future__ import annotations

from typing import IO, Any

from tqdm import tqdm

_TTY_FORMAT = (
    "{desc}: {percentage:5.1f}%|{bar:24}| {n_fmt}B / {total_fmt}B  {rate_fmt}  ETA {remaining}{postfix}"
)
_LINE_FORMAT = "{desc}: {percentage:5.1f}% {n_fmt}B / {total_fmt}B  {rate_fmt}  ETA {remaining}"


class _Bar(tqdm):
    # No monitor thread: it only wakes bars that are updated rarely, and these are updated per chunk.
    monitor_interval = 0


class _Lines(_Bar):
    """tqdm without a terminal: each refresh (at most every `mininterval` s) is a line of its own."""

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is None:  # a refresh; msg="" is tqdm wiping the bar, which lines never need
            self.fp.write(f"{self}\n")
            self.fp.flush()
            return True
        return False

    def clear(self, nolock: bool = False) -> None:
        """Lines already written stay (tqdm.write calls this before printing a note)."""


class ProgressBar:
    """Follows a download's progress (`bytes_done`, `bytes_total`, `current_file`, `note`: a
    `pull.Progress` or a row of /api/downloads) with a tqdm bar, made once the size is known."""

    def __init__(self, repo_id: str, out: IO[str], *, interval: float = 2.0) -> None:
        self.repo_id, self.out, self.interval = repo_id, out, interval
        self.tty = out.isatty()
        self.bytes_done = self.bytes_total = 0
        self.note = ""
        self.bar: tqdm | None = None

    def update(self, progress: Any) -> None:
        self.bytes_done, self.bytes_total = progress.bytes_done, progress.bytes_total
        if progress.note and progress.note != self.note:
            self._say(f"  {progress.note}")  # e.g. "The connection to the Hub dropped. Retrying in 2 s ..."
        self.note = progress.note
        if not self.bytes_total:
            return
        bar = self._bar()
        bar.total = self.bytes_total  # a retry may plan a newer commit of another size
        if self.tty:
            links = getattr(progress, "connections", 0)
            bar.set_postfix_str(
                f"{links} conn  {progress.current_file[-32:]}" if links > 1 else progress.current_file[-32:],
                refresh=False,
            )
        bar.update(self.bytes_done - bar.n)  # negative when a corrupted partial file is thrown away

    def finish(self) -> None:
        """The download is complete: show it at 100 % and end the bar's line."""
        bar = self._bar()
        bar.update(bar.total - bar.n)
        if bar.last_print_n != bar.n:  # the end is not drawn yet (updates draw at most every interval)
            bar.refresh()
        self._close()

    def interrupted(self) -> None:
        """The download stopped early (failed, Ctrl-C): keep what is shown and end its line."""
        self._close()

    def _bar(self) -> tqdm:
        if self.bar is None:
            kind, layout, every = (
                (_Bar, _TTY_FORMAT, 0.1) if self.tty else (_Lines, _LINE_FORMAT, self.interval)
            )
            self.bar = kind(
                total=self.bytes_total, initial=self.bytes_done, desc=self.repo_id, file=self.out,
                unit="B", unit_scale=True, bar_format=layout, mininterval=every,
                miniters=0,  # refresh by time only, so a stalled download still shows its falling speed
                leave=self.tty, dynamic_ncols=self.tty,
            )  # fmt: skip
        return self.bar

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _say(self, text: str) -> None:
        if self.bar is None:
            print(text, file=self.out, flush=True)
        else:
            type(self.bar).write(text, file=self.out)  # clears a redrawn bar, prints, redraws it
