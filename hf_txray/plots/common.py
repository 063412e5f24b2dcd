"""What every figure of hf_txray shares: axes and figure creation, stage colours, feature-type choice, file names
and saving.

Figures are built with ``Figure()`` rather than ``pyplot``: no global state, no backend switch, nothing kept alive
after the caller drops the figure, so a Trainer callback or a Space can draw thousands of them; saving to PNG uses
the Agg renderer whatever the session's backend is. Every figure function takes an optional ``ax`` to draw into
(a subplot of a larger figure, a Gradio ``gr.Plot``) and returns the ``matplotlib.figure.Figure``: a new one is an
:func:`inline_figure`, which a Jupyter notebook shows as an image without pyplot.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np

from ..errors import ConfigurationError
from ..io_utils import atomic_file
from ..features import default_feature_type
from ..logging import get_logger, warnings_caught
from ..tables import clip_right, grapheme_cut, one_line

if TYPE_CHECKING:  # the figures only need these for type hints; importing plots must not import torch
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STAGE_COLORS = ("tab:blue", "tab:orange")


def layer_colors(count: int) -> list[tuple[float, float, float, float]]:
    """One distinct colour per layer for `count` layers, in layer order: matplotlib's ten-colour cycle while it
    suffices, else viridis sampled once per layer (the cycle repeats: in a 12-layer timeline, layers 0 and 10 were
    drawn alike, helper 300)."""
    import matplotlib

    if count <= 10:
        return [matplotlib.colors.to_rgba(f"C{i}") for i in range(count)]
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / (count - 1)) for i in range(count)]


logger = get_logger(__name__)

# Fonts tried after matplotlib's DejaVu Sans for the characters it lacks (CJK, Arabic, Devanagari, Thai...), when
# installed: none is a dependency (`apt install fonts-noto-cjk`, for one, adds the first ones).
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR", "Source Han Sans",
                  "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
                  "IPAGothic", "IPAexGothic", "Noto Sans", "Noto Sans Arabic", "Noto Sans Hebrew",
                  "Noto Sans Devanagari", "Noto Sans Thai", "Noto Sans Symbols", "Unifont")
BASE_FONT = "DejaVu Sans"


@functools.lru_cache(maxsize=1)
def font_families() -> tuple[str, ...]:
    """:data:`BASE_FONT` and the :data:`FALLBACK_FONTS` installed on this machine (matplotlib's font manager), in
    that order: the family list every figure's text is drawn with (matplotlib falls back glyph by glyph)."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return (BASE_FONT, *(name for name in FALLBACK_FONTS if name in installed))


@functools.lru_cache(maxsize=None)
def _font_covers(family: str, char: str) -> bool:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    return FT2Font(path).get_char_index(ord(char)) != 0


def missing_characters(text: str) -> str:
    """The characters of `text` that no family of :func:`font_families` has (drawn as boxes), in order, once each."""
    missing = [c for c in dict.fromkeys(text) if c.isprintable() and not c.isspace() and not c.isascii()
               and not any(_font_covers(family, c) for family in font_families())]
    return "".join(missing)


def use_fallback_fonts(figure: "Figure") -> "Figure":
    """Draw every text of `figure` with :func:`font_families` (DejaVu Sans, then any installed font covering CJK or
    other scripts it lacks). A label with characters no installed font has is still drawn whole (those characters as
    boxes), and a warning names them once per figure with the fix; returns `figure`."""
    from matplotlib.text import Text

    families = list(font_families())
    texts = [t for t in figure.findobj(Text) if t.get_text()]
    for text in texts:
        text.set_fontfamily(families)
    missing = missing_characters("".join(t.get_text() for t in texts))
    if missing:
        logger.warning("No installed font has the characters %s of this figure's labels (%s): they are drawn as "
                       "boxes. Install a font covering them (e.g. `apt install fonts-noto-cjk` for CJK); hf_txray "
                       "uses it (FALLBACK_FONTS).", " ".join(missing), ", ".join(families))
    return figure


def literal(text: object) -> str:
    """`text` (a stage or report name, a feature value: data) as a figure label drawn as written: its dollar signs
    escaped, as matplotlib reads two of them as mathtext (stages ``v$1`` and ``v$2`` drew the title ``v1->v2`` in
    italics; ``cost$\\x`` and ``cost$y`` made saving the figures raise a ``ParseFatalException``, helper 300), and on
    one line as the tables show it (:func:`~hf_txray.tables.one_line`: line breaks and tabs as spaces, other control
    characters as ``\\x1b``): a token ``"line1\\nline2"`` drew a tick label of two lines, and ``"\\r"``, a tab or ESC
    drew as a box."""
    return one_line(text).replace("$", r"\$")


LABEL_CHARACTERS = 30  # a feature value drawn as a tick or legend label is cut to about this many characters


def value_label(value: object, size: int = LABEL_CHARACTERS) -> str:
    """A feature value as a tick or legend label: :func:`literal`, cut after `size` characters (whole grapheme
    clusters) and ended by ``…`` where longer, so that one long token leaves room for the plot: a 500-character token
    among a mass-share figure's tick labels collapsed its constrained layout (matplotlib: "axes sizes collapsed to
    zero"), and the figure was saved with every tick label cut off at its lower edge (helper 356)."""
    text = one_line(value)
    short = clip_right(text, size)
    return literal(short if len(short) == len(text) else short + "…")


def value_labels(values: Iterable[object], size: int = LABEL_CHARACTERS) -> list[str]:
    """Feature values as the tick or legend labels of one axis (:func:`value_label`), told apart where two different
    values would draw the same label: the cut left ``https://example.com/a/very/lon…`` for two URLs that differ
    after 30 characters, and one line ``a b`` for ``"a\\tb"`` and ``"a b"``, so two bars or lines read as one value
    (helper 365). Such values are drawn by their start and end (``head…tail``, about `size` characters), and those
    still alike are numbered in order (`` (1)``, `` (2)``)."""
    values = list(values)
    labels = [value_label(v, size) for v in values]
    for label in _alike(labels, values):
        group = [i for i, other in enumerate(labels) if other == label]
        for i in group:
            labels[i] = _head_and_tail(one_line(values[i]), size)
        for shared in _alike([labels[i] for i in group], [values[i] for i in group]):
            alike = [i for i in group if labels[i] == shared]
            for number, i in enumerate(alike, 1):
                labels[i] = f"{shared} ({number})"
    return labels


def _alike(labels: list[str], values: list[object]) -> list[str]:
    """The labels that more than one distinct value of `values` draws."""
    drawn: dict[str, set[str]] = {}
    for label, value in zip(labels, values):
        drawn.setdefault(label, set()).add(repr(value))
    return [label for label, of in drawn.items() if len(of) > 1]


def _head_and_tail(text: str, size: int) -> str:
    """`text` as its first and last characters, about `size` in all (whole grapheme clusters), joined by ``…``."""
    if len(text) <= size:
        return literal(text)
    head = clip_right(text, size // 2)
    tail = text[grapheme_cut(text, len(text) - (size - size // 2 - 1), False):]
    return literal(f"{head}…{tail}")


def labelled_legend(ax: "Axes", artists: list, **kwargs) -> None:
    """A legend of `artists` under their labels as given: matplotlib's own leaves out every label starting with
    ``_``, so a profile of stage ``"_base"`` drew its mass figure with no legend at all (helper 300)."""
    ax.legend(artists, [artist.get_label() for artist in artists], **kwargs)


def fit_title(ax: "Axes", title: str) -> None:
    """Set `title` on `ax`, in lines as wide as the axes' cell of the figure at most: a report plot's title (stage
    names, the credit floor, the colour key) ran 75 to 100 characters on a 6 or 7 inch figure and was cut at both
    edges ("ained-ptb->zeroshot-bbc: ... (>= 20 credits"), which constrained layout does not prevent. Lines break
    after the first ``": "`` and before a ``" ("``, so that a parenthesis (``(layer 3, >= 20 credits)``) stays whole."""
    import textwrap

    ax.set_title(title)
    # a subplot takes 0.775 of its cell's width by matplotlib's default margins; an average glyph is ~0.6 em
    cell = min(1.0, ax.get_position().width / 0.775) * ax.figure.get_figwidth() * 72
    characters = max(20, int(cell / (0.6 * ax.title.get_fontsize())))
    if len(title) <= characters or "\n" in title:
        return
    head, colon, rest = title.partition(": ")
    chunks = [head + ":"] * bool(colon) + re.split(r" (?=\()", rest if colon else title)
    lines: list[str] = []
    for chunk in chunks:
        if lines and len(lines[-1]) + 1 + len(chunk) <= characters:
            lines[-1] += " " + chunk
        else:  # a chunk wider than the line on its own is wrapped at spaces, never inside a word ("\\$" stays whole)
            lines.extend(textwrap.wrap(chunk, characters, break_long_words=False, break_on_hyphens=False) or [chunk])
    ax.set_title("\n".join(lines))


def inline_figure(figure: "Figure") -> "Figure":
    """`figure` with a PNG rich display of its own (``_repr_png_``, as Jupyter and IPython look it up), drawn as
    :func:`save_figure` draws it (fallback fonts: :func:`png_bytes`), cropped to its content as the inline backend
    crops; returns `figure`. Every new hf_txray figure (:func:`new_axes`, :func:`new_figure`) is made so.

    hf_txray draws without pyplot, so IPython's inline backend, which registers its image formatter for ``Figure``
    when pyplot is imported (or ``%matplotlib inline`` runs), was never set up: in a fresh notebook
    ``plot_mass_share(profile)`` as a cell's last line showed ``<Figure size 675x400 with 1 Axes>`` and no image
    (helper 428). Where the inline formatter is set up it takes precedence over ``_repr_png_``: shown once either way.
    The figure stays a ``matplotlib.figure.Figure`` of that very class (an attribute is added, no subclass): Gradio's
    ``gr.Plot`` takes a figure by its class's module (``"matplotlib" in type(value).__module__``), as other
    libraries do by its class's full name, and refused a subclass defined here (helper 434). The PNG is drawn when
    asked for, never kept."""
    figure._repr_png_ = functools.partial(png_bytes, figure, bbox_inches="tight")
    return figure


def new_axes(ax: "Axes | None" = None, figsize: tuple[float, float] = (6.4, 4.2)) -> tuple["Figure", "Axes"]:
    """The axes to draw into: `ax` and its figure, or a new figure with one axes.

    Args:
        ax (`matplotlib.axes.Axes`, *optional*): the caller's axes (a subplot of a larger figure); returned as is.
        figsize (`tuple[float, float]`, *optional*, defaults to `(6.4, 4.2)`): width and height in inches of a new
            figure (constrained layout, no pyplot).

    Returns:
        `tuple[Figure, Axes]`.
    """
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = inline_figure(Figure(figsize=figsize, layout="constrained"))  # an image in a notebook, without pyplot
    return fig, fig.add_subplot()


def new_figure(rows: int = 1, cols: int = 1, width: float = 6.4, height: float = 4.2) -> tuple["Figure", np.ndarray]:
    """A new figure with a grid of axes, on matplotlib's Agg canvas (no pyplot, no global backend switch).

    Args:
        rows (`int`, *optional*, defaults to 1): rows of axes.
        cols (`int`, *optional*, defaults to 1): columns of axes.
        width (`float`, *optional*, defaults to 6.4): inches per column.
        height (`float`, *optional*, defaults to 4.2): inches per row.

    Returns:
        `tuple[Figure, np.ndarray]`: the figure and its axes, shape ``(rows, cols)`` (always 2-D).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from matplotlib.figure import Figure

    figure = inline_figure(Figure(figsize=(width * cols, height * rows), layout="constrained"))  # shown in a notebook
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, cols, squeeze=False)


def png_bytes(figure: "Figure", dpi: int | None = None, **savefig_kwargs) -> bytes:
    """`figure` as PNG bytes, its text drawn with :func:`use_fallback_fonts` (characters no installed font has: one
    warning, not matplotlib's one per glyph). `dpi` None: the figure's own. What :func:`save_figure` writes and a
    notebook shows (:func:`inline_figure`)."""
    use_fallback_fonts(figure)
    buffer = io.BytesIO()
    with warnings_caught():  # one warning per glyph: use_fallback_fonts said it once, with the fix
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
        figure.savefig(buffer, dpi=dpi or figure.dpi, format="png", **savefig_kwargs)
    return buffer.getvalue()


def save_figure(figure: "Figure", path: str | Path, dpi: int = 100) -> Path:
    """Save one figure as PNG at `path` (parent folders created), its text drawn with :func:`use_fallback_fonts`;
    returns the path."""
    png = png_bytes(figure, dpi=dpi)
    # written whole, then renamed: a Trainer's background push stages hard links of its plots, which a figure
    # rewritten in place would change under the upload (helper 219)
    return atomic_file(Path(path).expanduser(), lambda tmp: Path(tmp).write_bytes(png))


def checked_feature_type(feature_types: list[str], feature_type: str | None, categorical: bool = False,
                         kinds: Mapping[str, str] | None = None, orders: Mapping[str, float] | None = None) -> str:
    """`feature_type`, or the default one of `feature_types` (`kinds`, `orders`: the kinds and reading orders the
    results recorded, ``meta.feature_kinds`` and ``meta.feature_orders``); a `ConfigurationError` when it was not
    profiled."""
    ft = feature_type or default_feature_type(feature_types, categorical, kinds, orders)
    if ft not in feature_types:
        raise ConfigurationError(f"Feature type {ft!r} is not available; choose one of {feature_types}.")
    return ft


def slug(name: str) -> str:
    """A file-name-safe version of a stage or report name (``"a->b"`` -> ``"a__b"``). A name with characters a file
    name cannot keep (spaces, ``/``, any non-ASCII letter) is followed by a short hash of the whole name, so two names
    that differ only in those characters (``"stage α"``, ``"stage β"``) get distinct, stable file names
    (``"stage-<8 hex>"``) instead of one that each overwrites."""
    arrow = name.replace("->", "__")
    kept = re.sub(r"[^A-Za-z0-9._-]+", "-", arrow).strip("-")
    if kept and kept == arrow:
        return kept
    return f"{kept or 'unnamed'}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def save_figures(figures: Mapping[str, "Figure"], directory: str | Path, prefix: str = "",
                 dpi: int = 100) -> list[Path]:
    """Save figures as ``{directory}/{prefix}{name}.png``.

    Args:
        figures (`Mapping[str, Figure]`): figures by name, e.g. from :func:`report_figures`.
        directory (`str` or `Path`): created when missing.
        prefix (`str`, *optional*): prepended to every file name.
        dpi (`int`, *optional*, defaults to 100): resolution.

    Returns:
        `list[Path]`: the written files, in the order of `figures`.

    Example:
        ```python
        >>> save_figures(report_figures(report), "plots", prefix="pretrained__finetuned_")
        ```
    """
    directory = Path(directory).expanduser()  # `~` as every output folder takes it
    directory.mkdir(parents=True, exist_ok=True)
    return [save_figure(figure, directory / f"{prefix}{slug(name)}.png", dpi) for name, figure in figures.items()]
