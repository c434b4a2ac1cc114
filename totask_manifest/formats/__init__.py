"""Converters between Ground Truth label values and other annotation formats."""
