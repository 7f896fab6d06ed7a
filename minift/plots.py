"""Figures saved as PNG without a display: one place for how minift draws and writes a plot.

    fig, axes = figure(width, height, cols)   a matplotlib Figure on the Agg canvas (no window, no global pyplot
                                              state: safe in tests, scripts and servers) and its `cols` axes
    save(fig, path)                           written atomically (a crash never leaves half a PNG)
    peft_block_map(ax)                        lesson 07's map of where each PEFT method sits in a block, with
                                              every label in a box sized to it (readable on a projector)

matplotlib is imported inside the functions, so importing minift stays fast.
"""

from __future__ import annotations

from minift.files import PathLike, atomic_path


def figure(width: float = 7, height: float = 4.5, cols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, cols, i + 1) for i in range(cols)]


def save(fig, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


# -- the PEFT map: where each method sits in one transformer block (lesson 07) ---------------------------------

PEFT_COLORS = {"Houlsby adapter": "tab:orange", "Pfeiffer adapter": "tab:purple", "prefix tuning": "tab:green",
               "prompt tuning": "tab:red", "(IA)³": "tab:blue", "LoRA (lesson 06)": "grey"}


def peft_block_map(ax, fontsize: float = 12) -> None:
    """Draw minift's pre-LayerNorm block with what each PEFT method adds, on `ax` (a matplotlib Axes).

    Boxes are text with a frame sized to the text (matplotlib's bbox), so no label can overflow its box at any
    font size; a 16 × 6.5 inch figure keeps every label at `fontsize` points, readable on a projector."""
    from matplotlib import colors as mcolors

    def box(x, y, text, method=None, dashed=False, size=fontsize):
        edge = PEFT_COLORS[method] if method else "black"
        face = mcolors.to_rgba(PEFT_COLORS[method], 0.25) if method and not dashed else "white"
        ax.text(x, y, text, ha="center", va="center", fontsize=size, zorder=3,
                bbox=dict(boxstyle="round,pad=0.35", fc=face, ec=edge, ls="--" if dashed else "-",
                          lw=1.8 if dashed else 1.3))

    def arrow(x0, y0, x1, y1, color="black"):
        ax.annotate("", (x1, y1), (x0, y0), zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=1.3, shrinkA=0, shrinkB=0))

    def plus(x):
        ax.text(x, 0, "+", ha="center", va="center", fontsize=fontsize + 4, zorder=3,
                bbox=dict(boxstyle="circle,pad=0.15", fc="white"))

    ax.plot([0.2, 27.6], [0, 0], color="black", lw=3, zorder=0)  # the residual stream
    ax.text(2.0, -0.55, "residual stream x  (B, T, d)", fontsize=fontsize, va="top")
    box(-1.6, 0, "input:\n[P soft vectors ;\ntoken embeddings]", "prompt tuning")
    # attention sublayer
    arrow(1.2, 0, 1.2, 1.6)
    box(1.2, 2.0, "LN₁")
    for name, y in [("q", 3.4), ("k", 2.0), ("v", 0.9)]:
        arrow(1.8, 2.0, 2.9, y)
        box(3.5, y, f"W_{name}", "LoRA (lesson 06)" if name in "qv" else None, dashed=name in "qv")
        if name in "kv":
            box(5.2, y, f"⊙ l_{name}", "(IA)³")
        arrow(6.0 if name in "kv" else 4.2, y, 7.2, 2.0 + (y - 2.0) * 0.4)
    box(5.6, 4.5, "prefix rows K_p, V_p", "prefix tuning")
    arrow(7.2, 4.2, 8.4, 3.0, color=PEFT_COLORS["prefix tuning"])
    box(9.6, 2.0, "softmax(Q K′ᵀ/√d_h) V′\nK′ = [K_p ; K]\nV′ = [V_p ; V]")
    arrow(11.9, 2.0, 12.6, 2.0)
    box(13.2, 2.0, "W_o")
    arrow(13.8, 2.0, 14.2, 2.0)
    box(15.0, 2.0, "adapter\nA₁", "Houlsby adapter")
    arrow(15.5, 1.7, 15.8, 0.25)
    plus(15.8)
    ax.text(8.0, 5.4, "attention sublayer", ha="center", fontsize=fontsize + 1, style="italic")
    # MLP sublayer
    arrow(16.6, 0, 16.6, -1.6)
    box(16.6, -2.0, "LN₂")
    for x, text, method in [(18.4, "W_fc", None), (20.3, "GELU", None), (22.3, "⊙ l_ff", "(IA)³"),
                            (24.4, "W_proj", None)]:
        arrow(x - 1.2, -2.0, x - 0.7, -2.0)
        box(x, -2.0, text, method)
    arrow(25.2, -2.0, 25.6, -2.0)
    box(26.4, -2.0, "adapter\nA₂", "Houlsby adapter")
    arrow(26.4, -1.45, 26.4, -0.25)
    plus(26.4)
    ax.text(21.5, -3.2, "MLP sublayer (d → 4d → d)", ha="center", fontsize=fontsize + 1, style="italic")
    box(28.4, 0, "adapter\nA", "Pfeiffer adapter")
    arrow(29.2, 0, 29.6, 0)
    ax.text(29.7, 0, "next block\n(… ln_f,\nlm_head)", va="center", fontsize=fontsize)
    for k, col in PEFT_COLORS.items():
        ax.plot([], [], "s", color=col, label=k, ms=12, alpha=0.6)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=6, fontsize=fontsize, frameon=False)
    ax.set_xlim(-3.6, 31.8)
    ax.set_ylim(-3.6, 5.8)
    ax.axis("off")
