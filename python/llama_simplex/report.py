"""How `bench` and `eval` write what they measured: JSON plus a Markdown table,
and a PNG plot when matplotlib is installed (plots are optional)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, List, Tuple


def write_results(out_dir: Path, stem: str, result: Any, lines: List[str]) -> Path:
    """Writes out_dir/<stem>.json (the result) and <stem>.md (the lines); returns the .md path."""
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=1))
    md = out_dir / f"{stem}.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def save_figure(path: Path, draw: Callable[[Any], None], *, ncols: int = 1,
                figsize: Tuple[float, float] = (9, 4.5)) -> None:
    """Calls draw(axes) on a new figure of 1 x ncols axes and saves it as a PNG
    at `path`; without matplotlib it does nothing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, ncols, figsize=figsize)
    try:
        draw(axes)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
