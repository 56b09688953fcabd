"""Re-identification quality of the product: one protocol, measured offline and through the API.

``protocol`` builds, per species, a gallery with distractor individuals and queries of known and
new individuals from the training run's held-out split; ``offline`` scores the shipped ONNX model
on it with onnxruntime, stage by stage; ``api`` enrols the same gallery through the public API
and identifies the same queries; ``report`` puts them side by side. Nothing here needs torch.
"""
