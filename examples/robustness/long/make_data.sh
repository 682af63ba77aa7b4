#!/bin/sh
# Makes the data of the long-schedule study (PREREGISTRATION.md) in WORK/data: 20 training and 30 validation
# synthetic street scenes of 128x256, 6 classes, persons and riders 1 px wider, no ignore bands. Deterministic
# (every file has its own generator seeded by (seed, split, index)); nothing is downloaded. The noisy labels are
# made by the study itself (its [noise] table).
#
#   sh examples/robustness/long/make_data.sh /work/study2-work
set -eu
WORK=${1:?usage: make_data.sh WORK}
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
PYTHON=${PYTHON:-python}
"$PYTHON" "$REPO/examples/make_sample_data.py" --categories 6 --ignore-band 0 --objects 30 --thicken 1 \
    --thicken-classes 11,12 --train 20 --val 30 --height 128 --width 256 --seed 0 --out "$WORK/data"
