"""Progress over a grid of runs: a tqdm bar on a terminal, plain lines elsewhere, or nothing."""
from __future__ import annotations

import sys
import time

def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _Progress:
    """One report over a whole grid of runs.

    ``"bar"``: one tqdm bar over every epoch of every run ("run k/N", the overall rate and
    ETA). ``"lines"``: one plain line per finished run (per evaluated epoch for the VAE's joint
    grid) with the elapsed time and an estimate of what is left, for logs and notebooks, where
    a bar is noise. None: nothing. All of it goes to stderr.
    """

    def __init__(self, name: str, style: str | None):
        self.name, self.style = name, style
        self.bar = None
        self.units: list[int] = []
        self.done_units = 0        # finished before this session (saved) or in it
        self.computed_units = 0    # finished in this session: the ETA's rate
        self.start = time.perf_counter()

    @staticmethod
    def style_for(progress: bool | None) -> str | None:
        # None: a bar on a terminal, else silent (notebooks, nbval, tests, chapters' cache
        # misses); True: a bar on a terminal, else plain lines; False: silent.
        if progress is False:
            return None
        terminal = sys.stderr.isatty()
        if progress is None:
            return "bar" if terminal else None
        return "bar" if terminal else "lines"

    def plan(self, units: list[int], done: list[bool], unit: str = "epoch", initial: int = 0) -> None:
        """``units[i]``: run i's share (its epochs); ``done[i]``: saved already; ``initial``:
        units of an unfinished run that are saved too (the VAE grid's saved epochs)."""
        self.units = list(units)
        self.done_units = sum(u for u, d in zip(units, done) if d) + initial
        self.start = time.perf_counter()  # after the data are loaded: the ETA's rate is training
        saved = sum(done)
        if self.style == "bar":
            from tqdm import tqdm  # plain tqdm: tqdm.auto would add widgets to notebooks

            self.bar = tqdm(total=sum(units), initial=self.done_units, unit=unit, leave=False,
                            desc=self.name, dynamic_ncols=True)
        elif self.style == "lines" and (saved or initial):
            what = f"{saved} of {len(units)} runs" if saved else f"{initial} of {sum(units)} {unit}s"
            self._print(f"{self.name}: {what} already saved: resuming")

    def start_run(self, index: int, label: str) -> None:
        if self.bar is not None:
            self.bar.set_description(f"{self.name} run {index + 1}/{len(self.units)}", refresh=False)
            self.bar.set_postfix_str(label, refresh=True)

    def advance(self, units: int = 1) -> None:
        self.done_units += units
        self.computed_units += units
        if self.bar is not None:
            self.bar.update(units)

    def _estimate(self) -> str:
        elapsed = time.perf_counter() - self.start
        left = sum(self.units) - self.done_units
        text = f"{_clock(elapsed)} elapsed"
        if self.computed_units and left > 0:
            text += f", about {_clock(elapsed / self.computed_units * left)} left"
        return text

    def finish_run(self, index: int, label: str, run: dict) -> None:
        if self.style == "lines":
            self._print(f"{self.name}: run {index + 1}/{len(self.units)} done ({label}): "
                        f"{_summary(run)}; {self._estimate()}")

    def note(self, text: str) -> None:
        """A line in "lines" style (with the elapsed time and ETA); the bar's postfix otherwise."""
        if self.style == "lines":
            self._print(f"{self.name}: {text}; {self._estimate()}")
        elif self.bar is not None:
            self.bar.set_postfix_str(text)

    def _print(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _summary(run) -> str:
    """"final cost C" of one run; of a stack (a list of runs), its lowest final cost."""
    runs = run if isinstance(run, list) else [run]
    finals = [r["epoch_loss"][-1] for r in runs if r.get("epoch_loss") and r["epoch_loss"][-1] is not None]
    cost = f"{min(finals):.4g}" if finals else "nan"
    return f"final cost {cost}" if len(runs) == 1 else f"lowest final cost {cost} of {len(runs)} runs"
