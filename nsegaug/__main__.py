"""``python -m nsegaug`` runs the CLI (torchrun launches it this way)."""

from .cli import main

main(prog_name="nsegaug")
