"""The lmnas orchestrator: study files, plug-in registry, searchers, schedulers, Ray Tune runner, results."""
from orchestrator import ray_env

# Before any module of the package imports Ray: an embedded Ray listens on loopback only.
ray_env.configure()

__version__ = "0.1.0"
