"""Trainers: turn a configuration into measured metrics.

A trainer is a plain function `train(ctx: TrialContext, report: Report) -> metrics` beside its
`OPTIONS`, `METRICS` and optional hooks (`prepare`, `finish`, `export`): see `trainers/contract.py`.
Trainers import nothing from `orchestrator/`; they run the same in a unit test, a Ray worker or a shell.
"""
