"""Where the workflow page draws each step: rows of step groups (a fan-out side by side, wrapped when
wide), centred, joined by edges through one join line per gap between two rows. Pure geometry, in SVG
user units; the template only draws what this returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = ["Graph", "Step", "layout"]

BOX_WIDTH: Final = 180
BOX_HEIGHT: Final = 44
GAP_X: Final = 16
"""Between two boxes side by side."""
LINE_GAP: Final = 12
"""Between two lines of one wrapped row."""
ROW_GAP: Final = 40
"""Between two rows: room for the edges."""
MARGIN: Final = 10
FRAME_PAD: Final = 8
"""Between a fan-out's frame and its boxes."""
WRAP: Final = 6
"""At most this many boxes side by side: a 20-wide fan-out wraps rather than running off the page."""
LABEL_CHARS: Final = 20
"""What fits on a box at the dashboard's font size; a longer function name is cut (the tooltip has it)."""


class Step(NamedTuple):
    id: str
    state: str
    func: str
    """``module:function`` the step runs (empty when the record does not say)."""


@dataclass(frozen=True)
class Box:
    step: Step
    number: int
    """1-based position of the step in the workflow's step order."""
    row: int
    column: int
    x: int
    y: int
    label: str
    title: str


@dataclass(frozen=True)
class Frame:
    """Around the steps of one fan-out, so a wrapped row still reads as one group."""

    row: int
    size: int
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Graph:
    width: int
    height: int
    box_width: int
    box_height: int
    boxes: list[Box]
    frames: list[Frame]
    edges: list[tuple[int, int, int, int]]
    """Line segments ``(x1, y1, x2, y2)``."""


def _label(number: int, step: Step) -> str:
    name = step.func.rpartition(":")[2] or step.func or step.id[:8]
    text = f"{number}. {name}"
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _line_width(count: int) -> int:
    return count * BOX_WIDTH + (count - 1) * GAP_X


def layout(rows: Sequence[Sequence[Step]]) -> Graph:
    """The graph of ``rows`` (the steps each yield submitted, in order): as wide as the widest row
    (up to ``WRAP`` boxes), every line of boxes centred."""
    columns = min(max((len(row) for row in rows), default=1), WRAP)
    width = _line_width(columns) + 2 * (MARGIN + FRAME_PAD)
    centre = width // 2
    boxes: list[Box] = []
    frames: list[Frame] = []
    edges: list[tuple[int, int, int, int]] = []
    # Where the previous row's edges leave from: (x, y) of each bottom anchor.
    leaving: list[tuple[int, int]] = []
    top = MARGIN
    number = 0
    for row_index, row in enumerate(rows):
        lines = [row[start : start + WRAP] for start in range(0, len(row), WRAP)]
        boxes_top = top + FRAME_PAD
        for line_index, line in enumerate(lines):
            left = centre - _line_width(len(line)) // 2
            y = boxes_top + line_index * (BOX_HEIGHT + LINE_GAP)
            for offset, step in enumerate(line):
                number += 1
                func = step.func or "(function not recorded)"
                boxes.append(Box(
                    step=step, number=number, row=row_index, column=line_index * WRAP + offset,
                    x=left + offset * (BOX_WIDTH + GAP_X), y=y, label=_label(number, step),
                    title=f"{number}. {func} — {step.state}\n{step.id}",
                ))
        row_boxes = boxes[len(boxes) - len(row) :]
        bottom = boxes_top + len(lines) * BOX_HEIGHT + (len(lines) - 1) * LINE_GAP + FRAME_PAD
        if len(row) > 1:
            frame_width = _line_width(min(len(row), WRAP)) + 2 * FRAME_PAD
            frames.append(Frame(row=row_index, size=len(row), x=centre - frame_width // 2, y=top,
                                width=frame_width, height=bottom - top))
        # A row on one line joins each of its boxes; a wrapped one joins at its frame, as lines to the
        # boxes of its inner lines would cross the boxes above them.
        if len(lines) == 1:
            arriving = [(b.x + BOX_WIDTH // 2, boxes_top) for b in row_boxes]
            next_leaving = [(b.x + BOX_WIDTH // 2, boxes_top + BOX_HEIGHT) for b in row_boxes]
        else:
            arriving, next_leaving = [(centre, top)], [(centre, bottom)]
        if leaving:
            join_y = top - ROW_GAP // 2
            edges.extend((x, y, x, join_y) for x, y in leaving)
            edges.extend((x, join_y, x, y) for x, y in arriving)
            xs = [x for x, _ in leaving + arriving]
            if min(xs) != max(xs):
                edges.append((min(xs), join_y, max(xs), join_y))
        leaving = next_leaving
        top = bottom + ROW_GAP
    height = max(top - ROW_GAP + MARGIN, 2 * MARGIN)
    return Graph(width=width, height=height, box_width=BOX_WIDTH, box_height=BOX_HEIGHT,
                 boxes=boxes, frames=frames, edges=edges)
