"""Real servers for tests and benchmarks, started on 127.0.0.1 and stopped by PID.

Each module is also a pytest plugin (``tests/conftest.py`` loads them) providing session
fixtures: ``postgres`` (PostgreSQL), ``s3_server`` (an S3 server for the minio SDK),
``triton_server`` (Triton Inference Server), ``prometheus_server``.
"""
