"""Images: stored once per organisation (SHA-256), EXIF prefills the encounter, bad uploads change nothing."""

from __future__ import annotations

import hashlib
import io
import threading
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import ExifTags, Image
from sqlalchemy import func, select

from services.catalog.adapters.db.models import Media
from services.catalog.encounters.media.service import StoredMedia, store_media_alone

from .helpers import Catalogue, MakeCatalogue, jpeg

pytestmark = pytest.mark.servers


def media_rows(client: TestClient, org_id: str) -> int:
    with client.app.state.catalog.sessions() as session:
        return session.scalar(select(func.count()).select_from(Media).where(Media.org_id == org_id))


def stored_objects(client: TestClient, org_id: str) -> list[str]:
    return list(client.app.state.catalog.store.list(f"media/{org_id}/"))


def test_same_bytes_twice_are_stored_once(client: TestClient, cat: Catalogue) -> None:
    data = jpeg(1)
    first = client.post(cat.url("/media"), files={"file": ("a.jpg", data, "image/jpeg")})
    second = client.post(cat.url("/media"), files={"file": ("renamed.jpg", data, "image/jpeg")})
    assert (first.status_code, first.json()["duplicate"]) == (201, False)
    assert (second.status_code, second.json()["duplicate"]) == (200, True)
    assert second.json()["media"]["id"] == first.json()["media"]["id"]
    assert first.json()["media"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert media_rows(client, cat.org_id) == 1
    assert stored_objects(client, cat.org_id) == [
        f"media/{cat.org_id}/{hashlib.sha256(data).hexdigest()[:2]}/{hashlib.sha256(data).hexdigest()}"
    ]
    metrics = client.get("/metrics").text
    assert "finprint_catalog_media_dedup_hits_total" in metrics


def test_different_bytes_are_different_media(client: TestClient, cat: Catalogue) -> None:
    a, b = cat.upload(jpeg(2)), cat.upload(jpeg(3))
    assert a["media"]["id"] != b["media"]["id"]
    assert media_rows(client, cat.org_id) == 2


def test_dedup_is_per_organisation(
    client: TestClient, cat: Catalogue, make_catalogue: MakeCatalogue, other_org: str
) -> None:
    data = jpeg(4)
    mine = cat.upload(data)
    theirs = make_catalogue(other_org).upload(data)
    assert theirs["duplicate"] is False
    assert theirs["media"]["id"] != mine["media"]["id"]
    assert theirs["media"]["org_id"] == other_org


def _exif_with_time_and_gps() -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif).update(
        {
            ExifTags.Base.DateTimeOriginal: "2023:08:02 14:05:09",
            ExifTags.Base.OffsetTimeOriginal: "-07:00",
        }
    )
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (Fraction(48), Fraction(30), Fraction(36)),
            ExifTags.GPS.GPSLongitudeRef: "W",
            ExifTags.GPS.GPSLongitude: (Fraction(123), Fraction(9), Fraction(0)),
        }
    )
    return exif


def test_exif_date_time_and_position_prefill_the_encounter(cat: Catalogue) -> None:
    uploaded = cat.upload(jpeg(5, exif=_exif_with_time_and_gps()))
    prefill = uploaded["encounter_prefill"]
    assert datetime.fromisoformat(prefill["occurred_at"]) == datetime.fromisoformat(
        "2023-08-02T14:05:09-07:00"
    )
    assert prefill["occurred_at"].endswith("-07:00")
    assert prefill["latitude"] == pytest.approx(48.51)
    assert prefill["longitude"] == pytest.approx(-123.15)
    assert uploaded["media"]["exif_latitude"] == pytest.approx(48.51)


def test_enrolment_without_encounter_uses_the_exif(cat: Catalogue) -> None:
    media = cat.upload(jpeg(6, exif=_exif_with_time_and_gps()))["media"]
    result = cat.post(
        "/enrolments",
        {"photos": [{"media_id": media["id"], "annotations": [{"box": {"x": 0, "y": 0, "width": 10, "height": 10}}]}]},
    )
    encounter = result["encounter"]
    assert encounter["occurred_at"] == "2023-08-02T14:05:09-07:00"
    assert (encounter["latitude"], encounter["longitude"]) == (pytest.approx(48.51), pytest.approx(-123.15))


def test_exif_fills_what_an_enrolment_leaves_out(cat: Catalogue) -> None:
    media = cat.upload(jpeg(16, exif=_exif_with_time_and_gps()))["media"]
    result = cat.post(
        "/enrolments",
        {
            "encounter": {"observer": "Ana", "location_name": "Haro Strait"},
            "photos": [{"media_id": media["id"], "annotations": [{"box": {"x": 0, "y": 0, "width": 10, "height": 10}}]}],
        },
    )
    encounter = result["encounter"]
    assert (encounter["observer"], encounter["occurred_at"]) == ("Ana", "2023-08-02T14:05:09-07:00")
    assert encounter["latitude"] == pytest.approx(48.51)
    given = cat.upload(jpeg(17, exif=_exif_with_time_and_gps()))["media"]
    result = cat.post(
        "/enrolments",
        {
            "encounter": {"occurred_at": "2024-01-01T00:00:00Z", "latitude": 10.0, "longitude": 20.0},
            "photos": [{"media_id": given["id"], "annotations": [{"box": {"x": 0, "y": 0, "width": 10, "height": 10}}]}],
        },
    )
    assert (result["encounter"]["latitude"], result["encounter"]["occurred_at"]) == (
        10.0,
        "2024-01-01T00:00:00Z",
    )


def test_a_photo_without_exif_prefills_nothing(cat: Catalogue) -> None:
    prefill = cat.upload(jpeg(7))["encounter_prefill"]
    assert (prefill["occurred_at"], prefill["latitude"], prefill["longitude"]) == (None, None, None)


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "GIF")
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    data = jpeg(8, size=(320, 240))
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (b"definitely not an image", 415, "unsupported-format"),
        (gif(), 415, "unsupported-format"),
        (jpeg(8)[:200], 422, "truncated"),
        (truncated_jpeg(), 422, "corrupt"),
    ],
)
def test_bad_uploads_are_refused_and_store_nothing(
    client: TestClient, cat: Catalogue, payload: bytes, status: int, reason: str
) -> None:
    response = client.post(cat.url("/media"), files={"file": ("x.jpg", payload, "image/jpeg")})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason
    assert media_rows(client, cat.org_id) == 0
    assert stored_objects(client, cat.org_id) == []


def test_width_and_height_are_those_of_the_upright_photo(cat: Catalogue) -> None:
    """Boxes come from the detector in the EXIF-oriented frame; the stored size must be that frame."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # the camera was held upright: the viewer rotates 90 degrees
    media = cat.upload(jpeg(9, size=(120, 80), exif=exif))["media"]
    assert (media["width"], media["height"]) == (80, 120)
    box_in_upright_frame = {"x": 0, "y": 90, "width": 80, "height": 30}
    cat.post("/annotations", {"media_id": media["id"], "box": box_in_upright_frame})


def test_empty_upload_is_a_clear_422(client: TestClient, cat: Catalogue) -> None:
    response = client.post(cat.url("/media"), files={"file": ("x.jpg", b"", "image/jpeg")})
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]


def test_a_real_photo_is_stored_and_downloaded_through_a_presigned_url(
    client: TestClient, cat: Catalogue, shared_data: Path
) -> None:
    photo = sorted((shared_data / "curvrank_examples" / "images").iterdir())[0]
    data = photo.read_bytes()
    uploaded = cat.upload(data, filename=photo.name)
    media = uploaded["media"]
    with Image.open(photo) as image:
        assert (media["width"], media["height"]) == image.size
    link = client.get(cat.url(f"/media/{media['id']}/url"), params={"expires_s": 120}).json()
    assert "sig=" in link["url"] and "expires=" in link["url"]
    downloaded = client.get(link["url"])
    assert downloaded.status_code == 200
    assert hashlib.sha256(downloaded.content).hexdigest() == media["sha256"]
    content = client.get(cat.url(f"/media/{media['id']}/content"))
    assert content.content == data and content.headers["content-type"] == media["content_type"]


def test_readiness_reports_database_and_object_store(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body["ready"] is True
    assert set(body["checks"]) == {"database", "object_store"}


def test_concurrent_uploads_of_the_same_bytes_store_one_media(client: TestClient, cat: Catalogue) -> None:
    """Racing uploads all pass the "already stored?" check; the unique key lets one row in and the
    others answer with it."""
    context = client.app.state.catalog
    data = jpeg(77)
    barrier = threading.Barrier(4)
    results: list[StoredMedia] = []

    def upload() -> None:
        with context.sessions() as session:
            barrier.wait()
            results.append(
                store_media_alone(
                    session,
                    context.store,
                    cat.org_id,
                    data,
                    filename="race.jpg",
                    uploaded_by=None,
                    limits=context.settings.image_limits(),
                )
            )

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4
    assert len({r.media.id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False, True, True, True]
    assert media_rows(client, cat.org_id) == 1
