"""How long a live figure takes to redraw after a slider move, in a real kernel.

usage: python tools/redraw_bench.py NB [NB ...] [--moves N]

For each notebook: runs its cells in a fresh kernel (one thread, like the build), up to and
including the first cell that builds a live figure (``live(``), then moves each control of
that figure through up to N of its other values and times each move from the change to the
end of the redraw (the new PNG in the Output's state). Prints one line per notebook: the
median and the range over the moves, in seconds, and which control was moved. The number to
compare with the budget (issue 16: 0.3 s median on 2 cores) is the median. The kernel's CPU
time per move (its median and maximum) is printed too: on a loaded machine the wall time
grows with the load, while the CPU time of the one-threaded kernel stays near the wall time
the move takes on an idle one.

It measures what the reader waits for in the kernel; sending the PNG to the browser (a few
milliseconds on a local Jupyter) is not included.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

BENCH = r'''
import json as _json, time as _time
import ipywidgets as _w
from ipywidgets.widgets.widget import _instances as _all
_boxes = [w for w in list(_all.values()) if isinstance(w, _w.VBox)
          and any(isinstance(c, _w.Output) for c in w.children)]
_box = _boxes[-1]
_times = []
for _c in _box.children:
    if hasattr(_c, "options") and hasattr(_c, "index") and _c.options:
        _start = _c.index
        _order = [i for i in range(len(_c.options)) if i != _start][:MOVES] + [_start]
        for _i in _order:
            _t0 = _time.perf_counter(); _p0 = _time.process_time(); _c.index = _i; _times.append([_c.description, _time.perf_counter() - _t0, _time.process_time() - _p0])
    elif isinstance(_c, (_w.IntSlider, _w.FloatSlider)):
        _start = _c.value
        for _v in [_c.min, _c.max, _start][:MOVES + 1]:
            _t0 = _time.perf_counter(); _p0 = _time.process_time(); _c.value = _v; _times.append([_c.description, _time.perf_counter() - _t0, _time.process_time() - _p0])
print("REDRAW" + _json.dumps(_times))
'''


def bench(path: Path, moves: int) -> list[tuple[str, float, float]]:
    import nbformat
    from nbclient import NotebookClient

    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cells.append(cell)
        if "live(" in cell.source:
            break
    else:
        raise SystemExit(f"{path}: no cell builds a live figure (live(...))")
    cells.append(nbformat.v4.new_code_cell(BENCH.replace("MOVES", str(moves))))
    nb.cells = cells
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for output in nb.cells[-1].outputs:
        text = output.get("text", "")
        if "REDRAW" in text:
            return [tuple(x) for x in json.loads(text.split("REDRAW", 1)[1])]
    raise SystemExit(f"{path}: the timing cell printed nothing")


def main(argv: list[str]) -> int:
    moves = 4
    if "--moves" in argv:
        i = argv.index("--moves")
        moves = int(argv[i + 1])
        del argv[i:i + 2]
    if not argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for name in argv:
        times = bench(Path(name), moves)
        seconds = [t[1] for t in times]
        cpu = [t[2] for t in times]
        controls = sorted({t[0] for t in times})
        print(f"{Path(name).name}: median {statistics.median(seconds):.3f} s, range "
              f"{min(seconds):.3f}-{max(seconds):.3f} s over {len(seconds)} moves of {', '.join(controls)}; CPU median "
              f"{statistics.median(cpu):.3f} s, max {max(cpu):.3f} s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
