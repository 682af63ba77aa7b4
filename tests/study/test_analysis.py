"""A study's statistics (nsegaug.study.analysis, .collapse, .charts), by hand: paired intervals and their reading,
convergence, class collapse and the collapse-robust metrics, no verdict for runs that did not learn, the chart."""

from __future__ import annotations

import math

import pytest

from nsegaug.study import analysis


def runs_of(values: dict, metric: str = "miou") -> list[dict]:
    return [
        {"condition": condition, "method": method, "seed": seed, metric: value, "evals": []}
        for (condition, method), by_seed in values.items()
        for seed, value in by_seed.items()
    ]


def test_the_paired_interval_and_its_reading_by_hand():
    entry = analysis.paired_difference({0: 0.61, 1: 0.64, 2: 0.64}, {0: 0.60, 1: 0.62, 2: 0.64})
    assert entry["values"] == pytest.approx([0.01, 0.02, 0.0])
    # mean 0.01, std 0.01, n 3: t(0.975, 2) = 4.302653, half-width 4.302653 * 0.01 / sqrt(3) = 0.0248414.
    assert entry["mean"] == pytest.approx(0.01) and entry["std"] == pytest.approx(0.01)
    assert entry["half_width"] == pytest.approx(0.0248414, abs=1e-6)
    assert entry["ci95"] == pytest.approx([0.01 - 0.0248414, 0.01 + 0.0248414], abs=1e-6)
    assert entry["verdict"] == "no resolvable effect"
    assert entry["reading"] == (
        "no resolvable effect; the smallest effect this study could have seen, about half the time, is ±0.0248"
    )
    above = analysis.paired_difference({0: 0.52, 1: 0.53, 2: 0.52, 3: 0.51, 4: 0.52}, dict.fromkeys(range(5), 0.5))
    assert above["reading"] == "above 0"  # differences 2, 3, 2, 1, 2 points: mean 2, half-width 0.88 points
    below = analysis.paired_difference(dict.fromkeys(range(5), 0.5), {0: 0.52, 1: 0.53, 2: 0.52, 3: 0.51, 4: 0.52})
    assert below["reading"] == "below 0"
    alone = analysis.paired_difference({0: 0.7, 5: 0.9}, {0: 0.6})  # seed 5 has no pair
    assert alone["seeds"] == [0] and alone["ci95"] is None and alone["reading"].startswith("no interval")
    assert analysis.t_quantile(4) == pytest.approx(2.7764, abs=1e-4)


def test_compare_pairs_every_method_with_the_baseline_and_with_each_other():
    runs = runs_of(
        {
            ("noisy", "baseline"): {0: 0.60, 1: 0.62},
            ("noisy", "nsegment+"): {0: 0.61, 1: 0.64},
            ("noisy", "nsegment+online"): {0: 0.62, 1: 0.62},
        }
    )
    summary = analysis.compare(runs, ["nsegment+", "baseline", "nsegment+online"], ["noisy"])["miou"]["noisy"]
    assert list(summary["cells"]) == ["baseline", "nsegment+", "nsegment+online"]  # the reference first
    assert summary["cells"]["baseline"]["mean"] == pytest.approx(0.61)
    assert summary["cells"]["baseline"]["std"] == pytest.approx(math.sqrt(2) * 0.01)
    differences = summary["differences"]
    assert list(differences) == ["nsegment+ - baseline", "nsegment+online - baseline", "nsegment+online - nsegment+"]
    assert differences["nsegment+ - baseline"]["values"] == pytest.approx([0.01, 0.02])
    assert differences["nsegment+online - nsegment+"]["values"] == pytest.approx([0.01, -0.02])


def test_at_the_baselines_best_evaluation_every_method_is_read_at_that_step():
    def run(method, seed, curve):
        evals = [{"step": step, "miou": value} for step, value in zip((10, 20, 30), curve, strict=True)]
        return {"condition": "noisy", "method": method, "seed": seed, "miou": curve[-1], "evals": evals}

    runs = [
        run("baseline", 0, (0.5, 0.7, 0.6)),  # best at step 20
        run("nsegment+", 0, (0.5, 0.66, 0.69)),
        run("baseline", 1, (0.5, 0.6, 0.65)),  # best at step 30
        run("nsegment+", 1, (0.55, 0.7, 0.66)),
    ]
    entry = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"], at="baseline_best")["miou"]["noisy"]
    assert entry["steps"] == {0: 20, 1: 30}
    assert entry["cells"]["baseline"]["values"] == [0.7, 0.65]
    assert entry["differences"]["nsegment+ - baseline"]["values"] == pytest.approx([-0.04, 0.01])
    last = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"])["miou"]["noisy"]
    assert last["differences"]["nsegment+ - baseline"]["values"] == pytest.approx([0.09, 0.01])


def test_convergence_plateau_and_classes_by_hand():
    # 8 evaluations: the last quarter is the last 2, measured from the 6th value (0.80) to the last.
    flat = analysis.plateau([0.2, 0.5, 0.6, 0.7, 0.75, 0.80, 0.803, 0.805])
    assert flat["relative_change"] == pytest.approx(0.005 / 0.80) and flat["plateau"] is True
    rising = analysis.plateau([0.2, 0.5, 0.6, 0.7, 0.75, 0.80, 0.81, 0.82])
    assert rising["relative_change"] == pytest.approx(0.025) and rising["plateau"] is False
    assert analysis.plateau([0.5])["plateau"] is None
    # 5 evaluations: a quarter rounds up to 2, from the 3rd value.
    assert analysis.plateau([0.1, 0.2, 0.4, 0.5, 0.6])["relative_change"] == pytest.approx(0.5)
    # Class 2 absent from the validation labels (0 pixels): predicted (IoU 0) or not (None), it is not judged.
    run = {"iou": [0.9, 0.06, 0.0, 0.05, 0.0], "class_pixels": [50, 20, 0, 10, 5]}
    learned = analysis.classes_learned(run)
    assert learned["lost_classes"] == [3, 4] and learned["every_class_learned"] is False
    assert learned["classes_present"] == 4 and learned["learned_share"] == 0.5 and learned["learned"] is True
    assert analysis.classes_learned(run, floor=0.07)["learned"] is False  # 1 of 4 above 0.07
    # A record made before train recorded class_pixels: the classes with an IoU are the ones judged.
    assert analysis.classes_learned({"iou": [0.9, 0.5, None]})["every_class_learned"] is True


# 4 classes, all in the validation labels; at seed 1 the baseline lost class 3 (IoU 0), NSegment+ kept it.
COLLAPSE_RUNS = {
    ("baseline", 0): ([0.9, 0.8, 0.6, 0.5], [0.5, 0.4, 0.3, 0.2]),
    ("nsegment+", 0): ([0.9, 0.8, 0.7, 0.5], [0.5, 0.4, 0.4, 0.2]),
    ("baseline", 1): ([0.9, 0.8, 0.6, 0.0], [0.5, 0.4, 0.3, 0.0]),
    ("nsegment+", 1): ([0.9, 0.8, 0.6, 0.6], [0.5, 0.4, 0.3, 0.3]),
    ("baseline", 2): ([0.9, 0.8, 0.6, 0.5], [0.5, 0.4, 0.3, 0.2]),
    ("nsegment+", 2): ([0.9, 0.8, 0.5, 0.5], [0.5, 0.4, 0.2, 0.2]),
}


def collapse_run(method: str, seed: int, iou: list, boundary: list) -> dict:
    final = {"miou": sum(iou) / 4, "boundary_miou": sum(boundary) / 4, "band_miou": sum(boundary) / 4}
    final.update(iou=iou, boundary_iou=boundary, band_iou=boundary)
    evals = [{"step": 10, **final}, {"step": 20, **final}]  # flat: a plateau
    return {"condition": "noisy", "method": method, "seed": seed, **final, "class_pixels": [9] * 4, "evals": evals}


def test_class_collapse_and_the_collapse_robust_metrics_by_hand():
    from nsegaug.study import collapse

    runs = [collapse_run(method, seed, *values) for (method, seed), values in COLLAPSE_RUNS.items()]
    summary = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"])
    plain = summary["miou"]["noisy"]["differences"]["nsegment+ - baseline"]
    # mIoU: baseline 0.7, 0.575, 0.7; NSegment+ 0.725, 0.725, 0.675.
    assert plain["values"] == pytest.approx([0.025, 0.15, -0.025])
    # Seed 1's +0.15 is class 3 alone (the other classes are equal): 0.15 of the 0.2 summed |differences|.
    pair = plain["collapse"]["pairs"][1]
    assert pair["lost_only_by"] == {"baseline": [3]} and pair["contribution"] == pytest.approx(0.15)
    assert list(plain["collapse"]["pairs"]) == [1] and plain["collapse"]["dominated"] is True
    assert plain["warnings"][0].startswith("dominated by class collapse: seed 1: class 3 lost by baseline only")
    # Over the classes both runs learned: all 4 at seeds 0 and 2, classes 0-2 at seed 1 (equal there).
    robust = summary["miou_learned"]["noisy"]["differences"]["nsegment+ - baseline"]
    assert robust["classes"] == {0: [0, 1, 2, 3], 1: [0, 1, 2], 2: [0, 1, 2, 3]}
    assert robust["values"] == pytest.approx([0.025, 0.0, -0.025]) and robust["mean"] == pytest.approx(0.0)
    # std 0.025, n 3: half-width t(0.975, 2) 4.302653 x 0.025 / sqrt(3) = 0.0621033.
    assert robust["half_width"] == pytest.approx(0.0621033, abs=1e-6) and robust["verdict"] == "no resolvable effect"
    boundary = summary["boundary_miou_learned"]["noisy"]["differences"]["nsegment+ - baseline"]
    # Boundary IoU over the same classes: 0.375 - 0.35, 0.4 - 0.4, 0.325 - 0.35.
    assert boundary["values"] == pytest.approx([0.025, 0.0, -0.025])
    assert summary["miou_learned"]["noisy"]["cells"] is None  # a pair metric has no per-method cell
    rates = collapse.collapse_rates(runs, ["baseline", "nsegment+"], ["noisy"])
    assert rates["by_cell"]["noisy"]["baseline"] == {
        "runs": 3,
        "collapsed": 1,
        "rate": 1 / 3,
        "lost": {0: [], 1: [3], 2: []},
    }
    assert rates["by_method"]["nsegment+"]["collapsed"] == 0
    # A floor of 0.65 (a study file's collapse_iou): classes 2 and 3 count as lost in a run of every pair.
    higher = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"], floor=0.65)["miou_learned"]["noisy"]
    assert higher["differences"]["nsegment+ - baseline"]["classes"] == {0: [0, 1], 1: [0, 1], 2: [0, 1]}


def test_runs_that_did_not_learn_give_no_verdict_whatever_their_interval():
    runs = [collapse_run(method, seed, *values) for (method, seed), values in COLLAPSE_RUNS.items()]
    # An online method whose runs learned 1 of 4 classes: 0.30 above the floor, the others at 0.01.
    runs += [collapse_run("nsegment+online", seed, [0.3, 0.01, 0.01, 0.01], [0.1, 0.0, 0.0, 0.0]) for seed in range(3)]
    for run in runs[-3:]:
        run["miou"] += 0.001 * run["seed"]  # a tight, nonzero spread: an interval off 0
    entry = analysis.compare(runs, ["baseline", "nsegment+", "nsegment+online"], ["noisy"])["miou"]["noisy"]
    online = entry["differences"]["nsegment+online - baseline"]
    assert online["ci95"][1] < 0 and online["verdict"] is None and online["warnings"] == []
    assert online["reading"] == (
        "no verdict: 3 of 6 runs did not learn (fewer than half of the classes in the validation labels above IoU 0.05)"
    )
    assert entry["differences"]["nsegment+ - baseline"]["verdict"] == "no resolvable effect"
    assert analysis.convergence(runs[-1])["learned"] is False and analysis.convergence(runs[0])["learned"] is True


def test_the_paired_chart_holds_zero_and_every_interval_whole():
    from nsegaug.study.charts import paired_figure
    from nsegaug.study.report import analyse

    runs = [collapse_run(method, seed, *values) for (method, seed), values in COLLAPSE_RUNS.items()]
    study = {"methods": ["baseline", "nsegment+"], "conditions": ["noisy"], "seeds": [0, 1, 2], "primary": "miou"}
    record = analyse({"study": study, "runs": runs})
    figure = paired_figure(record)
    for axis, metric in zip(figure.axes, analysis.ALL_METRICS, strict=False):
        low, high = axis.get_ylim()
        entry = record["last"][metric]["noisy"]["differences"]["nsegment+ - baseline"]
        assert low < 0 < high and low <= min(entry["ci95"]) and max(entry["ci95"]) <= high, metric
        assert axis.get_title().startswith(analysis.METRIC_NAMES[metric])
    assert (
        record["headline"][0]
        == "primary comparison: nsegment+ - baseline, noisy labels, last evaluation, 3 paired seed(s)"
    )


@pytest.mark.parametrize("recorded", ["class_pixels", "nothing"])
def test_a_run_whose_learning_cannot_be_judged_withholds_the_verdict_and_says_why(recorded):
    """A run without per-class IoU (an older or hand-made record): nothing says it learned, so no comparison it is
    in gives a verdict, and the reading and a warning say why (on 0f2d1df: a verdict, and no word of it)."""
    runs = [collapse_run(method, seed, *values) for (method, seed), values in COLLAPSE_RUNS.items()]
    unjudged = runs[1]  # nsegment+ seed 0
    unjudged["iou"] = None
    if recorded == "nothing":
        del unjudged["class_pixels"]
    assert analysis.convergence(unjudged)["learned"] is None
    entry = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"])["miou"]["noisy"]
    difference = entry["differences"]["nsegment+ - baseline"]
    why = "learning not judged for 1 of 6 runs (nsegment+ seed 0: no per-class IoU)"
    assert difference["verdict"] is None and difference["reading"] == f"no verdict: {why}"
    assert why in difference["warnings"] and len(difference["values"]) == 3  # the numbers are still there
    effects = analysis.condition_effects([{**run, "condition": "clean"} for run in runs] + runs, ["nsegment+"])
    assert effects["miou"]["nsegment+"]["verdict"] is None  # the noise's cost: the same run is in it
    # The same runs, each with its per-class IoU: a verdict.
    unjudged.update(iou=COLLAPSE_RUNS[("nsegment+", 0)][0], class_pixels=[9] * 4)
    judged = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"])["miou"]["noisy"]
    assert judged["differences"]["nsegment+ - baseline"]["verdict"] is not None


def test_at_the_baselines_best_evaluation_a_run_is_judged_learned_at_that_evaluation():
    """Online NSegment+ learns late: 1 of 4 classes at step 10, where the baseline was best, all 4 by its end.
    Read at step 10 its value supports no verdict, whatever its end says; at the last evaluation it does."""
    runs = [collapse_run(method, seed, *values) for (method, seed), values in COLLAPSE_RUNS.items()]
    for run in runs:
        run["evals"][0]["miou"] += 0.1 if run["method"] == "baseline" else 0.0  # the baseline is best at step 10
    for seed in range(3):
        late = collapse_run("nsegment+online", seed, [0.8, 0.7, 0.6, 0.5], [0.4, 0.4, 0.4, 0.4])
        late["evals"][0] = {**late["evals"][0], "iou": [0.3, 0.01, 0.01, 0.01], "miou": 0.0825 + 0.001 * seed}
        runs.append(late)
    methods = ["baseline", "nsegment+", "nsegment+online"]
    best = analysis.compare(runs, methods, ["noisy"], at="baseline_best")["miou"]["noisy"]
    assert best["steps"] == {0: 10, 1: 10, 2: 10}
    online = best["differences"]["nsegment+online - baseline"]
    assert online["ci95"][1] < 0 and online["verdict"] is None
    assert online["reading"] == (
        "no verdict: 3 of 6 runs did not learn by the evaluation compared (fewer than half of the classes in the "
        "validation labels above IoU 0.05)"
    )
    assert best["differences"]["nsegment+ - baseline"]["verdict"] is not None  # every run there had learned
    last = analysis.compare(runs, methods, ["noisy"])["miou"]["noisy"]["differences"]["nsegment+online - baseline"]
    assert last["verdict"] is not None and analysis.convergence(runs[-1])["learned"] is True
