"""The failures a run reports to the command line (SPEC §7), shared by pipeline and cluster."""

from __future__ import annotations


class RunFailed(RuntimeError):
    """Nothing was committed (exit status 1)."""
