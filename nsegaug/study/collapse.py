"""Class collapse: a class present in the validation labels that a run ends without (IoU at or below a floor).

On small data a run can lose a whole class (it never predicts it), and one
lost class moves mIoU by 1/C of its IoU: in a pair where only one run lost
it, that class alone can make the paired difference. This module says, as
pure functions of the runs' records, which classes each run lost, how often
each method collapsed, which pairs differ by a class lost in one run only
(and by how much of their difference), and the collapse-robust metrics: per
pair, mIoU and boundary IoU over the classes **both** runs learned.

The per-class figures are train's own (``iou``, ``boundary_iou``,
``class_pixels`` of metrics.json and metrics.jsonl), averaged with
``class_mean`` (internal: ``nsegaug.train.metrics``), as train averages them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..train.metrics import class_mean

CLASS_IOU_FLOOR = 0.05
"""A class is learned when its IoU is above this floor (a class never predicted has IoU 0; one predicted only
here and there stays near it). A study file may set its own (`[study] collapse_iou`, kept in results.json's
`study`)."""
ROBUST = {"miou_learned": "miou", "boundary_miou_learned": "boundary_miou"}
"""The collapse-robust metrics: name -> the per-run metric it restricts to the classes learned in both runs."""
PER_CLASS = {"miou": "iou", "boundary_miou": "boundary_iou", "band_miou": "band_iou"}
"""Each per-run metric -> the key of its per-class values in a run record or a metrics.jsonl row."""
DOMINANT_SHARE = 0.5
"""A paired difference is dominated by collapse when the classes lost in one run of a pair only make more than
this share of the differences (summed in absolute value over the pairs)."""


def present_classes(run: dict) -> list[int]:
    """The classes present in the validation labels: ground-truth pixels > 0 (``class_pixels``), or, for a
    record made before train recorded them, the classes with an IoU (a class absent and never predicted has
    none; one absent but predicted has IoU 0 and is counted here: a slight overcount of losses)."""
    pixels = run.get("class_pixels")
    if pixels is not None:
        return [index for index, count in enumerate(pixels) if count > 0]
    return [index for index, value in enumerate(run.get("iou") or []) if value is not None]


def lost_classes(iou: Sequence[float | None], present: Sequence[int], floor: float = CLASS_IOU_FLOOR) -> list[int]:
    """The classes of ``present`` whose IoU is at or below ``floor``."""
    return [index for index in present if iou[index] is None or iou[index] <= floor]


def learned_in_both(first: dict, second: dict, present: Sequence[int], floor: float = CLASS_IOU_FLOOR) -> list[int]:
    """The classes of ``present`` that both snapshots (run records or metrics.jsonl rows) learned."""
    lost = set(lost_classes(first["iou"], present, floor)) | set(lost_classes(second["iou"], present, floor))
    return [index for index in present if index not in lost]


def robust_pair(metric: str, first: dict, second: dict, present: Sequence[int], floor: float) -> dict | None:
    """A collapse-robust metric of one pair: each run's ``ROBUST[metric]`` over the classes both learned.

    None when a snapshot lacks the per-class values it needs (a record that did not keep them)."""
    values = PER_CLASS[ROBUST[metric]]
    if any(snapshot.get(key) is None for snapshot in (first, second) for key in ("iou", values)):
        return None
    classes = learned_in_both(first, second, present, floor)
    return {"classes": classes, "values": (class_mean(first[values], classes), class_mean(second[values], classes))}


def one_sided(metric: str, first: dict, second: dict, present: Sequence[int], floor: float) -> dict | None:
    """The classes lost by one run of the pair only, and how much of the pair's difference in ``metric`` they
    make: the difference minus the difference over the other classes. None: no such class, or no per-class
    values."""
    values = PER_CLASS.get(metric)
    if values is None or any(snapshot.get(key) is None for snapshot in (first, second) for key in ("iou", values)):
        return None
    lost_first = set(lost_classes(first["iou"], present, floor))
    lost_second = set(lost_classes(second["iou"], present, floor))
    alone = sorted(lost_first ^ lost_second)
    if not alone:
        return None
    whole = first[metric] - second[metric]
    rest = [index for index in range(len(first[values])) if index not in alone]
    rest_first, rest_second = class_mean(first[values], rest), class_mean(second[values], rest)
    without = rest_first - rest_second if rest_first is not None and rest_second is not None else 0.0
    return {
        "lost_by_first": [index for index in alone if index in lost_first],
        "lost_by_second": [index for index in alone if index in lost_second],
        "difference": whole,
        "contribution": whole - without,
    }


def dominated(pairs: dict[int, dict], differences: Sequence[float]) -> bool:
    """Whether one-sided losses make more than ``DOMINANT_SHARE`` of the paired differences (in absolute value)."""
    total = sum(abs(value) for value in differences)
    share = sum(abs(pair["contribution"]) for pair in pairs.values())
    return bool(pairs) and total > 0 and share > DOMINANT_SHARE * total


def collapse_rates(
    runs: Sequence[dict], methods: Sequence[str], conditions: Sequence[str], floor: float = CLASS_IOU_FLOOR
) -> dict:
    """How often each method's runs lost a class at the end: ``by_cell`` (condition, method), with the classes
    lost by seed, and ``by_method`` over the conditions."""
    by_cell = {
        condition: {
            method: _rate(
                {
                    run["seed"]: lost_classes(run["iou"], present_classes(run), floor)
                    for run in runs
                    if (run["condition"], run["method"]) == (condition, method)
                }
            )
            for method in methods
        }
        for condition in conditions
    }
    by_method = {
        method: _rate(
            {
                f"{condition} {seed}": lost
                for condition in conditions
                for seed, lost in by_cell[condition][method]["lost"].items()
            }
        )
        for method in methods
    }
    return {"floor": floor, "by_cell": by_cell, "by_method": by_method}


def _rate(lost: dict) -> dict:
    collapsed = sum(1 for classes in lost.values() if classes)
    return {"runs": len(lost), "collapsed": collapsed, "rate": collapsed / len(lost) if lost else None, "lost": lost}
