"""The old name of `trainers/contract.py`, kept only while modules of trainers/elm/ still import it."""
from trainers.contract import Report, TrainerError  # noqa: F401
