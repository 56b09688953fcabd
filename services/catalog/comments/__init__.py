"""Threaded comments on encounters and identifications (the team's discussion of a sighting)."""
