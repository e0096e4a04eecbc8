"""The version of visual-summaries (read by the build, the cache keys and ``vsum --version``)."""

__version__ = "0.1.0"
