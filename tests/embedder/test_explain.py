"""POST /v1/explain on real pairs (two photos of one animal, three species): the heatmaps say something.

The masking test: hiding the cells a heatmap highlights (its top eighth) lowers the pair's cosine
similarity more than hiding as many cells drawn at random, on average and for most photos. The masked
inputs are embedded through /v1/embed/pixels, the same model as the explanation."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from finprint.imaging import ImageLimits, load_model_input
from finprint.schemas.pixels import PIXELS_MEDIA_TYPE, encode_pixels
from services.embedder.domain.explain import cell_mask, covered, highlighted
from tests.photos import individuals_with

pytestmark = pytest.mark.slow

SHARE = 0.125
RANDOM_DRAWS = 8
PAIRS = {"kaggle_humpback2019": 5, "noaa_rightwhale_heads": 3, "beluga_2022": 3}


@pytest.fixture(scope="module")
def pairs(shared_data: Path) -> list[tuple[Path, Path]]:
    found = []
    for dataset, count in PAIRS.items():
        found += [(a, b) for a, b in individuals_with(shared_data, photos=2, count=count, dataset=dataset)]
    return found


async def embedded(client: httpx.AsyncClient, pixels: np.ndarray) -> np.ndarray:
    response = await client.post("/v1/embed/pixels", content=encode_pixels(pixels),
                                 headers={"content-type": PIXELS_MEDIA_TYPE})
    assert response.status_code == 200, response.text
    return np.array([r["embedding"] for r in response.json()["results"]], dtype=np.float32)


async def test_an_explanation_has_two_heatmaps_and_overlays(embedder: httpx.AsyncClient,
                                                           pairs: list[tuple[Path, Path]]) -> None:
    a, b = pairs[0]
    response = await embedder.post("/v1/explain", files=[("images", (p.name, p.read_bytes(), "image/jpeg"))
                                                         for p in (a, b)])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["grid"] == 8 and len(body["photos"]) == 2
    embedded_pair = (await embedder.post("/v1/embed", files=[("images", (p.name, p.read_bytes(), "image/jpeg"))
                                                              for p in (a, b)])).json()["results"]
    expected = float(np.dot(embedded_pair[0]["embedding"], embedded_pair[1]["embedding"]))
    assert body["similarity"] == pytest.approx(expected, abs=1e-4)
    for photo, path in zip(body["photos"], (a, b)):
        heat = np.array(photo["heatmap"])
        assert heat.shape == (8, 8) and heat.max() > 0
        x0, y0, x1, y1 = load_model_input(path.read_bytes(), 256, ImageLimits(), trim_letterbox=True).region
        with Image.open(io.BytesIO(base64.b64decode(photo["overlay_png"]))) as overlay:
            assert overlay.format == "PNG" and max(overlay.size) == 384
            # The overlay has the shape of the photo the model saw (letterbox bars trimmed), not its square input.
            assert overlay.width / overlay.height == pytest.approx((x1 - x0) / (y1 - y0), rel=0.02)
    one = await embedder.post("/v1/explain", files=[("images", (a.name, a.read_bytes(), "image/jpeg"))])
    assert one.status_code == 422


async def test_masking_the_highlighted_region_lowers_the_similarity_more_than_a_random_one(
        embedder: httpx.AsyncClient, pairs: list[tuple[Path, Path]], model_repository: Path) -> None:
    card = json.loads((model_repository / "finprint_embedder" / "finprint.json").read_text())
    size, trim = card["input_size"], bool(card.get("trim_letterbox"))
    rng = np.random.default_rng(0)
    highlighted_drops, random_drops = [], []
    for a, b in pairs:
        response = await embedder.post("/v1/explain", files=[("images", (p.name, p.read_bytes(), "image/jpeg"))
                                                             for p in (a, b)])
        assert response.status_code == 200, response.text
        body = response.json()
        grid = body["grid"]
        inputs = [load_model_input(p.read_bytes(), size, ImageLimits(), trim_letterbox=trim).pixels for p in (a, b)]
        whole = await embedded(embedder, np.stack(inputs))
        for side in (0, 1):
            heat = np.array(body["photos"][side]["heatmap"])
            top = highlighted(heat, SHARE)
            draws = []
            for _ in range(RANDOM_DRAWS):
                cells = np.zeros(grid * grid, dtype=bool)
                cells[rng.choice(grid * grid, size=int(top.sum()), replace=False)] = True
                draws.append(cells.reshape(grid, grid))
            masked = np.stack([covered(inputs[side], cell_mask(size, grid, cells)) for cells in [top, *draws]])
            similarities = (await embedded(embedder, masked)) @ whole[1 - side]
            base = float(whole[0] @ whole[1])
            highlighted_drops.append(base - similarities[0])
            random_drops.append(float(np.mean(base - similarities[1:])))
    highlighted_drops_a, random_drops_a = np.array(highlighted_drops), np.array(random_drops)
    wins = float(np.mean(highlighted_drops_a > random_drops_a))
    print(f"\nmasking test: {len(highlighted_drops)} photos ({len(pairs)} pairs), top {SHARE:.0%} of cells: "
          f"mean cosine drop highlighted {highlighted_drops_a.mean():.4f} (median {np.median(highlighted_drops_a):.4f}), "
          f"random {random_drops_a.mean():.4f} (median {np.median(random_drops_a):.4f}); highlighted larger for "
          f"{wins:.0%}")
    assert highlighted_drops_a.mean() > 1.5 * random_drops_a.mean()
    assert wins >= 0.8
