"""The gateway's domain logic: orchestration of an identification and an enrolment."""
