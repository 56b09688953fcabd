"""The gateway's domain: pure rules and shapes (forms, public answers, principals), no I/O; the
use cases that call the services with them are in ``services.gateway.application``."""
