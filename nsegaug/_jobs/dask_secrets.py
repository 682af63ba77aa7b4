"""Credentials for the Dask workers nsegaug starts itself: given by a worker plugin, never in the task graph.

A run's tasks carry its job, and the job's storage options travel with it;
for the dask backend they travel without their secrets
([`nsegaug.storage.split_secrets`][nsegaug.storage.split_secrets]). The workers of a local cluster,
started by nsegaug on this machine, get the secrets from this plugin;
the workers of a cluster at ``--scheduler`` use their own credentials (their
environment, profile or instance role), as any Dask deployment does.
"""

from __future__ import annotations

from distributed import WorkerPlugin

from .. import storage


class StorageSecrets(WorkerPlugin):
    """Sets a worker's secret storage options once, when the worker starts (or joins later)."""

    name = "nsegaug-storage-secrets"

    def __init__(self, secrets: dict) -> None:
        self.secrets = secrets

    def setup(self, worker) -> None:
        storage.keep_secrets(self.secrets)
