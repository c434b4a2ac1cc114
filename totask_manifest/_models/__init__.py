"""Model runners and post-processing for the inference annotator."""
