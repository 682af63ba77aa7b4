#!/usr/bin/env bash
# Hashes of reference runs on the example data: what a refactor must leave unchanged, byte for byte.
# generate (float32 default, and float64), noise, and a short CPU training run's metrics.json figures.
# Usage: scripts/reference-hashes.sh [WORK_FOLDER]   (prints one "name sha256" line per run)
set -euo pipefail
work="${1:-$(mktemp -d)}"
data="$(cd "$(dirname "$0")/.." && pwd)/examples/data"
rm -rf "$work" && mkdir -p "$work"
tree_hash() { (cd "$1" && find . -type f ! -name manifest.meta.json -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
nsegaug generate --labels "$data/train/labels" --images "$data/train/images" --out "$work/gen" -k 3 --seed 7 -q -j 2
echo "generate $(tree_hash "$work/gen")"
nsegaug generate --labels "$data/train/labels" --out "$work/gen64" -k 2 --seed 3 --precision float64 -q -j 2 2>/dev/null \
    && echo "generate-float64 $(tree_hash "$work/gen64")"
nsegaug noise --labels "$data/train/labels" --out "$work/noise" --seed 5 -q -j 2
echo "noise $(tree_hash "$work/noise")"
OMP_NUM_THREADS=1 nsegaug train --manifest "$work/gen" --val-labels "$data/val/labels" --val-images "$data/val/images" \
    --num-classes 19 --width 4 --batch-size 2 --crop 64 64 --workers 0 --iters 6 --device cpu --threads 1 --out "$work/run" -q \
    >/dev/null 2>&1
python - "$work/run/metrics.json" <<'PY'
import hashlib, json, sys
metrics = json.load(open(sys.argv[1]))
figures = {k: v for k, v in metrics.items() if isinstance(v, (int, float, list)) and "time" not in k and "per_s" not in k and "elapsed" not in k}
print("train-metrics", hashlib.sha256(json.dumps(figures, sort_keys=True).encode()).hexdigest()[:16])
PY
