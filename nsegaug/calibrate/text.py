"""``report.md``: what a calibration measured and recommends, in words and tables."""

from __future__ import annotations

from collections.abc import Sequence

from .. import storage
from ..params import format_alpha_sigma
from .measure import CAP_PX, SIZE_EDGES, SIZE_LABELS
from .report import FIGURE_NAME, PARAMS_NAME, quantile, size_rows, strength_line, strengths
from .run import Calibration

MODEL_WORDS = {
    "reference": "the reference is the truth and the labels one noisy reading of it: a copy of a reference map "
    "should differ from it as the label map does",
    "equal-readers": "two readers of equal standing, each off an unknown truth: two independent copies of a "
    "reference map should differ from each other as the two annotations do",
}


def _number(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN: no pixel there


def report_markdown(calibration: Calibration, measured: dict, command_line: Sequence[str], figure: bool) -> str:
    """The report: the disagreement, the recommendation, how each strength compares, and how it was found."""
    config, target = calibration.config, calibration.target
    pooled = target.pooled().sum(axis=0)
    lines = [
        "# Calibration of the NSegment+ strength",
        "",
        f"Made by `{' '.join(command_line)}` (nsegaug, {calibration.elapsed_s:.0f} s).",
        "",
        f"- labels: `{storage.shown(config.labels)}`; reference: `{storage.shown(config.reference)}`; "
        f"{calibration.maps} pairs of maps, {len(calibration.sampled)} of them deformed (seed {config.seed}).",
        f"- model: **{config.model}**: {MODEL_WORDS[config.model]}.",
        f"- ignore index: {config.ignore_index if config.ignore_index is not None else 'none'}.",
        "",
        "## The disagreement",
        "",
        f"{target.changed_fraction:.3%} of the pixels differ ({target.changed_per_boundary:.2f} changed pixels per "
        f"boundary pixel). Boundary displacement, both ways, over {target.boundary_pixels:,} boundary pixels: "
        f"mean {_number(target.overall_mean)} px, "
        f"median {quantile(pooled, 0.5):.2f} px, 90th percentile {quantile(pooled, 0.9):.2f} px "
        f"(a class missing from the other map counts as {CAP_PX:g} px).",
        "",
        "## Recommendation",
        "",
        f"**{strength_line(calibration)}**, in `{PARAMS_NAME}`:",
        "",
        "```bash",
        f"nsegaug generate --labels {storage.shown(config.reference)} --params {PARAMS_NAME} --copies 5 --out OUT",
        "```",
        "",
        *_distance_table(calibration, measured),
        "",
        *_size_table(calibration),
        "",
        *_threshold_words(calibration),
        "",
        *_class_table(calibration),
    ]
    if figure:
        lines += ["", "## Figure", "", f"![displacement per object size]({FIGURE_NAME}.png)", ""]
        lines.append(f"Vector version: [{FIGURE_NAME}.svg]({FIGURE_NAME}.svg).")
    lines += ["", *_method_words(calibration)]
    return "\n".join(lines) + "\n"


def _distance_table(calibration: Calibration, measured: dict) -> list[str]:
    lines = [
        "Distance from the annotations' disagreement (px, lower is closer; 95 % bootstrap interval over the "
        "annotated maps, dealt into at most 1,000 groups, the copies held fixed):",
        "",
        "| strength | distance (px) | 95 % interval |",
        "|---|---|---|",
    ]
    names = {
        "recommended": f"recommended: {format_alpha_sigma(calibration.params.alpha_sigma)}, "
        f"area_thresh {calibration.params.area_thresh:g}",
        "paper default": "the paper's grid, area_thresh 1000",
    }
    if calibration.noise is not None:
        noise = calibration.noise.params
        names["noise defaults"] = "nsegaug noise at its defaults"
        names["noise fitted"] = (
            f"nsegaug noise fitted (x{calibration.noise.scale:g}: max_radius {noise.max_radius}, max_epsilon "
            f"{noise.max_epsilon:g}, jitter_amplitude {noise.jitter_amplitude:g})"
        )
    for name, (value, low, high) in measured.items():
        lines.append(f"| {names[name]} | {value:.3f} | [{low:.3f}, {high:.3f}] |")
    lines += ["", f"The grid's prediction for the recommendation was {calibration.recommendation.predicted:.3f} px."]
    return lines


def _size_table(calibration: Calibration) -> list[str]:
    names = list(strengths(calibration))
    lines = [
        "Displacement by object size (px: mean / median / 90th percentile; share: of the annotations' boundary "
        "pixels):",
        "",
        "| object size | share | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for label, stats in size_rows(calibration):
        cells = [" / ".join(_number(value) for value in stats[name]) for name in names]
        lines.append(f"| {label} | {stats['share']:.1%} | " + " | ".join(cells) + " |")
    return lines


def _threshold_words(calibration: Calibration) -> list[str]:
    pooled = calibration.target.pooled().sum(axis=1)
    total = pooled.sum()
    protected_by_paper = pooled[: SIZE_EDGES.index(1000) + 1].sum() / total if total else 0.0
    chosen = calibration.params.area_thresh
    protected = pooled[: sum(1 for edge in SIZE_EDGES if edge <= chosen)].sum() / total if total else 0.0
    rows = [
        f"| {threshold:g} | {format_alpha_sigma(pairs)} | {value:.3f} |"
        for threshold, pairs, value in calibration.recommendation.by_threshold
    ]
    return [
        "## The area threshold",
        "",
        "The best set of pairs the grid found at each threshold tried, and its predicted distance (px):",
        "",
        "| area_thresh (px) | best alpha_sigma there | predicted distance (px) |",
        "|---|---|---|",
        *rows,
        "",
        f"{protected_by_paper:.1%} of the annotations' boundary pixels belong to objects of at most 1000 px, which "
        "the paper's threshold would never deform. "
        + (
            "The recommended threshold, 0 px, protects no object: the annotations disagree on small objects too."
            if chosen == 0
            else f"The recommended threshold, {chosen:g} px, protects objects up to that size ({protected:.1%} of "
            "the boundary pixels lie in whole size bins at or below it)."
        )
        + f" Size bins: {', '.join(SIZE_LABELS)}.",
    ]


def _class_table(calibration: Calibration) -> list[str]:
    target, achieved = calibration.target, calibration.achieved
    lines = [
        "## By class",
        "",
        "| class | boundary pixels | share moved (> 0 px) | mean displacement (px) | recommended's (px) |",
        "|---|---|---|---|---|",
    ]
    for value in sorted(target.counts):
        counts = target.counts[value].sum()
        mean = target.sums[value].sum() / counts if counts else float("nan")
        other = achieved.counts.get(value)
        mine = achieved.sums[value].sum() / other.sum() if other is not None and other.sum() else float("nan")
        moved = 1 - target.counts[value][:, 0].sum() / counts if counts else float("nan")
        lines.append(f"| {value} | {counts:,} | {_number(moved * 100, 1)} % | {_number(mean)} | {_number(mine)} |")
    return lines


def _method_words(calibration: Calibration) -> list[str]:
    config = calibration.config
    grid = config.grid
    return [
        "## How it was found",
        "",
        "The distance is the Wasserstein-1 distance between the displacement distributions of boundary pixels, "
        "per object size bin, weighted by the annotations' share of boundary pixels in each bin, plus the "
        "difference in changed pixels per boundary pixel (both in px). "
        f"{len(calibration.sampled)} reference maps were deformed at every (alpha, sigma) of "
        f"alphas {', '.join(f'{a:g}' for a in grid.alphas)} x sigmas {', '.join(f'{s:g}' for s in grid.sigmas)} and "
        f"every area threshold of {', '.join(f'{t:g}' for t in grid.thresholds)} px, {config.copies} time(s) each, "
        "all grid points of one map and copy with the same noise; sets of up to "
        f"{config.max_pairs} pairs were scored as mixtures of their pairs' copies (NSegment+ draws one pair per copy). "
        f"The distances above were then measured on {config.check_copies} real NSegment+ copies per sampled map "
        "(what `nsegaug generate` writes with the same seed).",
    ]
