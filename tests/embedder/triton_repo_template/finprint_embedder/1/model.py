"""Stands in for Triton's onnxruntime backend: runs the same ONNX file on each dynamic batch."""

import json

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

OUTPUTS = ["embedding", "species_probs"]


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = config["parameters"]["onnx_path"]["string_value"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the test machine's cores are shared with the client side
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        # Dynamic batching hands over several requests at once: one inference for all of them,
        # as the onnxruntime backend does.
        inputs = [pb_utils.get_input_tensor_by_name(r, "images").as_numpy() for r in requests]
        outputs = self.session.run(OUTPUTS, {"images": np.concatenate(inputs)})
        responses, offset = [], 0
        for batch in inputs:
            rows = slice(offset, offset + len(batch))
            offset += len(batch)
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(out[rows])) for name, out in zip(OUTPUTS, outputs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
