"""The model pipeline: training, export and evaluation of Finprint's models (the `train` extra).

Training, export and the checkpoint evaluation (``evaluate``) need torch; ``evaluation/`` (the
identification protocol measured through the API and offline with onnxruntime), ``data``,
``metrics`` and ``config`` do not. Nothing here is imported by the services or by the kernel
(``finprint/``): they only load the ONNX files this package writes into ``model_repository/``;
the ``finprint`` CLI reaches the commands of ``cli`` by name when the package is installed.
"""
