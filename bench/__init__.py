"""Benchmarks: each prints a table and ratios, and writes JSON with --json."""

# The detector and the embedder share this machine's cores, as two pods with one CPU each would:
# with one onnxruntime thread an inference costs 15 ms of CPU, with two 21 ms (measured on these
# cores: a second thread cuts its wall time by only a fifth), so one thread each serves more photos.
SHARED_CORES_MODEL_SETTINGS = {"FINPRINT_DETECTOR_INTRA_OP_THREADS": "1", "FINPRINT_EMBEDDER_INTRA_OP_THREADS": "1"}
