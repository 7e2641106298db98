"""``python -m dask_pipeline`` is the ``dask-pipeline`` command."""

from .cli import main

raise SystemExit(main())
