"""The Synapse (Datamaker) backend: client, export, apply with journal and rollback, ToTask."""
