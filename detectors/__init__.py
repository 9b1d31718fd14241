"""Online per-user behaviour models that score feature windows and raise alerts."""
