"""Encounters (sightings): when, where, who saw what."""
