"""The web page's field-work views in a real browser (Debian's Chromium driven by Playwright)
against the system on PostgreSQL and the S3 server: the compare view of the review queue, an
individual's timeline and edits, the maps, the filters, the overview's figures, bulk upload, the
identify page's compare view, an upload from the field, possible duplicates merged or dismissed,
an auto-accepted match taken out, accessibility and a phone's width. The
flows save screenshots into docs/figures/web/ (docs/web.md shows them)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image, ImageChops

from finprint.client import FinprintClient
from tests.photos import individuals_with
from tests.web.conftest import ANALYSIS_TIMEOUT_MS, watched_tab

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.web.conftest import WebSystem

pytestmark = [pytest.mark.slow, pytest.mark.servers]
FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures" / "web"
FIGURE_WIDTH = 1000  # screenshots are shrunk to this width (and to 256 colours) to stay small
FIGURE_CHANGED_PIXELS = 0.02  # a screenshot differing in fewer pixels than this share is not rewritten


@dataclass
class Catalogue:
    """What the module's fixture catalogued, as the API answered it."""

    first: str              # two dated sightings at two places
    second: str             # one dated sighting and one undated one
    first_media: list[str]
    pending_dated: str      # an identification of a dated sighting at Stellwagen Bank
    pending_undated: str    # an identification of an undated sighting
    extra_photos: list[Path]  # of another whale, for the bulk uploads
    field_photo: Path         # of a fourth whale, for the upload from the field


@pytest.fixture(scope="module")
def catalogue(field_system: WebSystem, shared_data: Path) -> Catalogue:
    whales = individuals_with(shared_data, photos=3, count=4)
    first, second, third = whales[0], whales[1], whales[2]
    with FinprintClient(field_system.url, api_key=field_system.api_key) as fp:
        fp.enrol(first[:1], individual_id="HW-F-1", observed_at="2024-06-02T09:00:00-04:00", latitude=42.35,
                 longitude=-70.35, location="Stellwagen Bank", observer="R. Field")
        fp.enrol(first[1:2], individual_id="HW-F-1", observed_at="2024-08-15T14:30:00-04:00", latitude=42.85,
                 longitude=-70.15, location="Jeffreys Ledge")
        fp.enrol(second[:1], individual_id="HW-F-2", observed_at="2024-07-10T10:00:00-04:00", latitude=41.5,
                 longitude=-69.3, location="Great South Channel")
        fp.enrol(second[1:2], individual_id="HW-F-2")
        dated = fp.enrol(first[2:3], observed_at="2025-05-20T08:15:00-04:00", latitude=42.4, longitude=-70.3,
                         location="Stellwagen Bank")
        undated = fp.enrol(second[2:3])
        first_media = [m for s in fp.individual("HW-F-1")["sightings"] for m in s["media_ids"]]
    pending = [i["id"] for e in (dated, undated) for i in e["identifications"] if i["decision"] == "pending"]
    assert len(pending) == 2, "each unnamed photo must wait for review for these tests to mean anything"
    return Catalogue("HW-F-1", "HW-F-2", first_media, pending[0], pending[1], third, whales[3][0])


@contextmanager
def open_page(browser: Browser, system: WebSystem, width: int = 1360, height: int = 900, *,
              bypass_csp: bool = False) -> Iterator[Page]:
    """A signed-in tab of that size; on leaving, no uncaught error, console error or failed page file.
    ``bypass_csp`` lets a test inject axe-core (an inline script)."""
    with watched_tab(browser, system.url, width, height, bypass_csp=bypass_csp) as page:
        page.goto("/")
        page.get_by_label("API key", exact=True).fill(system.api_key)
        page.get_by_role("button", name="Use this key").click()
        page.get_by_role("heading", name="Identify a photo").wait_for()
        yield page


@pytest.fixture
def page(browser: Browser, field_system: WebSystem, catalogue: Catalogue) -> Iterator[Page]:
    with open_page(browser, field_system) as tab:
        yield tab


def api(system: WebSystem) -> FinprintClient:
    return FinprintClient(system.url, api_key=system.api_key)


def save_figure(page: Page, name: str, *, full_page: bool = False) -> None:
    """A screenshot for docs/web.md, shrunk and reduced to a palette so the repository stays small."""
    if full_page:
        page.evaluate("() => window.scrollTo(0, 0)")  # else the sticky header is drawn where the view was
    shot = Image.open(io.BytesIO(page.screenshot(full_page=full_page))).convert("RGB")
    if shot.width > FIGURE_WIDTH:
        shot = shot.resize((FIGURE_WIDTH, round(shot.height * FIGURE_WIDTH / shot.width)), Image.LANCZOS)
    FIGURES.mkdir(parents=True, exist_ok=True)
    target = FIGURES / f"{name}.png"
    if target.exists() and _looks_the_same(shot, target):
        return  # only a clock or a key differs: the committed figure stays (a test run leaves git clean)
    shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def _looks_the_same(shot: Image.Image, path: Path) -> bool:
    """Compared at a quarter of the size, where the palette's dithering averages out but a moved
    header or a new chart does not."""
    with Image.open(path) as old:
        if old.size != shot.size:
            return False
        small = (max(1, shot.width // 4), max(1, shot.height // 4))
        before = old.convert("RGB").resize(small, Image.BOX)
    changed = ImageChops.difference(before, shot.resize(small, Image.BOX)).convert("L").point(
        lambda v: 255 if v > 4 else 0)
    return sum(changed.histogram()[255:]) < FIGURE_CHANGED_PIXELS * small[0] * small[1]


def wait_for_images(page: Page, selector: str, count: int) -> None:
    page.wait_for_function(
        "([selector, count]) => [...document.querySelectorAll(selector)]"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= count", arg=[selector, count])


def translations(page: Page) -> list[list[float]]:
    """Each compare pane's stage translation (x, y) and scale, from its CSS transform."""
    return page.evaluate("""() => [...document.querySelectorAll('dialog.compare .compare-stage')].map(stage => {
        const m = new DOMMatrix(getComputedStyle(stage).transform);
        return [m.e, m.f, m.a, m.d];
    })""")


# --- the review queue's compare view ----------------------------------------------------------

def test_review_cards_are_titled_by_sighting_and_filtered(page: Page, catalogue: Catalogue) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="Review queue").click()
    dated = page.locator(f'article.review[data-identification-id="{catalogue.pending_dated}"]')
    undated = page.locator(f'article.review[data-identification-id="{catalogue.pending_undated}"]')
    expect(dated.locator("h2")).to_have_text("Sighting of 20 May 2025, 08:15 · Stellwagen Bank")
    expect(undated.locator("h2")).to_have_text("Undated sighting")

    page.get_by_label("Date known").select_option("false")
    expect(page.locator("article.review")).to_have_count(1)
    expect(undated).to_have_count(1)
    page.get_by_label("Date known").select_option("")
    page.get_by_label("Place").fill("stellwagen")
    expect(page.locator("article.review")).to_have_count(1)
    expect(dated).to_have_count(1)
    page.get_by_label("Place").fill("")
    page.get_by_label("From", exact=True).fill("2025-05-21")
    expect(page.locator("article.review")).to_have_count(0)
    expect(page.get_by_text("Nothing waiting for review matches these filters.")).to_be_visible()


def test_the_compare_view_zooms_pans_flips_and_decides_by_keyboard(page: Page, field_system: WebSystem,
                                                                    catalogue: Catalogue) -> None:
    from playwright.sync_api import expect

    with api(field_system) as fp:
        item = fp.request("GET", f"/v1/identifications/{catalogue.pending_dated}").json()
        media = fp.request("GET", f"/v1/media/{item['media_id']}").json()
    codes = [c["catalogue_code"] for c in item["candidates"]]
    assert catalogue.first in codes, "the whale's own sightings must be a candidate for this test to mean anything"

    page.get_by_role("link", name="Review queue").click()
    card = page.locator(f'article.review[data-identification-id="{catalogue.pending_dated}"]')
    card.get_by_role("button", name="Compare side by side").click()
    dialog = page.locator("dialog.compare")
    dialog.wait_for()
    wait_for_images(page, "dialog.compare .compare-photo", 2)
    page.wait_for_function("() => document.querySelectorAll('dialog.compare .compare-stage[data-scale]').length === 2")
    query_img = dialog.locator(".compare-pane").first.locator("img.compare-photo")
    # Full resolution: the photo itself, not a thumbnail.
    assert query_img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [media["width"], media["height"]]
    assert dialog.get_attribute("data-candidate") == codes[0]

    # Zoom and pan move both photos together.
    before = translations(page)
    page.keyboard.press("+")
    page.keyboard.press("+")
    zoomed = translations(page)
    assert dialog.get_attribute("data-zoom") == "1.5625"
    for (_, _, k0, _), (_, _, k1, _) in zip(before, zoomed, strict=True):
        assert k1 == pytest.approx(k0 * 1.5625, rel=1e-3)
    box = dialog.locator(".compare-viewport").nth(1).bounding_box()
    assert box
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2 + 30, steps=4)
    page.mouse.up()
    panned = translations(page)
    for (x0, y0, _, _), (x1, y1, _, _) in zip(zoomed, panned, strict=True):
        assert (x1 - x0, y1 - y0) == pytest.approx((40, 30), abs=0.5)

    # Flip mirrors the photo under review only; contrast applies to both.
    page.keyboard.press("f")
    flipped = translations(page)
    assert flipped[0][2] < 0 < flipped[1][2]
    assert dialog.get_by_role("button", name="Flip").get_attribute("aria-pressed") == "true"
    page.keyboard.press("h")
    assert dialog.locator("img.compare-photo.contrast").count() == 2

    # The candidates one key away, and the candidate's other photos.
    for _ in range(codes.index(catalogue.first)):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("code => document.querySelector('dialog.compare').dataset.candidate === code",
                           arg=catalogue.first)
    candidate = dialog.locator(".compare-viewport").nth(1)
    page.wait_for_function("() => document.querySelectorAll('dialog.compare .compare-strip li').length === 2")
    first_photo = candidate.get_attribute("data-media-id")
    page.keyboard.press("p")
    page.wait_for_function("shown => document.querySelectorAll('dialog.compare .compare-viewport')[1]"
                           ".dataset.mediaId !== shown", arg=first_photo)
    assert {first_photo, candidate.get_attribute("data-media-id")} == set(catalogue.first_media)
    wait_for_images(page, "dialog.compare .compare-photo", 2)
    page.keyboard.press("h")  # the screenshot shows the photos as they are

    # "a": the animal's box fills the pane under review, centred (flipped or not).
    page.keyboard.press("a")
    centre = page.evaluate("""() => {
        const pane = document.querySelector('dialog.compare .compare-viewport').getBoundingClientRect();
        const box = document.querySelector('dialog.compare .compare-stage rect').getBoundingClientRect();
        return [box.x + box.width / 2 - (pane.x + pane.width / 2), box.y + box.height / 2 - (pane.y + pane.height / 2),
                Math.max(box.width / pane.width, box.height / pane.height)];
    }""")
    assert centre[0] == pytest.approx(0, abs=2) and centre[1] == pytest.approx(0, abs=2)
    assert centre[2] == pytest.approx(0.9, abs=0.02)
    page.keyboard.press("f")
    page.keyboard.press("0")
    save_figure(page, "compare")

    # "w": why this match, the explanation's heatmaps over both photos, the candidate's pane on the
    # photo that was explained.
    page.keyboard.press("w")
    page.wait_for_function("code => document.querySelector('dialog.compare').dataset.explained === code",
                           arg=catalogue.first, timeout=ANALYSIS_TIMEOUT_MS)
    with api(field_system) as fp:
        why = fp.request("GET", f"/v1/identifications/{catalogue.pending_dated}/explanations/{catalogue.first}").json()
    assert candidate.get_attribute("data-media-id") == why["candidate"]["media_id"]
    wait_for_images(page, "dialog.compare .compare-overlay:not([hidden])", 2)
    assert why["similarity"] == pytest.approx(float(page.locator(".compare-why").inner_text()
                                                    .split("cosine ")[1].split(",")[0]), abs=1e-3)
    save_figure(page, "compare-why")
    page.keyboard.press("w")
    expect(dialog.locator(".compare-overlay:not([hidden])")).to_have_count(0)

    page.keyboard.press("c")
    page.get_by_text(f"Confirmed as {catalogue.first}").wait_for()
    assert dialog.count() == 0
    with api(field_system) as fp:
        decided = fp.request("GET", f"/v1/identifications/{catalogue.pending_dated}").json()
        first = fp.individual(catalogue.first)
    assert decided["decision"] == "confirmed" and decided["individual_id"] == first["id"]


# --- an individual's page ---------------------------------------------------------------------

def test_an_individuals_timeline_intervals_and_edits_with_their_audit_trail(page: Page, field_system: WebSystem,
                                                                             catalogue: Catalogue) -> None:
    from datetime import date

    from playwright.sync_api import expect

    with api(field_system) as fp:
        sightings = fp.individual(catalogue.first)["sightings"]
    days = sorted(date.fromisoformat(s["occurred_at"][:10]) for s in sightings if s["occurred_at"])
    intervals = [(b - a).days for a, b in zip(days, days[1:], strict=False)]
    assert intervals, "the individual must have been resighted for this test to mean anything"

    page.goto(f"/app/#/individuals/{catalogue.first}")
    page.get_by_role("heading", name=catalogue.first, exact=True).wait_for()
    timeline = page.get_by_role("list", name=f"Sightings of {catalogue.first}, oldest first")
    expect(timeline.locator(".timeline-entry")).to_have_count(len(days))
    expect(timeline.locator(".timeline-entry h3").first).to_contain_text("2 Jun 2024")
    expect(timeline.locator(".timeline-entry .timeline-place").first).to_contain_text("Stellwagen Bank")
    assert timeline.locator(".timeline-gap").all_inner_texts() == [f"{d} days later" for d in intervals]
    strip = page.get_by_role("img", name=f"{len(days)} dated sighting(s), 2 Jun 2024 to ")
    assert strip.locator("circle.strip-dot").count() == len(days)
    assert f"intervals {', '.join(map(str, intervals))} days" in page.locator(".resightings").inner_text()
    wait_for_images(page, ".timeline-photos img", len(days))
    # Each photo opens at full resolution: the link is the photo's own presigned URL.
    first_photo = timeline.get_by_role("link", name="Photo 1 of this sighting of HW-F-1, full size").first
    assert first_photo.get_attribute("href") == first_photo.locator("img").get_attribute("src")

    page.get_by_label("Name", exact=True).fill("Salt")
    page.get_by_label("Sex", exact=True).select_option("female")
    page.get_by_label("Notes", exact=True).fill("Notch on the left trailing edge.")
    page.get_by_role("button", name="Save details").click()
    page.get_by_text("Saved.", exact=True).wait_for()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{catalogue.first} · Salt")
    trail = page.get_by_role("list", name=f"Changes to {catalogue.first}, newest first")
    expect(trail.locator("li").first).to_contain_text("name: – → Salt")
    expect(trail.locator("li").first).to_contain_text("sex: unknown → female")
    save_figure(page, "individual", full_page=True)

    with api(field_system) as fp:
        saved = fp.individual(catalogue.first)
        history = fp.request("GET", f"/v1/individuals/{catalogue.first}/history").json()
    assert (saved["name"], saved["sex"], saved["notes"]) == ("Salt", "female", "Notch on the left trailing edge.")
    assert history[-1]["action"] == "updated" and history[-1]["details"]["after"]["name"] == "Salt"
    assert trail.locator("li").count() == len(history)

    # Saving again without a change sends nothing.
    page.get_by_role("button", name="Save details").click()
    page.get_by_text("Nothing has changed.").wait_for()
    page.reload()
    expect(page.get_by_label("Name", exact=True)).to_have_value("Salt")
    expect(page.get_by_label("Sex", exact=True)).to_have_value("female")


# --- maps ---------------------------------------------------------------------------------------

def map_markers(page: Page, frame: str) -> tuple[int, list[int]]:
    """Single markers and the clusters' counts drawn on a map now."""
    return page.evaluate("""frame => {
        const root = document.querySelector(frame);
        const clusters = [...root.querySelectorAll('.marker-cluster')].map(c => Number(c.innerText));
        return [root.querySelectorAll('.sighting-marker').length, clusters];
    }""", frame)


def wait_for_map(page: Page, frame: str = ".map-frame") -> None:
    page.wait_for_function("frame => document.querySelector(frame)?.dataset.ready === 'true'", arg=frame)


def test_maps_show_natural_earth_land_and_cluster_sightings_offline(page: Page, field_system: WebSystem,
                                                                     catalogue: Catalogue) -> None:
    from playwright.sync_api import expect

    origins: set[str] = set()
    page.on("request", lambda request: origins.add("/".join(request.url.split("/")[:3])))
    with api(field_system) as fp:
        encounters = fp.request("GET", "/v1/encounters", params={"limit": 500}).json()["items"]
        of_second = fp.request("GET", "/v1/encounters", params={"individual": catalogue.second}).json()["items"]
    placed = [e for e in encounters if e["latitude"] is not None]
    assert 2 <= len(placed) < len(encounters), "some sightings must lack a position for this test to mean anything"

    page.get_by_role("link", name="Sightings", exact=True).click()
    wait_for_map(page)
    frame = page.get_by_role("region", name="Map of all sightings")
    expect(frame.locator(".map-caption")).to_have_text(
        f"{len(placed)} of {len(encounters)} sighting(s) on the map; the others have no position.")
    # The basemap is Natural Earth's land: long coastline paths, not a rectangle.
    assert frame.get_attribute("data-coast") == "50m"
    coast = frame.locator("path.land").first.get_attribute("d") or ""
    assert coast.count("L") > 100 and coast.count("M") > 1
    assert page.locator("table.sightings tbody tr").count() == len(encounters)
    for encounter in of_second:  # the table names each sighting's individual by its code
        row = page.locator(f'table.sightings tr[data-encounter-id="{encounter["id"]}"]')
        expect(row.get_by_role("link", name=catalogue.second)).to_be_visible()

    # At low zoom the sightings gather into one cluster; zoomed in they separate again.
    page.evaluate("() => document.querySelector('.map-frame').leafletMap.setZoom(3, {animate: false})")
    page.wait_for_function("() => document.querySelectorAll('.map-frame .marker-cluster').length > 0")
    assert map_markers(page, ".map-frame") == [0, [len(placed)]]
    # ... over the world's coasts at 1:110m (1:50m is drawn closer in).
    page.wait_for_function("() => document.querySelector('.map-frame').dataset.coast === '110m'")
    assert frame.locator("path.land").count() >= 1
    page.evaluate("""() => { const map = document.querySelector('.map-frame').leafletMap;
        map.setView([42.6, -70.2], 11, {animate: false}); }""")
    # (the clusters of the lower zoom fade out first)
    page.wait_for_function("""placed => {
        const root = document.querySelector('.map-frame');
        const singles = root.querySelectorAll('.sighting-marker').length;
        const clustered = [...root.querySelectorAll('.marker-cluster')].reduce((n, c) => n + Number(c.innerText), 0);
        return singles >= 1 && singles + clustered <= placed;
    }""", arg=len(placed))
    page.evaluate("() => { const f = document.querySelector('.map-frame'); "
                  "f.leafletMap.fitBounds(f.clusters.getBounds().pad(0.3), {animate: false}); }")
    save_figure(page, "sightings-map")

    # A filter: one individual's sightings, then a place.
    page.get_by_label("Individual", exact=True).fill(catalogue.second)
    wait_for_map(page)
    expect(page.get_by_role("region", name="Map of the sightings that match").locator(".map-caption")).to_contain_text(
        f"of {len(of_second)} sighting(s)")
    expect(page.locator("table.sightings tbody tr")).to_have_count(len(of_second))
    page.get_by_label("Individual", exact=True).fill("")
    page.get_by_label("Place", exact=True).fill("stellwagen")
    expect(page.locator("table.sightings tbody tr")).to_have_count(
        sum(1 for e in encounters if "Stellwagen" in (e["location_name"] or "")))

    # One individual's map on its page.
    page.goto(f"/app/#/individuals/{catalogue.second}")
    wait_for_map(page)
    assert page.locator(".map-frame").get_attribute("data-markers") == str(
        sum(1 for e in of_second if e["latitude"] is not None))
    # The map stays under the sticky header when the page scrolls (its panes are isolated): a
    # marker scrolled under the header is not what a click there reaches.
    page.set_viewport_size({"width": 1360, "height": 300})
    under = page.evaluate("""() => {
        const header = document.querySelector('header.top').getBoundingClientRect();
        const marker = document.querySelector('.map-frame .sighting-marker').getBoundingClientRect();
        window.scrollTo(0, window.scrollY + marker.top + marker.height / 2 - (header.top + header.height / 2));
        const now = document.querySelector('.map-frame .sighting-marker').getBoundingClientRect();
        const hit = document.elementFromPoint(now.left + now.width / 2, now.top + now.height / 2);
        const centre = now.top + now.height / 2;
        window.scrollTo(0, 0);
        return [header.top < centre && centre < header.bottom, !!hit.closest('header.top')];
    }""")
    assert under == [True, True]
    assert origins <= {field_system.url, *{"/".join(fp_url.split("/")[:3]) for fp_url in s3_origins(field_system)}}


def s3_origins(system: WebSystem) -> list[str]:
    """Where the browser may fetch photos from: the presigned links' origin."""
    with api(system) as fp:
        media = fp.request("GET", "/v1/encounters", params={"limit": 1}).json()["items"][0]["media_ids"][0]
        return [fp.media_url(media)]


# --- filters and the overview ------------------------------------------------------------------

def test_the_individuals_list_filters_as_the_api_does(page: Page, field_system: WebSystem,
                                                     catalogue: Catalogue) -> None:
    from playwright.sync_api import expect

    with api(field_system) as fp:
        fp.request("PATCH", f"/v1/individuals/{catalogue.second}", json={"sex": "male"})

        def codes(**params: Any) -> list[str]:
            found = fp.request("GET", "/v1/individuals", params={"limit": 500, **params}).json()["items"]
            return [i["catalogue_code"] for i in found]

        expected = {"male": codes(sex="male"), "place": codes(location="great south"),
                    "period": codes(since="2024-08-01T00:00:00Z", until="2024-09-01T00:00:00Z"),
                    "all": codes()}
    assert expected["male"] == [catalogue.second] and expected["period"] == [catalogue.first]
    assert len(expected["all"]) > 1

    page.get_by_role("link", name="Individuals", exact=True).click()
    grid = page.locator(".individual-grid li .code")
    expect(grid).to_have_text(expected["all"])
    page.get_by_label("Sex", exact=True).select_option("male")
    expect(grid).to_have_text(expected["male"])
    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Place", exact=True).fill("great south")
    expect(grid).to_have_text(expected["place"])
    page.get_by_label("Place", exact=True).fill("")
    page.get_by_label("From", exact=True).fill("2024-08-01")
    page.get_by_label("Until", exact=True).fill("2024-08-31")
    expect(grid).to_have_text(expected["period"])
    page.get_by_label("Search", exact=True).fill("no such whale")
    expect(page.get_by_text("No individual matches “no such whale”.")).to_be_visible()


def test_the_overviews_figures_and_charts_agree_with_the_api(page: Page, field_system: WebSystem,
                                                             catalogue: Catalogue) -> None:
    with api(field_system) as fp:
        stats = fp.stats()
        individuals = fp.request("GET", "/v1/individuals", params={"limit": 1}).json()["total"]
        encounters = fp.request("GET", "/v1/encounters", params={"limit": 1}).json()["total"]
        undated = fp.request("GET", "/v1/encounters", params={"limit": 1, "dated": "false"}).json()["total"]
        pending = fp.request("GET", "/v1/identifications", params={"limit": 1}).json()["total"]
    assert undated > 0, "some encounters must be undated for this test to mean anything"

    page.get_by_role("link", name="Overview").click()
    page.get_by_role("heading", name="Overview").wait_for()

    def shown(key: str) -> int:
        return int(page.locator(f'.figures [data-figure="{key}"] dd').inner_text())

    assert shown("individuals") == individuals == sum(stats["individuals_by_species"].values())
    assert shown("encounters") == encounters == stats["encounters"]
    assert shown("undated") == undated == stats["encounters_undated"]
    assert shown("media") == stats["media"]
    assert shown("pending") == pending
    chart = page.get_by_role("list", name="Encounters by month (and undated)")
    bars = dict(label.rsplit(": ", 1) for label in
                chart.get_by_role("listitem").evaluate_all("items => items.map(i => i.getAttribute('aria-label'))"))
    assert bars.pop("Undated") == str(undated)
    assert bars == {m["month"]: str(m["count"]) for m in stats["encounters_by_month"]}
    assert sum(map(int, bars.values())) + undated == encounters
    save_figure(page, "overview", full_page=True)


# --- bulk upload --------------------------------------------------------------------------------

def job_items(fp: FinprintClient, job_id: str, status: str) -> list[dict[str, Any]]:
    return fp.request("GET", f"/v1/ingest/jobs/{job_id}/items", params={"status": status}).json()["items"]


def drop_files(page: Page, selector: str, paths: list[Path]) -> None:
    """Drop files on an element as a file manager would (a drop event carrying them)."""
    files = [(p.name, base64.b64encode(p.read_bytes()).decode()) for p in paths]
    page.evaluate("""([selector, files]) => {
        const transfer = new DataTransfer();
        for (const [name, data] of files) {
            transfer.items.add(new File([Uint8Array.from(atob(data), c => c.charCodeAt(0))], name));
        }
        document.querySelector(selector).dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", [selector, files])


def test_bulk_upload_of_a_manifest_shows_progress_and_each_failure_with_its_reason(
        page: Page, field_system: WebSystem, catalogue: Catalogue, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    folder = tmp_path / "survey"
    folder.mkdir()
    photos = [folder / "a.jpg", folder / "b.jpg"]
    for source, target in zip(catalogue.extra_photos[:2], photos, strict=True):
        target.write_bytes(source.read_bytes())
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_text("field notes, not a photo")
    manifest = tmp_path / "race-point.csv"
    manifest.write_text("image,observed_at,location,individual_id\n"
                        "survey/a.jpg,2024-09-01T10:00:00Z,Race Point,HW-F-BULK\n"
                        "survey/b.jpg,2024-09-01T10:05:00Z,Race Point,HW-F-BULK\n"
                        "notes.jpg,,Race Point,\n"
                        "missing.jpg,,,\n")

    page.get_by_role("link", name="Bulk upload").click()
    page.get_by_role("heading", name="Bulk upload", level=1).wait_for()
    # The manifest and one file dropped on the page, the photos chosen with the input.
    drop_files(page, '[data-drop="bulk"]', [manifest, not_a_photo])
    page.get_by_label("Or photos").set_input_files([str(p) for p in photos])
    expect(page.get_by_text("3 photo(s) chosen and the manifest race-point.csv.")).to_be_visible()
    page.get_by_role("button", name="Upload and start").click()
    panel = page.locator("section.job")
    expect(panel).to_have_attribute("data-status", "completed", timeout=ANALYSIS_TIMEOUT_MS)
    expect(page.get_by_text("1 photo(s) of the manifest were not chosen")).to_be_visible()
    job_id = panel.get_attribute("data-job-id")
    assert job_id
    with api(field_system) as fp:
        job = fp.request("GET", f"/v1/ingest/jobs/{job_id}").json()
        failed = job_items(fp, job_id, "failed")
        filed = fp.individual("HW-F-BULK")
    assert (job["total"], job["done"], job["failed"]) == (4, 2, 2)
    assert [s["location_name"] for s in filed["sightings"]] == ["Race Point", "Race Point"]  # a row, a sighting
    for key, count in {"total": 4, "done": 2, "failed": 2, "waiting": 0}.items():
        expect(panel.locator(f'[data-count="{key}"] dd')).to_have_text(str(count))
    rows = panel.locator("table.failures tbody tr")
    expect(rows).to_have_count(2)
    shown = dict(zip(rows.locator("td:nth-child(1)").all_inner_texts(), rows.locator("td:nth-child(2)")
                     .all_inner_texts(), strict=True))
    assert shown == {item["image"]: item["reason"] for item in failed}
    assert set(shown) == {"notes.jpg", "missing.jpg"}
    expect(panel.get_by_role("button", name="Download results (CSV)")).to_be_visible()
    save_figure(page, "bulk-upload", full_page=True)


def test_an_interrupted_bulk_upload_is_resumed_from_a_folder(page: Page, field_system: WebSystem,
                                                             catalogue: Catalogue, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    folder = tmp_path / "drone-2024"
    (folder / "day-2").mkdir(parents=True)
    (folder / "day-2" / "c.jpg").write_bytes(catalogue.extra_photos[2].read_bytes())
    # A job whose photos were never uploaded (the browser was closed after the manifest).
    with api(field_system) as fp:
        job = fp.request("POST", "/v1/ingest/jobs", data={"name": "drone-2024"},
                         files={"manifest": ("drone.csv", b"image,location\nday-2/c.jpg,Race Point\n", "text/csv")},
                         headers={"Idempotency-Key": "web-resume-test"}).json()
    assert job["status"] == "pending"

    page.get_by_role("link", name="Bulk upload").click()
    row = page.locator(f'table.job-list tr[data-job-id="{job["id"]}"]')
    expect(row.locator("td").nth(1)).to_have_text("waiting for its photos")
    row.get_by_role("button", name="Resume upload of drone-2024").click()
    page.get_by_label("A folder of photos").set_input_files(str(folder))
    page.get_by_role("button", name="Upload and start").click()
    panel = page.locator(f'section.job[data-job-id="{job["id"]}"]')
    expect(panel).to_have_attribute("data-status", "completed", timeout=ANALYSIS_TIMEOUT_MS)
    with api(field_system) as fp:
        finished = fp.request("GET", f"/v1/ingest/jobs/{job['id']}").json()
    assert (finished["total"], finished["done"] + finished["duplicates"], finished["failed"]) == (1, 1, 0)
    expect(panel.locator('[data-count="done"] dd')).to_have_text(str(finished["done"]))


# --- accessibility and a phone's width ---------------------------------------------------------

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
VIEWS = {"#/identify": "Identify a photo", "#/review": "Review queue",
         "#/review/duplicates": "Possible duplicates", "#/review/auto-accepted": "Auto-accepted matches",
         "#/individuals": "Individuals",
         "#/individuals/HW-F-2": "HW-F-2", "#/sightings": "Sightings", "#/bulk": "Bulk upload",
         "#/overview": "Overview"}
READY = {"#/sightings": ".map-frame[data-ready]", "#/individuals/HW-F-2": ".map-frame[data-ready]"}


def axe_violations(page: Page) -> list[str]:
    """axe-core's WCAG 2 A and AA violations of the page as it is now, one line each."""
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}});
        return result.violations.map(v => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')})`);
    }""")
    return list(found)


def test_every_view_passes_axe_and_keeps_a_sensible_focus_order(browser: Browser, field_system: WebSystem,
                                                                catalogue: Catalogue) -> None:
    if not AXE.is_file():
        pytest.fail(f"axe-core is missing at {AXE}: run `cd web && npm ci` (`make web` does it on a fresh clone)")
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=field_system.url,
                                  bypass_csp=True)  # axe is injected as an inline script
    page = context.new_page()
    page.set_default_timeout(ANALYSIS_TIMEOUT_MS)
    try:
        page.goto("/")
        page.add_script_tag(path=str(AXE))
        problems = {"sign-in": axe_violations(page)}
        page.get_by_label("API key", exact=True).fill(field_system.api_key)
        page.get_by_role("button", name="Use this key").click()
        page.get_by_role("heading", name="Identify a photo").wait_for()
        for scheme in ("light", "dark"):  # the page follows the system's colour scheme
            page.emulate_media(color_scheme=scheme)
            for view, heading in VIEWS.items():
                page.goto(f"/app/{view}")
                page.get_by_role("heading", level=1, name=heading, exact=True).wait_for()
                if view in READY:
                    page.locator(READY[view]).wait_for()
                page.add_script_tag(path=str(AXE))
                problems[f"{view} ({scheme})"] = axe_violations(page)
        page.emulate_media(color_scheme="light")
        page.goto("/app/#/review")
        page.get_by_role("button", name="Compare side by side").first.click()
        page.locator("dialog.compare[data-candidate]").wait_for()
        page.add_script_tag(path=str(AXE))
        problems["compare"] = axe_violations(page)
        assert {view: found for view, found in problems.items() if found} == {}

        # A view opens with the focus on its content; from the top the keyboard goes skip link,
        # brand, navigation in reading order, then the view's first control (the search).
        page.keyboard.press("Escape")
        page.goto("/app/#/individuals")
        page.get_by_role("heading", name="Individuals", exact=True).wait_for()
        page.wait_for_function("() => document.activeElement.id === 'main'")
        page.evaluate("() => document.querySelector('.skip-link').focus()")
        order = ["Skip to content"]
        for _ in range(10):
            page.keyboard.press("Tab")
            order.append(page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()"))
        assert order == ["Skip to content", "Finprint", "Identify", "Review queue", "Individuals", "Sightings",
                         "Upload encounter", "Bulk upload", "Overview", "Sign out", "individuals-q"]
        # In the compare dialog the focus never reaches the page behind it (a modal dialog: past its
        # last control the focus goes to the browser, then back to the dialog).
        page.goto("/app/#/review")
        page.get_by_role("button", name="Compare side by side").first.click()
        page.locator("dialog.compare[data-candidate]").wait_for()
        for _ in range(30):
            page.keyboard.press("Tab")
            assert page.evaluate("() => { const e = document.activeElement;"
                                 " return e === document.body || !!e.closest('dialog.compare'); }")
    finally:
        context.close()


def test_the_page_fits_a_phones_width(browser: Browser, field_system: WebSystem, catalogue: Catalogue) -> None:
    with open_page(browser, field_system, width=390, height=844) as page:
        def fits() -> bool:
            return page.evaluate("() => document.scrollingElement.scrollWidth <= window.innerWidth")

        for view in ["#/review", "#/review/duplicates", "#/review/auto-accepted", "#/individuals", "#/sightings",
                     "#/bulk", "#/overview", "#/individuals/HW-F-2"]:
            page.goto(f"/app/{view}")
            page.get_by_role("heading", level=1, name=VIEWS[view], exact=True).wait_for()
            assert fits(), f"{view} is wider than the phone"
        page.locator(".map-frame[data-ready]").wait_for()
        save_figure(page, "phone-individual", full_page=True)
        page.goto("/app/#/review")
        page.get_by_role("button", name="Compare side by side").first.click()
        page.locator("dialog.compare[data-candidate]").wait_for()
        wait_for_images(page, "dialog.compare .compare-photo", 2)
        assert fits()
        save_figure(page, "phone-compare")
        # Two fingers spread from 40 px to 100 px apart: both photos zoom ×2.5 together.
        page.evaluate("""() => {
            const pane = document.querySelectorAll('dialog.compare .compare-viewport')[1];
            const box = pane.getBoundingClientRect();
            const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
            const touch = (type, id, dx) => pane.dispatchEvent(new PointerEvent(type, {pointerId: id,
                pointerType: 'touch', clientX: cx + dx, clientY: cy, bubbles: true, isPrimary: id === 1}));
            touch('pointerdown', 1, -20); touch('pointerdown', 2, 20);
            touch('pointermove', 1, -50); touch('pointermove', 2, 50);
            touch('pointerup', 1, -50); touch('pointerup', 2, 50);
        }""")
        assert float(page.locator("dialog.compare").get_attribute("data-zoom") or 0) == pytest.approx(2.5, rel=1e-3)


def test_an_encounter_uploaded_in_the_field_takes_the_devices_position(browser: Browser, field_system: WebSystem,
                                                                       catalogue: Catalogue) -> None:
    from playwright.sync_api import expect

    with open_page(browser, field_system, width=390, height=844) as page:
        page.context.grant_permissions(["geolocation"])
        page.context.set_geolocation({"latitude": 42.05123, "longitude": -70.18456, "accuracy": 12})
        page.get_by_role("link", name="Upload encounter").click()
        page.get_by_role("button", name="Use this device's position").click()
        expect(page.get_by_text("Position set (±12 m).")).to_be_visible()
        expect(page.get_by_label("Latitude")).to_have_value("42.05123")
        expect(page.get_by_label("Longitude")).to_have_value("-70.18456")
        page.set_input_files("#encounter-photos", str(catalogue.field_photo))
        page.get_by_label("Location").fill("Race Point")
        page.get_by_role("button", name="Upload encounter").click()
        page.get_by_text("Stored 1 photo(s) as one encounter").wait_for()
        with api(field_system) as fp:
            newest = fp.request("GET", "/v1/encounters", params={"location": "race point", "limit": 500}).json()
        assert any((e["latitude"], e["longitude"]) == (42.05123, -70.18456) for e in newest["items"])
        save_figure(page, "phone-upload", full_page=True)


def test_a_photo_being_identified_is_compared_at_full_resolution_before_it_is_stored(
        page: Page, field_system: WebSystem, catalogue: Catalogue) -> None:
    from playwright.sync_api import expect

    page.set_input_files("#identify-photo", str(catalogue.extra_photos[0]))
    result = page.locator(".result").first
    result.get_by_role("button", name="Compare side by side").click()
    dialog = page.locator("dialog.compare[data-candidate]")
    dialog.wait_for()
    wait_for_images(page, "dialog.compare .compare-photo", 2)
    assert dialog.locator(".compare-photo").first.get_attribute("src").startswith("blob:")  # the user's own file
    codes = result.locator(".candidate:not(.query) a.code").all_inner_texts()
    assert dialog.get_attribute("data-candidate") == codes[0]
    # Nothing is stored, so nothing is decided here: no decision buttons, and "c" does nothing.
    expect(dialog.get_by_role("button", name="Reject")).to_have_count(0)
    page.keyboard.press("c")
    page.keyboard.press("+")
    assert dialog.get_attribute("data-zoom") == "1.2500"
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)


# --- possible duplicates -----------------------------------------------------------------------

def reencoded(path: Path) -> bytes:
    """The same shot as another file: the photo uploaded again, under another code."""
    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def planted_duplicates(field_system: WebSystem, shared_data: Path) -> list[tuple[str, str]]:
    """Two whales each catalogued twice (a photo of it re-encoded, under a second code), as
    tests/gateway/test_duplicates.py plants them; whales the catalogue fixture does not use."""
    whales = individuals_with(shared_data, photos=3, count=6)[4:6]
    pairs = []
    with api(field_system) as fp:
        for n, photos in enumerate(whales, start=1):
            code = f"HW-D-{n}"
            fp.enrol(photos[:2], individual_id=code, observed_at=f"2024-0{n + 5}-01T10:00:00-04:00",
                     location="Cape Cod Bay")
            fp.enrol([reencoded(photos[0])], individual_id=f"{code}-again")
            pairs.append((code, f"{code}-again"))
    return pairs


def pending_pair(system: WebSystem, codes: tuple[str, str]) -> dict[str, Any] | None:
    """The pending pair of these two individuals in `GET /v1/duplicates`, if filed."""
    with api(system) as fp:
        queue = fp.request("GET", "/v1/duplicates", params={"limit": 500}).json()["items"]
    found = [p for p in queue if {p["a"]["catalogue_code"], p["b"]["catalogue_code"]} == set(codes)]
    return found[0] if found else None


def scan_from_the_page(page: Page) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="Review queue").click()
    page.get_by_role("navigation", name="Review").get_by_role("link", name="Possible duplicates").click()
    page.get_by_role("heading", level=1, name="Possible duplicates").wait_for()
    page.get_by_role("button", name="Scan for duplicates").click()
    expect(page.get_by_text("Scan done:")).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Scan for duplicates")).to_be_enabled()


def test_a_possible_duplicate_is_scanned_shown_side_by_side_and_merged_from_the_page(
        browser: Browser, field_system: WebSystem, planted_duplicates: list[tuple[str, str]]) -> None:
    from playwright.sync_api import expect

    kept, again = planted_duplicates[0]
    assert pending_pair(field_system, (kept, again)) is None, "the page's scan must be what files the pair"
    with open_page(browser, field_system, bypass_csp=True) as page:
        scan_from_the_page(page)
        pair = pending_pair(field_system, (kept, again))
        assert pair, "the scan must file the animal catalogued twice for this test to mean anything"
        card = page.locator(f'article.duplicate-pair[data-pair-id="{pair["id"]}"]')
        expect(card.locator("h2")).to_have_text(f"{kept} and {again}")  # in the codes' order
        expect(card.locator(".hint").first).to_contain_text(f'gallery score {pair["score"]:.3f}')

        # Both galleries side by side, in the API's order (the photos closest to each other first),
        # with each individual's number of sightings.
        with api(field_system) as fp:
            sightings = {code: len(fp.individual(code)["sightings"]) for code in (kept, again)}
        for side in (pair["a"], pair["b"]):
            shown = card.locator(f'.duplicate-side[data-code="{side["catalogue_code"]}"]')
            expect(shown.locator(".duplicate-gallery li")).to_have_count(len(side["photos"]))
            assert shown.locator(".duplicate-gallery li").evaluate_all(
                "items => items.map(li => li.dataset.mediaId)") == side["photos"]
            expect(shown.locator("dd").nth(2)).to_have_text(str(sightings[side["catalogue_code"]]))
        wait_for_images(page, f'article[data-pair-id="{pair["id"]}"] img.photo',
                        len(pair["a"]["photos"]) + len(pair["b"]["photos"]))
        every = page.locator("article.duplicate-pair img").count()  # the other pair's too, for the figure
        wait_for_images(page, "article.duplicate-pair img.photo", every)
        page.evaluate("() => window.scrollTo(0, 0)")
        save_figure(page, "duplicates")

        page.add_script_tag(path=str(AXE))  # the view with pairs shown (the axe test sees it empty)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            assert axe_violations(page) == [], scheme
        page.emulate_media(color_scheme="light")

        card.get_by_role("button", name=f"Merge into {kept}", exact=True).click()
        message = page.get_by_role("status").filter(has_text=f"Merged {again} into {kept}")
        expect(message).to_be_visible()
        expect(card).to_have_count(0)
        assert message.evaluate("m => document.activeElement === m"), "the focus must not fall to the page"

    with api(field_system) as fp:
        decided = fp.request("GET", f"/v1/duplicates/{pair['id']}").json()
        listed = fp.request("GET", "/v1/individuals", params={"limit": 500}).json()["items"]
        survivor = fp.individual(kept)
    active = [i["catalogue_code"] for i in listed]
    assert decided["status"] == "merged"
    assert kept in active and again not in active
    assert len(survivor["sightings"]) == sightings[kept] + sightings[again]


def test_not_the_same_animal_dismisses_a_possible_duplicate_on_a_phone(
        browser: Browser, field_system: WebSystem, planted_duplicates: list[tuple[str, str]]) -> None:
    from playwright.sync_api import expect

    one, other = planted_duplicates[1]
    with open_page(browser, field_system, width=390, height=844) as page:
        scan_from_the_page(page)  # files the pair, or finds it filed already
        pair = pending_pair(field_system, (one, other))
        assert pair, "the scan must file the animal catalogued twice for this test to mean anything"
        card = page.locator(f'article.duplicate-pair[data-pair-id="{pair["id"]}"]')
        wait_for_images(page, f'article[data-pair-id="{pair["id"]}"] img.photo',
                        len(pair["a"]["photos"]) + len(pair["b"]["photos"]))
        assert page.evaluate("() => document.scrollingElement.scrollWidth <= window.innerWidth"), "too wide"
        card.get_by_role("button", name="Not the same animal").click()
        message = page.get_by_role("status").filter(has_text=f"{one} and {other} stay two individuals")
        expect(message).to_be_visible()
        expect(card).to_have_count(0)

    with api(field_system) as fp:
        decided = fp.request("GET", f"/v1/duplicates/{pair['id']}").json()
        listed = fp.request("GET", "/v1/individuals", params={"limit": 500}).json()["items"]
    active = [i["catalogue_code"] for i in listed]
    assert decided["status"] == "dismissed"
    assert {one, other} <= set(active)
    assert pending_pair(field_system, (one, other)) is None


# --- auto-accepted matches ---------------------------------------------------------------------

@pytest.fixture
def auto_accepted(field_system: WebSystem, shared_data: Path) -> Iterator[list[dict[str, Any]]]:
    """Two real auto-accepted matches, oldest first, as tests/gateway/test_auto_accept.py makes them:
    the organisation's precision target on, a whale's gallery enrolled, then other files of two of its
    photos enrolled unnamed (two dated sightings); the setting is off again afterwards (the module's
    other tests expect a review queue)."""
    [photos] = individuals_with(shared_data, photos=3, count=7)[6:7]  # a whale no other test catalogues
    with api(field_system) as fp:
        fp.request("PUT", "/v1/settings", json={"auto_accept_precision": 0.99})
        try:
            fp.enrol(photos, individual_id="HW-A-1", observed_at="2024-09-01T11:00:00-04:00",
                     location="Cape Cod Bay")
            accepted = []
            for photo, when in ((photos[1], "2025-05-28T16:05:00-04:00"), (photos[0], "2025-06-03T07:40:00-04:00")):
                stored = fp.enrol([reencoded(photo)], observed_at=when, location="Race Point")
                [result] = stored["identifications"]
                assert result["decision"] == "confirmed", "the match must clear the cut for this test to mean anything"
                accepted.append(fp.request("GET", f"/v1/identifications/{result['id']}").json())
            yield accepted
        finally:
            fp.request("PUT", "/v1/settings", json={"auto_accept_precision": None})


def test_an_auto_accepted_match_is_listed_and_taken_out_from_the_page(
        browser: Browser, field_system: WebSystem, catalogue: Catalogue,
        auto_accepted: list[dict[str, Any]]) -> None:
    from playwright.sync_api import expect

    older, item = auto_accepted
    with api(field_system) as fp:
        whale = fp.individual("HW-A-1")
    assert [(i["decided_by"], i["individual_id"]) for i in auto_accepted] == [("auto-accept", whale["id"])] * 2
    probability = item["candidates"][0]["probability"]
    with api(field_system) as fp:
        created = fp.request("POST", "/v1/api-keys", json={"name": "web reviewer", "role": "reviewer"}).json()
    reviewer = replace(field_system, api_key=created["key"])
    with open_page(browser, reviewer, bypass_csp=True) as page:
        page.get_by_role("link", name="Review queue").click()
        page.get_by_role("navigation", name="Review").get_by_role("link", name="Auto-accepted").click()
        page.get_by_role("heading", level=1, name="Auto-accepted matches").wait_for()
        expect(page.locator(".auto-accept-summary")).to_contain_text("Auto-accept is on at a precision of 99.0 %")

        card = page.locator(f'article.auto-accepted[data-identification-id="{item["id"]}"]')
        expect(card.locator("h2")).to_have_text("Sighting of 3 Jun 2025, 07:40 · Race Point")
        expect(card.locator(".hint").first).to_contain_text(
            f"Filed under HW-A-1 · calibrated probability {probability * 100:.1f} %")
        expect(card.get_by_role("link", name="HW-A-1")).to_have_attribute("href", "#/individuals/HW-A-1")
        # Newest first: the API's pages come oldest first.
        expect(page.locator("article.auto-accepted")).to_have_count(2)
        assert page.locator("article.auto-accepted").evaluate_all(
            "cards => cards.map(c => c.dataset.identificationId)") == [item["id"], older["id"]]
        wait_for_images(page, "article.auto-accepted img.photo", 2)  # each individual's photo, then each crop's
        page.wait_for_function("""() => [...document.querySelectorAll('article.auto-accepted svg.crop image')]
            .filter(i => +i.getAttribute('width') > 0).length === 2""")
        save_figure(page, "auto-accepted")
        page.add_script_tag(path=str(AXE))  # the view with a match shown (the axe test sees it empty)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            assert axe_violations(page) == [], scheme
        page.emulate_media(color_scheme="light")

        # The compare view takes it, with the individual it was filed under shown first.
        card.get_by_role("button", name="Open in compare").click()
        dialog = page.locator("dialog.compare[data-candidate]")
        expect(dialog).to_have_attribute("data-candidate", "HW-A-1")
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)

        card.get_by_role("button", name="Not this animal").click()
        message = page.get_by_role("status").filter(has_text="the photo no longer belongs to it")
        expect(message).to_be_visible()
        expect(card).to_have_count(0)
        assert message.evaluate("m => document.activeElement === m"), "the focus must not fall to the page"
        expect(page.get_by_text("1 match(es) confirmed without review")).to_be_visible()
        expect(page.locator("article.auto-accepted")).to_have_count(1)  # the older one stays

        # Only an administrator changes the setting: a reviewer is told so, and it stays.
        page.get_by_text("Change the setting").click()
        page.get_by_label("Precision target").fill("0.995")
        page.get_by_role("button", name="Save setting").click()
        expect(page.get_by_role("alert")).to_contain_text("Only an administrator of the organisation can change")
        expect(page.locator(".auto-accept-summary")).to_contain_text("99.0 %")

    with open_page(browser, field_system) as page:  # the administrator's key
        page.goto("/app/#/review/auto-accepted")
        page.get_by_role("heading", level=1, name="Auto-accepted matches").wait_for()
        expect(page.locator("article.auto-accepted")).to_have_count(1)
        page.get_by_text("Change the setting").click()
        page.get_by_label("Precision target").fill("0.995")
        page.get_by_role("button", name="Save setting").click()
        expect(page.get_by_role("status").filter(has_text="Auto-accept set to a precision of 99.5 %")).to_be_visible()
        expect(page.locator(".auto-accept-summary")).to_contain_text("99.5 %")

    with api(field_system) as fp:
        decided = fp.request("GET", f"/v1/identifications/{item['id']}").json()
        whale = fp.individual("HW-A-1")
        listed = fp.request("GET", "/v1/identifications",
                            params={"decision": "confirmed", "decided_by": "auto-accept"}).json()["items"]
        audit = fp.request("GET", "/v1/audit", params={"limit": 500}).json()["items"]
        settings = fp.request("GET", "/v1/settings").json()
    assert decided["decision"] == "rejected" and decided["individual_id"] is None
    assert decided["decided_by"] not in ("auto-accept", None)
    assert item["media_id"] not in [m for s in whale["sightings"] for m in s["media_ids"]]
    assert [i["id"] for i in listed] == [older["id"]]
    [reversal] = [e for e in audit if e["entity_id"] == item["id"] and e["action"] == "decided"]
    assert reversal["actor"] == decided["decided_by"]
    assert reversal["details"]["decision"] == "rejected"
    assert reversal["details"]["previous"] == {"decision": "confirmed", "individual_id": whale["id"]}
    assert settings == {"auto_accept_precision": 0.995}
