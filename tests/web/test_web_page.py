"""A researcher's loop through the web page in a real browser: sign in with an API key, upload an
encounter, identify a photo and see the candidates, store it, review and confirm it, and find the
new sighting on the individual's page. Identification quality is not asserted here (the models
have their own evaluation); what is asserted is that the page shows what the API answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from finprint.client import FinprintClient
from tests.web.conftest import _humpbacks_by_individual, watched_tab

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.web.conftest import WebSystem, Whale

pytestmark = [pytest.mark.slow, pytest.mark.servers]


@pytest.fixture
def page(browser: Browser, web_system: WebSystem) -> Iterator[Page]:
    with watched_tab(browser, web_system.url, 1280, 900) as tab:
        yield tab


def sign_in_with_key(page: Page, key: str) -> None:
    page.goto("/")
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()
    page.get_by_role("heading", name="Identify a photo").wait_for()


def wait_for_images(page: Page, selector: str, count: int) -> None:
    """Until ``count`` images under ``selector`` have loaded (presigned links, fetched by the browser)."""
    page.wait_for_function(
        "([selector, count]) => [...document.querySelectorAll(selector)]"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= count", arg=[selector, count])


def test_a_wrong_api_key_is_refused_with_the_servers_reason(page: Page) -> None:
    page.goto("/")
    page.get_by_label("API key", exact=True).fill("fp_not-a-real-key")
    page.get_by_role("button", name="Use this key").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "The API key is not valid" in alert.inner_text()
    assert page.get_by_role("navigation", name="Main").is_hidden()


def test_a_user_signs_in_and_an_expired_access_token_is_renewed(page: Page, web_system: WebSystem) -> None:
    with FinprintClient(web_system.url, api_key=web_system.api_key) as fp:
        fp.request("POST", "/v1/users", json={"email": "reviewer@web.test", "display_name": "Ria",
                                              "password": "a long passphrase", "role": "reviewer"})
    page.goto("/")
    page.get_by_label("E-mail").fill("reviewer@web.test")
    page.get_by_label("Password").fill("a long passphrase")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Identify a photo").wait_for()
    assert page.get_by_text("reviewer@web.test").is_visible()

    # An access token the server no longer accepts: the page renews it with the refresh token.
    page.evaluate("""() => {
        const stored = JSON.parse(sessionStorage.getItem("finprint.credentials"));
        sessionStorage.setItem("finprint.credentials", JSON.stringify({...stored, accessToken: "expired"}));
    }""")
    page.get_by_role("link", name="Individuals", exact=True).click()
    page.get_by_role("heading", name="Individuals").wait_for()
    assert page.get_by_role("alert").count() == 0
    assert page.evaluate("() => JSON.parse(sessionStorage.getItem('finprint.credentials')).accessToken") != "expired"


def test_a_revoked_api_key_ends_the_session_with_the_reason(page: Page, web_system: WebSystem) -> None:
    with FinprintClient(web_system.url, api_key=web_system.api_key) as fp:
        key = fp.request("POST", "/v1/api-keys", json={"name": "short-lived", "role": "viewer"}).json()
        sign_in_with_key(page, key["key"])
        fp.request("DELETE", f"/v1/api-keys/{key['id']}")
    page.get_by_role("link", name="Individuals", exact=True).click()
    page.get_by_role("heading", name="Use an API key").wait_for()
    assert "revoked" in page.get_by_role("status").inner_text()


def test_the_researchers_loop(page: Page, web_system: WebSystem, two_humpbacks: list[Whale],
                              tmp_path: Path) -> None:
    first, second = two_humpbacks
    with FinprintClient(web_system.url, api_key=web_system.api_key) as fp:
        fp.enrol(second.photos[:2], individual_id=second.code, observed_at="2024-06-02T09:00:00Z",
                 latitude=42.3, longitude=-70.3, location="Stellwagen Bank")
    sign_in_with_key(page, web_system.api_key)

    # Upload an encounter of a known whale through the form.
    page.get_by_role("link", name="Upload encounter").click()
    page.set_input_files("#encounter-photos", [str(p) for p in first.photos[:2]])
    page.get_by_label("Location").fill("Great South Channel")
    page.get_by_label("Latitude").fill("41.8")
    page.get_by_label("Longitude").fill("-69.4")
    page.get_by_label("Observer").fill("web test")
    page.get_by_label("Catalogue code (optional)").fill(first.code)
    page.get_by_role("button", name="Upload encounter").click()
    page.get_by_text("Stored 2 photo(s) as one encounter").wait_for()
    page.get_by_role("link", name=first.code).wait_for()

    # A photo the page refuses shows the server's reason, not a stack trace or a bare status.
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("field notes, not a photo")
    page.get_by_role("link", name="Identify", exact=True).click()
    page.set_input_files("#identify-photo", str(not_an_image))
    assert "not a recognised image format" in page.get_by_role("alert").inner_text()

    # Identify a third photo: its box, species and candidates with their catalogued photos.
    page.set_input_files("#identify-photo", str(first.photos[2]))
    result = page.locator(".result").first
    result.wait_for()
    assert page.locator(".preview .box-overlay rect").count() >= 1
    assert result.locator(".species-list li").count() >= 1
    assert "%" in result.locator(".new-individual").inner_text()
    candidates = result.locator(".candidate:not(.query) a.code")
    candidates.first.wait_for()
    codes = candidates.all_inner_texts()
    assert set(codes) <= {first.code, second.code} and codes
    wait_for_images(page, ".result .candidate:not(.query) img", 1)
    page.screenshot(path=str(tmp_path / "identify.png"), full_page=True)

    page.get_by_role("button", name="Store for review").click()
    page.get_by_text("waiting in the").wait_for()

    # The review queue: comment, then confirm the best candidate.
    page.get_by_role("link", name="review queue", exact=True).click()
    page.get_by_role("heading", name="Review queue").wait_for()
    card = page.locator("article.review").first
    card.locator("summary", has_text="Comments").click()
    card.get_by_label("Add a comment").fill("The trailing-edge notch matches.")
    card.get_by_role("button", name="Comment", exact=True).click()
    card.locator(".comment").get_by_text("The trailing-edge notch matches.").wait_for()
    chosen = card.locator(".candidate:not(.query) a.code").first.inner_text()
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    card.get_by_role("button", name=f"Confirm {chosen}").click()
    page.get_by_text(f"Confirmed as {chosen}").wait_for()

    # The individual's page has the new sighting, its photo and the map.
    page.get_by_role("link", name=chosen, exact=True).click()
    page.get_by_role("heading", name=chosen, exact=True).wait_for()
    assert page.locator(".timeline-entry").count() == 2
    wait_for_images(page, ".photo-grid img", 3)  # two enrolled photos of each whale, plus this one
    page.wait_for_function("() => document.querySelector('.map-frame')?.dataset.ready === 'true'")
    assert page.locator(".map-frame").get_attribute("data-markers") == "1"  # the identified photo has no position
    page.screenshot(path=str(tmp_path / "individual.png"), full_page=True)

    # The catalogue lists both whales.
    from playwright.sync_api import expect

    page.get_by_role("link", name="Individuals", exact=True).click()
    expect(page.locator(".individual-grid li")).to_have_count(2)
    page.get_by_label("Search", exact=True).fill(second.code)
    expect(page.locator(".individual-grid li")).to_have_count(1)
    expect(page.locator(".individual-grid li .code")).to_have_text(second.code)


def test_a_reviewer_declares_a_new_individual(page: Page, web_system: WebSystem,
                                              stranger_photos: list[Path]) -> None:
    with FinprintClient(web_system.url, api_key=web_system.api_key) as fp:
        stored = fp.identify(stranger_photos[0], store=True)
    assert stored.results, "the photo must be stored for review for this check to mean anything"
    identification_id = stored.results[0].identification_id
    sign_in_with_key(page, web_system.api_key)
    page.get_by_role("link", name="Review queue").click()
    page.get_by_role("heading", name="Review queue").wait_for()
    card = page.locator(f'article.review[data-identification-id="{identification_id}"]')
    card.get_by_role("button", name="New individual…").click()
    dialog = page.get_by_role("dialog", name="Declare a new individual")
    dialog.get_by_label("Catalogue code").fill("HW-WEB-NEW")
    dialog.get_by_label("Species").select_option("humpback_whale")
    dialog.get_by_role("button", name="Create").click()
    page.get_by_text("Catalogued as new individual").wait_for()

    with FinprintClient(web_system.url, api_key=web_system.api_key) as fp:
        created = fp.individual("HW-WEB-NEW")
        declared = [i["id"] for i in fp.review_queue("new_individual")]
    assert created["species"] == "humpback_whale" and created["sightings_total"] == 1
    assert identification_id in declared


def test_the_review_queue_shows_the_animal_under_review(page: Page, web_system: WebSystem,
                                                          stranger_photos: list[Path]) -> None:
    with FinprintClient(web_system.url, api_key=web_system.api_key) as fp:
        stored = fp.identify(stranger_photos[1], store=True)
    assert stored.results, "the photo must be stored for review for this check to mean anything"
    sign_in_with_key(page, web_system.api_key)
    page.get_by_role("link", name="Review queue").click()
    card = page.locator(f'article.review[data-identification-id="{stored.results[0].identification_id}"]')
    crop = card.locator(".query svg.crop image")
    crop.wait_for(timeout=10_000)
    assert crop.get_attribute("href")


def test_several_photos_of_one_encounter_are_identified_together(page: Page, web_system: WebSystem,
                                                                   shared_data: Path, tmp_path: Path) -> None:
    photos = _humpbacks_by_individual(shared_data)
    whale = sorted(w for w, p in photos.items() if len(p) >= 4)[-1]  # none of the other tests' whales
    paths = sorted(photos[whale])[:4]
    with FinprintClient(web_system.url, api_key=web_system.api_key) as fp:
        fp.enrol(paths[:2], individual_id="HW-WEB-ENC")
    sign_in_with_key(page, web_system.api_key)
    page.get_by_role("link", name="Identify", exact=True).click()
    page.set_input_files("#identify-photo", [str(p) for p in paths[2:4]])
    page.get_by_role("heading", name="The encounter's animal (2 photos)", exact=False).wait_for()
    assert "HW-WEB-ENC" in page.locator(".fused-ranking").inner_text()
    assert page.locator(".encounter-photos li").count() == 2
    page.screenshot(path=str(tmp_path / "identify-encounter.png"), full_page=True)
