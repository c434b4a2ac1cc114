"""The ToTask action: Synapse tasks in, pre-annotated Synapse tasks out, as one resumable job.

It sits above ``api`` and ``synapse``: ``action`` runs export, a job and apply; ``params``
checks the SDK guide's parameters; ``runs`` decides between resuming and starting over.
Users import ``ToTaskAction`` from ``totask_manifest``.
"""
