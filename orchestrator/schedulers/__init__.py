"""Schedulers decide whether running trials continue; see `base.Scheduler` for the interface."""
