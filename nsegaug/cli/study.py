"""``nsegaug study``: baseline against NSegment+ on the user's data, paired by seed, with confidence intervals."""

from __future__ import annotations

import click

from . import Command
from .options import LocalPath

EXAMPLE = "nsegaug study examples/robustness/study-quick.toml --out out/study --parallel 2"


def _names(ctx, param, value):
    return tuple(item.strip() for item in value.split(",") if item.strip()) if value else None


def _seeds(ctx, param, value):
    if not value:
        return None
    try:
        return tuple(int(item) for item in value.split(",") if item.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: integers separated by commas, e.g. 0,1,2") from None


@click.command(cls=Command, epilog=f"Example:\n\n  {EXAMPLE}")
@click.argument(
    "study_file", required=False, type=LocalPath("a study file is read from this machine", exists=True, dir_okay=False)
)
@click.option(
    "--out",
    type=LocalPath("a study writes its folder (runs, logs, results) on this machine", file_okay=False),
    required=True,
    help="Output folder.",
)
@click.option("--labels", default=None, help="Training label folder  [study file: data.labels].")
@click.option(
    "--noisy-labels",
    default=None,
    help="The noisy condition's labels, when you have them (another annotation of the same maps), instead of "
    "nsegaug noise's  [study file: data.noisy_labels].",
)
@click.option("--images", default=None, help="Training image folder, paired by name.")
@click.option("--val-labels", default=None, help="Validation label folder (never changed by the study).")
@click.option("--val-images", default=None, help="Validation image folder.")
@click.option("--num-classes", type=click.IntRange(min=1), default=None, help="Number of classes.")
@click.option("--ignore-index", type=int, default=None, help="Label value left out  [default: 255].")
@click.option(
    "--methods",
    callback=_names,
    default=None,
    help="Comma-separated, from baseline, nsegment+ (generate's copies), nsegment+online, nsegment (no "
    "suppression)  [default: baseline,nsegment+].",
)
@click.option("--conditions", callback=_names, default=None, help="clean, noisy or clean,noisy.")
@click.option("--seeds", callback=_seeds, default=None, help="Comma-separated seeds  [default: 0,1,2].")
@click.option("--prob", type=click.FloatRange(0, 1), default=None, help="Chance of a deformed label  [0.5].")
@click.option(
    "--primary",
    default=None,
    help="The primary metric: miou, boundary_miou, band_miou, or the collapse-robust miou_learned, "
    "boundary_miou_learned  [default: miou].",
)
@click.option(
    "--collapse-iou",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help="A class at or below this IoU at the end of a run is lost (class collapse)  [default: 0.05].",
)
@click.option("--generate-option", multiple=True, metavar="KEY=VALUE", help="An option of nsegaug generate.")
@click.option("--noise-option", multiple=True, metavar="KEY=VALUE", help="An option of nsegaug noise (adds 'noisy').")
@click.option("--train-option", multiple=True, metavar="KEY=VALUE", help="An option of nsegaug train, e.g. epochs=8.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True, help="Trainings at once.")
@click.option("--dry-run", is_flag=True, help="Print every command, the count and a time estimate; write nothing.")
@click.option(
    "--probe-steps",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="--dry-run: training steps timed for the estimate, in a temporary folder (0: no estimate).",
)
def study(study_file, out, parallel, dry_run, probe_steps, **options) -> None:
    """Run a paired study on your data: does NSegment+ help, with confidence intervals.

    Trains each method on each condition (the labels as given; with
    [noise] or --noise-option also the same labels with `nsegaug noise`
    added) at each seed, every training a real `nsegaug train` in its own
    folder; the methods of a seed share initial weights, data order, crops,
    scales and flips. A rerun skips finished trainings and resumes
    interrupted ones (Ctrl-C stops it; rerun the same command). Writes
    OUT/results.json, results.md and charts (paired, curves: PNG and SVG):
    each cell's mean and std and each method's paired difference with its
    95 % interval, no verdict from runs that did not learn, and class
    collapse; ends with the primary comparison. See docs/study.md.
    """
    from ..study.driver import check_data, plan_text, run_study
    from ..study.options import parse_assignments
    from ..study.plan import plan_units
    from ..study.run import threads_per_run
    from ..study.spec import load_spec

    overrides = {name: value for name, value in options.items() if not name.endswith("_option")}
    for table in ("generate", "noise", "train"):
        given = options[f"{table}_option"]
        overrides[table] = parse_assignments(given, f"--{table}-option") if given else None
    spec = load_spec(study_file, overrides)
    if not dry_run:
        run_study(spec, out, parallel, lambda message: click.echo(message, err=True))
        return
    check_data(spec)
    units = plan_units(spec, out, threads_per_run(parallel))
    click.echo(plan_text(spec, units, parallel))
    if probe_steps:
        click.echo(_estimate(spec, units, parallel, probe_steps))


def _estimate(spec, units, parallel: int, probe_steps: int) -> str:
    from ..study.probe import count_maps, estimate, probe_seconds_per_step, steps_per_training

    trainings = sum(unit.kind == "train" for unit in units)
    steps = steps_per_training(spec, count_maps(spec.labels))
    seconds = probe_seconds_per_step(spec, probe_steps, parallel)
    total = estimate(trainings, steps, seconds, parallel)
    return (
        f"\nestimate: {trainings} trainings x {steps} steps x {seconds:.3f} s per step (timed over {probe_steps} "
        f"steps of {spec.methods[0]}), {parallel} at a time: about {total / 60:.1f} min of training, without "
        "evaluations and data preparation"
    )
