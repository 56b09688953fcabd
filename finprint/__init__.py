"""Finprint: photo-identification of whales and dolphins.

This package holds what every service shares (settings, logging, metrics, the problem+json
error model, HTTP clients between services, the wire schemas) and the command line. The services
themselves live in ``services/<name>/`` and talk to each other only through HTTP contracts.
"""

__version__ = "0.1.0"
