"""The lmnas orchestrator: study files, plug-in registry, searchers, schedulers, Ray Tune runner, results."""
__version__ = "0.1.0"
