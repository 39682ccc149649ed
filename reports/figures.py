"""The report's figures: matplotlib drawings of numbers already in ``scores.json``, inlined as SVG data URIs.

Why SVG in an ``<img>`` with a ``data:`` source: the report must be one file that makes no network request;
an ``<img>`` keeps every figure isolated (SVGs pasted inline share matplotlib's element ids and can clash),
vector output prints sharply, and with text kept as text (``svg.fonttype = none``) it is about half the
time and size of a PNG. Figures are drawn with the object-oriented API (``matplotlib.figure.Figure``) so
nothing here touches pyplot's global state or the caller's backend.

Colours follow Okabe and Ito's colour-blind-safe palette, and every series also differs by marker or hatch,
so no figure depends on telling red from green. Each function returns ``None`` when its data is absent;
the page then says what is missing instead of drawing an empty chart.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
REFERENCE_COLOUR = "#777777"

# Training-frequency buckets in the scorer's order (docs/scores-schema.md).
FREQUENCY_BUCKETS = ("0", "1-5", "6-50", "51-500", ">500")
# Text stays text (fonts resolved by the browser, no web fonts); a fixed hash salt makes ids reproducible.
_SVG_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "coding-bench"}
# A y label longer than this wraps at spaces: "Simulated coder A" over "(coder.a@demo.invalid)".
LABEL_CHARS = 26
# Room left of the widest y label for the tick and its gap, plus slack for the browser's own font metrics.
LABEL_PAD_INCHES = 0.2


@dataclass(frozen=True)
class Chart:
    """One drawn figure: an id for the page's anchor, its caption, alt text and the SVG as a data URI."""

    key: str
    title: str
    caption: str
    alt: str
    data_uri: str


def _encode(fig: Figure) -> str:
    """SVG as a ``data:`` URI; no date or creator metadata, so a re-render is byte-identical."""
    FigureCanvasSVG(fig)
    buf = io.BytesIO()
    with matplotlib.rc_context(_SVG_STYLE):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _new_figure(width: float, height: float, left: float, bottom: float = 0.7, top: float = 0.25) -> Figure:
    """A figure with fixed margins in inches (a layout engine costs a second per figure on this CPU)."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - 0.25 / width, bottom=bottom / height, top=1 - top / height,
                        wspace=0.08)
    return fig


def _wrap(label: str, width: int = LABEL_CHARS) -> str:
    """A long label on several lines, broken at spaces only (an e-mail address stays whole)."""
    return "\n".join(textwrap.wrap(label, width, break_long_words=False, break_on_hyphens=False)) or label


def _fit_y_labels(fig: Figure, ax: Any) -> None:
    """Widen the left margin, and the figure by as much, until the widest y tick label fits inside it.

    The labels are measured with matplotlib's text metrics for the font the SVG names; the plot keeps its
    width, so a long coder name makes the figure wider instead of being cut at the edge.
    """
    renderer = FigureCanvasAgg(fig).get_renderer()
    widest = max((t.get_window_extent(renderer).width for t in ax.get_yticklabels()), default=0.0) / fig.dpi
    width, height = fig.get_size_inches()
    left, right = fig.subplotpars.left * width, (1 - fig.subplotpars.right) * width
    needed = widest + LABEL_PAD_INCHES
    if needed > left:
        new_width = width + needed - left
        fig.set_size_inches(new_width, height)
        fig.subplots_adjust(left=needed / new_width, right=1 - right / new_width)


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="both", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def frequency_f1(frequency: Mapping[str, Mapping[str, Mapping[str, Any]]], systems: Sequence[str]) -> Chart | None:
    """Micro-F1 per training-frequency bucket, one line per system (humans and models).

    ``frequency`` is ``table1.breakdowns.frequency``: ``{system: {bucket: {"f1": ...}}}``.
    """
    series = [(name, frequency[name]) for name in systems if name in frequency]
    if not series:
        return None
    buckets = [b for b in FREQUENCY_BUCKETS if any(b in per for _, per in series)]
    buckets += sorted({b for _, per in series for b in per} - set(buckets))
    fig = _new_figure(7.0, 3.6, left=0.7)
    ax = fig.add_subplot()
    x = list(range(len(buckets)))
    for i, (name, per) in enumerate(series):
        ys = [_value(per.get(b, {}), "f1") for b in buckets]
        ax.plot(x, [float("nan") if y is None else y for y in ys], marker=MARKERS[i % len(MARKERS)],
                color=OKABE_ITO[i % len(OKABE_ITO)], linewidth=1.8, markersize=6, label=name)
    ax.set_xticks(x, [f"{b}" for b in buckets])
    ax.set_xlabel("occurrences of the code in the training split")
    ax.set_ylabel("micro-F1")
    ax.set_ylim(0, 1)
    _style(ax)
    ax.legend(frameon=False, fontsize=8, loc="best")
    return Chart(
        key="fig-frequency", title="Micro-F1 by training frequency",
        caption="Micro-F1 on the sampled notes, codes grouped by how often they occur in the training split "
                "(table1.breakdowns.frequency). Rare codes are where models usually fall behind.",
        alt="Line chart of micro-F1 per training-frequency bucket for " + ", ".join(n for n, _ in series),
        data_uri=_encode(fig),
    )


def codes_per_note(rows: Sequence[Mapping[str, Any]], per_document: Sequence[Mapping[str, Any]] | None,
                   coder_keys: Mapping[str, str] | None = None) -> Chart | None:
    """Codes per note: the spread per document (box) and the scorer's mean (diamond), reference first.

    Box plots need the per-document sets from ``per_document``, where coders are keyed as ``coder_keys``
    maps a coder row's system name; without them only the means are drawn.
    """
    systems = [r for r in rows if r.get("codes_per_note") is not None]
    if not systems:
        return None
    reference_mean = next((r.get("reference_codes_per_note") for r in systems
                           if r.get("reference_codes_per_note") is not None), None)
    labels: list[str] = []
    means: list[float | None] = []
    spreads: list[list[int]] = []
    if reference_mean is not None or per_document:
        labels.append("Reference")
        means.append(reference_mean)
        spreads.append([len(d.get("reference") or []) for d in per_document or []])
    for row in systems:
        labels.append(row["system"] + (" (simulated)" if row.get("simulated") and "imulated" not in row["system"] else ""))
        means.append(row["codes_per_note"])
        spreads.append(_per_document_counts(row, per_document or [], coder_keys or {}))
    labels = [_wrap(label) for label in labels]
    row_height = max(0.55, 0.2 * max(label.count("\n") + 1 for label in labels) + 0.15)
    fig = _new_figure(7.0, row_height * len(labels) + 1.2, left=2.2)
    ax = fig.add_subplot()
    ys = list(range(len(labels)))[::-1]
    colours = [REFERENCE_COLOUR] + [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(labels) - 1)]
    if labels[0] != "Reference":
        colours = colours[1:]
    boxes = [(y, s, c) for y, s, c in zip(ys, spreads, colours) if s]
    if boxes:
        parts = ax.boxplot([s for _, s, _ in boxes], positions=[y for y, _, _ in boxes], orientation="horizontal",
                           widths=0.5, patch_artist=True, showfliers=False, manage_ticks=False)
        for patch, (_, _, colour) in zip(parts["boxes"], boxes):
            patch.set_facecolor(colour)
            patch.set_alpha(0.35)
            patch.set_edgecolor(colour)
        for median in parts["medians"]:
            median.set_color("#000000")
    for y, mean, colour in zip(ys, means, colours):
        if mean is not None:
            ax.plot([mean], [y], marker="D", color=colour, markeredgecolor="#000000", markersize=7, linestyle="none")
            ax.annotate(f"{mean:.1f}", (mean, y), xytext=(6, 6), textcoords="offset points", fontsize=8)
    ax.set_yticks(ys, labels)
    ax.set_xlabel("codes per note (◆ mean; box: quartiles over the notes)")
    ax.set_xlim(left=0)
    _style(ax)
    _fit_y_labels(fig, ax)
    return Chart(
        key="fig-codes-per-note", title="Codes per note",
        caption="How many codes each system assigns per note, next to the reference. Under-coding shows as a "
                "box left of the reference.",
        alt="Codes per note for " + ", ".join(label.replace("\n", " ") for label in labels), data_uri=_encode(fig),
    )


def _per_document_counts(row: Mapping[str, Any], per_document: Sequence[Mapping[str, Any]],
                         coder_keys: Mapping[str, str]) -> list[int]:
    """The per-document set sizes that belong to one Table 1 row (a coder, a model or the pooled humans)."""
    name = row["system"]
    if row.get("kind") == "model":
        return [len(d["models"][name]) for d in per_document if name in (d.get("models") or {})]
    if row.get("kind") == "coder":
        coder = coder_keys.get(name)
        return [len(d["humans"][coder]) for d in per_document if coder in (d.get("humans") or {})]
    # pooled humans: every coder's set on every note they coded
    return [len(codes) for d in per_document for codes in (d.get("humans") or {}).values()]


def chapter_precision_recall(chapter: Mapping[str, Mapping[str, Mapping[str, Any]]],
                             systems: Sequence[str], code_system: str) -> Chart | None:
    """Micro precision and recall per chapter of ``code_system`` ("ICD-9-CM"), side by side, one marker shape
    per system."""
    series = [(name, chapter[name]) for name in systems if name in chapter]
    if not series:
        return None
    chapters = sorted({c for _, per in series for c in per}, key=_chapter_order)
    fig = _new_figure(9.0, 0.28 * len(chapters) + 1.4, left=2.9, bottom=0.45, top=0.75)
    axes = fig.subplots(1, 2, sharey=True)
    ys = list(range(len(chapters)))[::-1]
    for ax, metric in zip(axes, ("precision", "recall")):
        for i, (name, per) in enumerate(series):
            xs = [_value(per.get(c, {}), metric) for c in chapters]
            points = [(x, y) for x, y in zip(xs, ys) if x is not None]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker=MARKERS[i % len(MARKERS)],
                        color=OKABE_ITO[i % len(OKABE_ITO)], linestyle="none", markersize=6, alpha=0.85,
                        label=name)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(f"micro-{metric}", fontsize=10)
        _style(ax)
    axes[0].set_yticks(ys, [_shorten(c) for c in chapters], fontsize=7)
    _fit_y_labels(fig, axes[0])
    fig.legend(*axes[0].get_legend_handles_labels(), frameon=False, fontsize=8, loc="upper center",
               ncols=min(len(series), 4))
    return Chart(
        key="fig-chapter", title="Precision and recall by chapter",
        caption=f"Micro precision (left) and recall (right) per {code_system} chapter on the sampled notes "
                "(table1.breakdowns.chapter). Chapters with few codes are noisy.",
        alt=f"Dot plot of precision and recall over {len(chapters)} chapters for " + ", ".join(n for n, _ in series),
        data_uri=_encode(fig),
    )


def coder_throughput(coders: Sequence[Mapping[str, Any]]) -> Chart | None:
    """Charts per hour and median lead time per note, one bar per coder (from Label Studio lead times)."""
    rows = [c for c in coders if c.get("charts_per_hour") is not None or c.get("median_lead_time_s") is not None]
    if not rows:
        return None
    names = [str(c.get("coder")) + (" (simulated)" if c.get("simulated") else "") for c in rows]
    fig = _new_figure(8.0, 0.45 * len(rows) + 1.3, left=2.6, bottom=0.6)
    axes = fig.subplots(1, 2, sharey=True)
    ys = list(range(len(rows)))[::-1]
    for ax, key, label, scale in (
        (axes[0], "charts_per_hour", "charts per hour", 1.0),
        (axes[1], "median_lead_time_s", "median lead time per note (minutes)", 1 / 60),
    ):
        for i, (y, c) in enumerate(zip(ys, rows)):
            value = c.get(key)
            if value is None:
                continue
            ax.barh(y, value * scale, color=OKABE_ITO[i % len(OKABE_ITO)], hatch=HATCHES[i % len(HATCHES)],
                    edgecolor="#000000", linewidth=0.6, height=0.6)
            ax.annotate(f"{value * scale:.1f}", (value * scale, y), xytext=(4, -3), textcoords="offset points",
                        fontsize=8)
        ax.set_xlabel(label)
        largest = max((c.get(key) or 0) * scale for c in rows)
        ax.set_xlim(0, largest * 1.2 or 1)  # room for the value labels
        _style(ax)
    axes[0].set_yticks(ys, [_wrap(name) for name in names], fontsize=8)
    _fit_y_labels(fig, axes[0])
    return Chart(
        key="fig-throughput", title="Coder throughput",
        caption="Charts per hour and median time per note, from the lead times Label Studio records with each "
                "annotation (table1.coders).",
        alt="Bar charts of charts per hour and median lead time for " + ", ".join(names), data_uri=_encode(fig),
    )


def _value(slice_: Mapping[str, Any], metric: str) -> float | None:
    value = slice_.get(metric)
    return None if value is None else float(value)


def _chapter_order(label: str) -> tuple[int, int, str]:
    """Diagnosis chapters by range (3-digit "001-139"), then E and V chapters (and ICD-10-CM's "A00-B99" ...),
    then procedures (2-digit "01-05"; ICD-10-PCS sections "0" to "9", then "B" to "X", in the manual's order).

    >>> sorted(["B Imaging", "I00-I99 Circulatory", "3 Administration", "A00-B99 Infectious"], key=_chapter_order)
    ['A00-B99 Infectious', 'I00-I99 Circulatory', '3 Administration', 'B Imaging']
    """
    head = label.split(" ", 1)[0].split("-", 1)[0]
    if len(head) == 1:  # an ICD-10-PCS section: its one character, 0-9 then letters
        return (2, int(head, 36), label)
    if head.isdigit():
        return (0 if len(head) >= 3 else 2, int(head), label)
    return (1, 0, label)


def _shorten(label: str, width: int = 48) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def evidence_by_frequency(rows: Sequence[Mapping[str, Any]]) -> Chart | None:
    """Evidence F1 (token and exact span) per training-frequency bucket, one line per model and measure.

    ``rows`` are ``evidence.rows`` of scores.json, each with ``by_frequency: {bucket: {measure: {"f1": ...}}}``.
    """
    series = {f"{row['system']}, {label}": {b: per[measure] for b, per in row.get("by_frequency", {}).items()}
              for row in rows for measure, label in (("token", "token F1"), ("exact_span", "exact-span F1"))}
    chart = frequency_f1(series, list(series))
    if chart is None:
        return None
    return replace(chart, key="fig-evidence-frequency", title="Evidence F1 by training frequency",
                   caption="MDACE's token and exact-span F1 of the model's evidence windows against the coders' "
                           "spans in the discharge summaries, codes grouped by how often they occur in the "
                           "training split (evidence.rows[].by_frequency).",
                   alt="Line chart of evidence F1 per training-frequency bucket for " + ", ".join(series))
