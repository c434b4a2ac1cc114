"""A labeling job on disk: layout, state, selection, checkpoints, progress."""
