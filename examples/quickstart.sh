#!/usr/bin/env bash
# generate -> preview -> a short training run, on the example data. From the repository root:
#
#   pip install torch==2.13.0 && pip install -e '.[train]' && bash examples/quickstart.sh
#
# Writes out/quickstart/. Under a minute on 2 CPU cores; the training is far too short to mean
# anything, it only shows the pipeline end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/quickstart
rm -rf "$out"

# 1. Five deformed copies of every training mask, in parallel, with a manifest.
nsegaug generate --labels examples/data/train/labels --images examples/data/train/images --copies 5 --ignore-index 255 --out "$out/train"

# 2. Look at them: a contact sheet of the most changed masks, and the per-(alpha, sigma) statistics.
nsegaug preview --manifest "$out/train" --n 4 --pick most-changed --out "$out/preview.png"
nsegaug preview --manifest "$out/train" --stats

# 3. Train a small model for a few epochs with p = 0.5 (the paper's), evaluated on the clean val labels.
nsegaug train --manifest "$out/train/manifest.jsonl" --val-labels examples/data/val/labels --val-images examples/data/val/images --num-classes 19 --prob 0.5 --epochs 2 --width 8 --crop 128 128 --batch-size 4 --workers 0 --out "$out/run"
nsegaug evaluate --checkpoint "$out/run/best.pt" --labels examples/data/val/labels --images examples/data/val/images --out "$out/run/val.json"
echo "done: see $out/preview.png, $out/run/metrics.json and $out/run/curves.png"
