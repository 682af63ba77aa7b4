"""Train an mmsegmentation config with mmengine's Runner (mmseg's tools/train.py is not installed with its wheel).

    python examples/mmseg/train.py examples/mmseg/nsp_online.py
    python examples/mmseg/train.py examples/mmseg/nsp_manifest.py --work-dir work_dirs/manifest \
        --cfg-options train_cfg.max_iters=20 train_dataloader.num_workers=0 train_dataloader.persistent_workers=False

The work folder (default ``work_dirs/CONFIG_NAME``) gets the log, the
validation metrics (``*/vis_data/scalars.json``) and the checkpoints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_runner(argv: list[str]):
    """The mmengine ``Runner`` for the config and overrides of ``argv``."""
    from mmengine.config import Config, DictAction
    from mmengine.runner import Runner

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("config", help="config file")
    parser.add_argument("--work-dir", help="where logs and checkpoints go (default: work_dirs/CONFIG_NAME)")
    parser.add_argument(
        "--cfg-options", nargs="+", action=DictAction, default={}, help="override settings: key=value ..."
    )
    args = parser.parse_args(argv)
    config = Config.fromfile(args.config)  # imports custom_imports: nsegaug.mmseg registers its classes
    config.merge_from_dict(args.cfg_options)
    config.work_dir = args.work_dir or str(Path("work_dirs") / Path(args.config).stem)
    return Runner.from_cfg(config)


def main(argv: list[str]) -> int:
    build_runner(argv).train()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
