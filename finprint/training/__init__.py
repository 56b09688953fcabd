"""Training, evaluation and export of Finprint's models (the optional `train` extra).

Nothing here is imported by the services: they only load the ONNX files this package writes
into ``model_repository/``.
"""
