"""``python -m nsegaug`` runs the CLI (torchrun launches it this way)."""

from ._entry import run

run(prog_name="nsegaug")
