"""MAP@5 exactly as the Happywhale/Kaggle metric: seed 001's Table 1 and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from finprint_train.metrics import (
    NEW_INDIVIDUAL,
    Ranking,
    average_precision_at_5,
    cmc,
    confusion_matrix,
    macro_f1,
    map_at_5,
    predictions_with_new,
    rank_individuals,
)


def test_seed_001_table_1_worked_example() -> None:
    # Correct label "A", predictions [A, B, C, D, E]: rel(1) = 1 and P(1) = 1.0; the later
    # ranks contribute nothing, so AP@5 = 1.0 (seed 001, Table 1 and the text after it).
    assert average_precision_at_5(["A", "B", "C", "D", "E"], "A") == 1.0
    # "If we had multiple images, we would compute each one's AP similarly and average".
    assert map_at_5([["A", "B", "C", "D", "E"]], ["A"]) == 1.0


@pytest.mark.parametrize(
    ("predictions", "truth", "expected"),
    [
        (["B", "A", "C", "D", "E"], "A", 1 / 2),
        (["B", "C", "A", "D", "E"], "A", 1 / 3),
        (["B", "C", "D", "E", "A"], "A", 1 / 5),
        (["B", "C", "D", "E", "F", "A"], "A", 0.0),  # rank 6 is outside the top 5
        (["B", "C"], "A", 0.0),
        (["B", "A", "A", "A", "A"], "A", 1 / 2),  # repeats of the right label count once
        ([NEW_INDIVIDUAL, "B"], NEW_INDIVIDUAL, 1.0),
        ([], "A", 0.0),
    ],
)
def test_average_precision_hand_made(predictions: list[str], truth: str, expected: float) -> None:
    assert average_precision_at_5(predictions, truth) == pytest.approx(expected)


def test_map_is_the_mean_over_images() -> None:
    predictions = [["A", "B"], ["C", "B"], ["X", "Y", "Z", "W", "V"]]
    assert map_at_5(predictions, ["A", "B", "Q"]) == pytest.approx((1 + 0.5 + 0) / 3)
    assert map_at_5([], []) == 0.0


def test_individuals_are_ranked_by_their_best_photo() -> None:
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    ranking = rank_individuals(np.array([[0.8, 0.6]]), gallery, ["a", "b", "b"])
    assert ranking.ids == [["b", "a"]]  # b's second photo (0.96) beats a's only one (0.8)
    assert ranking.scores[0] == pytest.approx([0.96, 0.8])


def test_new_individual_is_inserted_at_the_threshold() -> None:
    ranking = Ranking(ids=[["a", "b", "c"]], scores=[np.array([0.9, 0.6, 0.3])])
    assert predictions_with_new(ranking, 0.5) == [["a", "b", NEW_INDIVIDUAL, "c"]]
    assert predictions_with_new(ranking, 0.95) == [[NEW_INDIVIDUAL, "a", "b", "c"]]
    assert predictions_with_new(ranking, 0.1) == [["a", "b", "c", NEW_INDIVIDUAL]]
    many = Ranking(ids=[list("abcdef")], scores=[np.linspace(0.9, 0.4, 6)])
    assert predictions_with_new(many, 0.0) == [list("abcde")]  # only the top 5 are kept


def test_kaggle_style_mixture_of_known_and_new_queries() -> None:
    ranking = Ranking(
        ids=[["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]],
        scores=[np.array([0.9, 0.2]), np.array([0.7, 0.65]), np.array([0.4, 0.3]), np.array([0.8, 0.1])],
    )
    truths = ["a", "a", NEW_INDIVIDUAL, NEW_INDIVIDUAL]
    predictions = predictions_with_new(ranking, 0.5)
    # a at 1 -> 1; a after b at 2 -> 1/2; new first -> 1; new after b -> 1/2
    assert map_at_5(predictions, truths) == pytest.approx((1 + 0.5 + 1 + 0.5) / 4)


def test_cmc_counts_known_queries_only() -> None:
    ranking = Ranking(ids=[["a", "b"], ["b", "a"], ["a", "b"]], scores=[np.zeros(2)] * 3)
    curve = cmc(ranking, ["a", "a", NEW_INDIVIDUAL], max_rank=2)
    assert curve.tolist() == [0.5, 1.0]


def test_confusion_and_macro_f1() -> None:
    matrix = confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    # class 0: P=1, R=.5, F1=2/3; class 1: P=2/3, R=1, F1=.8; class 2 has no support
    assert macro_f1(matrix) == pytest.approx((2 / 3 + 0.8) / 2)


def test_letterbox_bars_are_trimmed_and_real_photos_kept() -> None:
    from PIL import Image

    from finprint.imaging import letterbox_content

    boxed = Image.new("RGB", (300, 300), "white")
    boxed.paste(Image.new("RGB", (300, 200), (30, 60, 90)), (0, 50))
    # found on a 128-px thumbnail, so exact to about 2 px
    assert np.allclose(letterbox_content(boxed), (0, 50, 300, 250), atol=3)
    wide_fluke = Image.new("RGB", (300, 300), "white")  # a 2.5:1 photo keeps only 40% of the square
    wide_fluke.paste(Image.new("RGB", (300, 120), (30, 60, 90)), (0, 90))
    assert np.allclose(letterbox_content(wide_fluke), (0, 90, 300, 210), atol=3)
    pillarbox = Image.new("RGB", (400, 200), "white")
    pillarbox.paste(Image.new("RGB", (200, 200), (90, 60, 30)), (100, 0))
    assert np.allclose(letterbox_content(pillarbox), (100, 0, 300, 200), atol=4)
    white_sky = Image.new("RGB", (300, 200), "white")  # a bright sky along one edge is no bar
    white_sky.paste(Image.new("RGB", (300, 120), (30, 60, 90)), (0, 80))
    assert letterbox_content(white_sky) == (0, 0, 300, 200)
    dark = Image.new("RGB", (320, 180), (20, 40, 60))
    assert letterbox_content(dark) == (0, 0, 320, 180)
    mostly_white = Image.new("RGB", (300, 300), "white")  # a tiny dark spot is not a photo
    mostly_white.paste(Image.new("RGB", (20, 20), "black"), (140, 140))
    assert letterbox_content(mostly_white) == (0, 0, 300, 300)
