"""The append-only audit log: every change to an individual, decisions, encounter edits, enrolments."""
