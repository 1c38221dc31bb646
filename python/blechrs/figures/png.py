"""The one PNG writer: a picture appears whole or not at all (a viewer or the index page never
shows a half-written file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from blechrs.io.atomic import atomic_path


def save_png(path: str | os.PathLike, picture: Any, **options: Any) -> Path:
    """Write a matplotlib figure (``options`` go to ``savefig``) or a Pillow image (to
    ``Image.save``) as ``path``, atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        if hasattr(picture, "savefig"):
            picture.savefig(tmp, **options)
        else:
            picture.save(tmp, format="PNG", **options)
    return Path(path)
