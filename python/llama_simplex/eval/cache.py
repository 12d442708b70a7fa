"""The resumable store every evaluation writes its points to: DIR/cache.json,
rewritten after each new point, so an interrupted run picks up where it stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict


class PointCache:
    def __init__(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / "cache.json"
        self.points: Dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The stored value of `key`, computing and storing it first if absent."""
        if key not in self.points:
            self.points[key] = compute()
            self.path.write_text(json.dumps(self.points, indent=1))
        return self.points[key]
