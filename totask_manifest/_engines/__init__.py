"""Engines run a job's steps: ``local`` (one process) and ``ray`` (a cluster)."""
