"""Exports of an organisation's catalogue: encounters CSV, organised dataset ZIP, Darwin Core Archive."""
