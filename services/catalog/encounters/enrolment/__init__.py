"""Enrolment: an encounter's photos and their whole result written in one transaction."""
