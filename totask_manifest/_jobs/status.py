"""A job's status, spelled once: what ``job.json`` and ``JobResult`` hold, and what apply requires.

Plain strings, not an enum: they are written to and read from ``job.json`` as they are, and a
status read from an older file compares equal without conversion.
"""

from __future__ import annotations

#: running now, or killed without a final status (``status`` says which)
RUNNING = "RUNNING"
#: stopped by a signal: ``resume`` carries on
STOPPED = "STOPPED"
#: ended by an error, or with nothing labeled: ``resume`` or ``chain`` carries on
FAILED = "FAILED"
#: every selected line labeled, failed or routed, and the output manifest written
COMPLETED = "COMPLETED"
STATUSES = (RUNNING, STOPPED, FAILED, COMPLETED)

#: a run's status only, never a job's: a run (``job.json``'s ``runs``) whose process was found gone
#: before it recorded its end (killed, or its lease taken over)
INTERRUPTED = "INTERRUPTED"
