"""Running studies on Ray clusters: launcher and KubeRay configs, job submission helpers."""
