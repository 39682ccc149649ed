"""coding-bench core: the study directory, MIMIC-III loading, sampling, coder exports and scoring."""

__version__ = "0.1.0"
