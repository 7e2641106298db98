"""The failures a run reports to the command line (SPEC §7), shared by pipeline and cluster."""

from __future__ import annotations


class RunFailed(RuntimeError):
    """Nothing was committed (exit status 1)."""


def older_tables(out: object, why: str) -> str:
    """The one line for an output directory an older release wrote (``store.outdated``)."""
    return (
        f"{out} holds tables of an older dask-pipeline ({why}); run once over all the logs "
        "with --rebuild (or into a new --out); the tables there are intact"
    )
