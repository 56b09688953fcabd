"""Annotations: one animal in one image, with its box, view, species and embedding."""
