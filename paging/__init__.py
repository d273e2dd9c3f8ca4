"""Paging as data: routing, grouping, silences, inhibition, on-call rotations and escalation.

A pure library (no I/O besides reading its YAML): the notifier (notifier/) runs it against the
database, the CLI checks and shows it.
"""
