"""What this process may use of the machine: its CPUs (``cpus``: affinity and cgroup quotas, the worker and
thread counts a run starts) and its memory (``memory``: what may still be taken, and the ledger the machine's
nsegaug processes share), read from its control groups (``cgroups``). Internal; pure Python, cheap to import.
"""
