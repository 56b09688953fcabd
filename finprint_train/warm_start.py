"""Warm starts: a new training run that begins from an exported embedder (``model.onnx``).

A shipped model is the best starting point for the next one (a longer run, a user's own
catalogue), but only its ONNX file is kept, and the exporter folds every backbone
BatchNorm into the convolution before it (``W' = W * g / sigma``, ``b' = beta + (b - mu) g / sigma``).
The folded network is loaded exactly: each convolution takes the folded weight, and the
BatchNorm after it becomes the identity plus the folded bias (``running_mean = 0``,
``running_var = 1 - eps``, ``weight = 1``, ``bias = b'``). Such BatchNorms must stay in eval
mode while training (``freeze_batchnorm``): batch statistics would undo the folding.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from finprint_train.model import FinprintNet

log = logging.getLogger("finprint_train")


def _conv_bn_pairs(net: FinprintNet) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Every backbone convolution with the BatchNorm that follows it, in execution order."""
    backbone = net.backbone
    pairs = [(backbone._conv_stem, backbone._bn0)]
    for block in backbone._blocks:
        if block._block_args.expand_ratio != 1:
            pairs.append((block._expand_conv, block._bn0))
        pairs.append((block._depthwise_conv, block._bn1))
        pairs.append((block._project_conv, block._bn2))
    pairs.append((backbone._conv_head, backbone._bn1))
    return pairs


def _initializers(path: Path) -> tuple[dict[str, np.ndarray], list[tuple[str, str | None]]]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    convs = [(node.input[1], node.input[2] if len(node.input) > 2 else None) for node in model.graph.node if node.op_type == "Conv"]
    return values, convs


def load_exported_embedder(net: FinprintNet, path: Path) -> None:
    """Load the weights of an exported ``finprint_embedder`` ONNX file into ``net``.

    ``net`` must have the same backbone, embedding size and species list as the export. Raises
    ``ValueError`` when the file does not fit (another backbone, another head).
    """
    values, convs = _initializers(path)
    pairs = _conv_bn_pairs(net)
    if len(convs) != len(pairs):
        raise ValueError(f"{path}: {len(convs)} convolutions, the {net.backbone_name} backbone has {len(pairs)}")
    with torch.no_grad():
        for (weight_name, bias_name), (conv, bn) in zip(convs, pairs):
            weight = torch.from_numpy(values[weight_name].copy())
            if weight.shape != conv.weight.shape:
                raise ValueError(f"{path}: convolution {weight_name} is {tuple(weight.shape)}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(weight)
            bias = torch.from_numpy(values[bias_name].copy()) if bias_name else torch.zeros(conv.out_channels)
            bn.weight.fill_(1.0)
            bn.bias.copy_(bias)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        embedding = [v for k, v in values.items() if v.shape == (net.embedding.in_features, net.embedding.out_features)]
        if len(embedding) != 1:
            raise ValueError(f"{path}: no single {net.embedding.in_features}x{net.embedding.out_features} embedding matrix")
        net.embedding.weight.copy_(torch.from_numpy(embedding[0].T.copy()))
        for name in ("embedding_bn.weight", "embedding_bn.bias", "embedding_bn.running_mean", "embedding_bn.running_var",
                     "species.weight", "species.bias", "pool.p"):
            target = net.get_parameter(name) if name in dict(net.named_parameters()) else net.get_buffer(name)
            source = values.get(f"net.{name}")
            if source is None or tuple(source.shape) != tuple(target.shape):
                raise ValueError(f"{path}: {name} missing or of another shape")
            target.copy_(torch.from_numpy(np.array(source)))
    log.info("warm start: %d convolutions and the heads from %s (backbone BatchNorms folded)", len(pairs), path)
