"""``screenshots.py`` writes a real screenshot of every dashboard page (what docs/operating.md shows)."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

from browser_harness import BROWSER_DIR, child_env, wait_for_chromium
from screenshots import PAGES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_screenshots_of_every_page(tmp_path: Path) -> None:
    wait_for_chromium()
    out = tmp_path / "images"
    done = subprocess.run(
        [sys.executable, str(BROWSER_DIR / "screenshots.py"), str(out)],
        env=child_env(), capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in PAGES:
        image = out / f"{name}.png"
        assert image.exists(), f"no {image.name}"
        width, height = png_size(image)
        assert width == 1280 and height >= 400, (image.name, width, height)
        # A blank or error page compresses to a few kB; a rendered table is far larger.
        assert image.stat().st_size > 15_000, (image.name, image.stat().st_size)
