"""Encounters and what they hold: the sighting itself, its images (media), the annotations of the
animals in them, and enrolment, which writes all of it in one transaction."""
