"""Figures of an organisation's catalogue, for charts."""
