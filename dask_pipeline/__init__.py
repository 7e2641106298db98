"""Open edX tracking logs -> video-engagement tables in Parquet, on Dask."""

__version__ = "0.1.0"
