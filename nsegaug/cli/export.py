"""``nsegaug export``: the (image, label) pairs of a manifest as lists other tools read."""

from __future__ import annotations

from pathlib import Path

import click

from . import Command
from .options import Location, storage_options_option

FORMATS = ("csv", "jsonl", "mmseg")
COPIES = ("all", "deformed", "original")
EXAMPLES = """Examples:

\b
  nsegaug export --manifest out/train --format csv --out out/train-pairs.csv
  nsegaug export --manifest out/train --format mmseg --out out/train-split.txt --relative-to out
"""


@click.command(cls=Command, epilog=EXAMPLES)
@click.option(
    "--manifest",
    type=Location(exists=True),
    required=True,
    help="manifest.jsonl of a generate --images run, or its folder.",
)
@click.option(
    "--format",
    "form",
    type=click.Choice(FORMATS),
    default="csv",
    show_default=True,
    help="csv or jsonl: one pair per line; mmseg: an ann_file split list, and the dataset config on stdout.",
)
@click.option(
    "--copies",
    type=click.Choice(COPIES),
    default="all",
    show_default=True,
    help="Which labels: sources and copies, the deformed copies only, or the sources only.",
)
@click.option(
    "--relative-to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write paths relative to this folder (e.g. a config's data_root)  [default: absolute]",
)
@click.option(
    "--labels",
    type=Location(exists=True, file_okay=False),
    default=None,
    help="Where the manifest's labels are now, if they moved.",
)
@click.option(
    "--images",
    type=Location(exists=True, file_okay=False),
    default=None,
    help="Where its images are now, if they moved.",
)
@click.option(
    "--out",
    type=Location(dir_okay=False),
    default=None,
    help="The list to write  [default: stdout; required for mmseg]",
)
@click.option(
    "--allow-changed-labels",
    is_flag=True,
    help="List labels edited since generate as they are  [default: each listed label is checked against the "
    "manifest's checksum first; a changed one is refused, naming it]",
)
@storage_options_option
def export(manifest, form, copies, relative_to, labels, images, out, allow_changed_labels, storage_options) -> None:
    """Write a manifest's (image, label) pairs, so that nobody has to glob the output folder."""
    from .. import storage
    from ..export import manifest_pairs, mmseg_split, pairs_csv, pairs_jsonl, shown
    from ..storage import write_file

    storage.configure(storage_options)
    # A URL's credentials join the storage options, as in every command: never in a message nor in the pairs.
    manifest, labels, images, out = storage.use_credentials(manifest, labels, images, out)
    verify = not allow_changed_labels
    if form == "mmseg":
        if out is None:
            raise click.UsageError("--format mmseg writes a split list: give --out FILE")
        split = mmseg_split(manifest, copies, labels, images, verify)
        write_file(out, split.split_text().encode("utf-8"))
        ann_file = str(out) if relative_to is None else shown(out, relative_to)
        click.echo(split.config(ann_file, relative_to=relative_to), nl=False)
        written = f"{len(split.names)} names, {len(split.datasets)} label set(s)"
        click.echo(f"wrote {storage.shown(out)}: {written}", err=True)
        return
    pairs = list(manifest_pairs(manifest, copies, labels, images, verify))
    text = (pairs_csv if form == "csv" else pairs_jsonl)(pairs, relative_to)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_file(out, text.encode("utf-8"))
        click.echo(f"wrote {storage.shown(out)}: {len(pairs)} pairs", err=True)
