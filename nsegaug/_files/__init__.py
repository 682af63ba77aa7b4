"""Files and folders as nsegaug handles them below its public modules (internal).

- ``label_folders``: walking a label folder (never into a run's own output), pairing each mask with its
  image, naming the outputs (name templates);
- ``local``: bytes on this machine's disk: atomic writes, and the files nsegaug keeps for itself opened
  without following links ([`nsegaug.storage`][nsegaug.storage] goes through it for local paths);
- ``lock``: one run per output or run folder, on a disk or in a bucket;
- ``params_file``: the strength file (``params.toml``) that ``nsegaug calibrate`` writes and ``--params``
  reads.
"""
