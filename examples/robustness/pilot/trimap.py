"""Trimap mIoU of a saved model: mIoU over the pixels within D px of a class boundary of the labels (pilot tool).

python examples/robustness/pilot/trimap.py RUN/last.pt VAL/labels VAL/images [D ...]   # default D: 1 2 3

Prints JSON: for each D, and for all pixels ("all"), the mIoU, per-class IoU
and pixel count. D = 1 takes the pixels that have a 4-neighbour of another
class. Images pair with labels by stem (``.jpg``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from nsegaug.train import confusion_matrix, load_model, summarize


def boundary_distance(labels: np.ndarray) -> np.ndarray:
    """Distance of each pixel to the nearest pixel that has a 4-neighbour of another class (0 on those)."""
    edge = np.zeros(labels.shape, bool)
    across, down = labels[:, 1:] != labels[:, :-1], labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    edge[1:, :] |= down
    edge[:-1, :] |= down
    return ndimage.distance_transform_edt(~edge)


def main(argv: list[str]) -> None:
    checkpoint, labels, images = Path(argv[0]), Path(argv[1]), Path(argv[2])
    widths = [float(value) for value in argv[3:]] or [1.0, 2.0, 3.0]
    torch.set_num_threads(1)
    trained = load_model(checkpoint)
    config = trained.config
    classes = config.num_classes
    totals = {str(width): np.zeros((classes, classes), np.int64) for width in widths}
    totals["all"] = np.zeros((classes, classes), np.int64)
    for path in sorted(labels.glob("*.png")):
        truth = np.array(Image.open(path))
        image = cv2.cvtColor(cv2.imread(str(images / f"{path.stem}.jpg")), cv2.COLOR_BGR2RGB)
        prediction = trained.predict(image)
        distance = boundary_distance(truth)
        totals["all"] += confusion_matrix(prediction, truth, classes, config.ignore_index)
        for width in widths:
            band = distance < width
            totals[str(width)] += confusion_matrix(prediction[band], truth[band], classes, config.ignore_index)
    report = {}
    for key, confusion in totals.items():
        metrics = summarize(confusion)
        report[key] = {"miou": metrics["miou"], "iou": metrics["iou"], "pixels": metrics["pixels"]}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
