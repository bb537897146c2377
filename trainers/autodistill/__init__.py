"""AutoDistill (Zhang et al. 2022): the student template, its initialisation from a teacher and the trainer."""
