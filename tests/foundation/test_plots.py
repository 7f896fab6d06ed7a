"""minift/plots.py: figures written atomically, and the PEFT map readable on a projector — every label at least
12 pt, and every label and box inside the figure (none cut off at the edges, none spilling out of its box: the
boxes are sized to their text)."""

from __future__ import annotations

from minift.plots import PEFT_COLORS, figure, peft_block_map, save


def test_the_peft_map_is_readable_and_fits(tmp_path):
    fig, (ax,) = figure(16, 6.5)
    peft_block_map(ax)
    save(fig, tmp_path / "map.png")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    texts = [t for t in ax.texts if t.get_text().strip()]
    assert len(texts) > 20 and min(t.get_fontsize() for t in texts) >= 12
    for t in texts:
        box = (t.get_bbox_patch() or t).get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, t.get_text()
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(PEFT_COLORS)
