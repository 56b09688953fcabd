"""Seed the species: the Happywhale list, the keys the bundled data uses, and not_cetacean.

Keys are the snake_case names the models and the labelled data use (``beluga`` is the
Happywhale and Beluga ID key for the beluga whale). The list is written out here, not imported,
so this migration means the same thing forever.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# key, common name, scientific name (None where a key covers several species or none)
SPECIES: tuple[tuple[str, str, str | None], ...] = (
    ("beluga", "Beluga whale", "Delphinapterus leucas"),
    ("blue_whale", "Blue whale", "Balaenoptera musculus"),
    ("bottlenose_dolphin", "Common bottlenose dolphin", "Tursiops truncatus"),
    ("brydes_whale", "Bryde's whale", "Balaenoptera edeni"),
    ("commersons_dolphin", "Commerson's dolphin", "Cephalorhynchus commersonii"),
    ("common_dolphin", "Common dolphin", "Delphinus delphis"),
    ("cuviers_beaked_whale", "Cuvier's beaked whale", "Ziphius cavirostris"),
    ("dusky_dolphin", "Dusky dolphin", "Lagenorhynchus obscurus"),
    ("false_killer_whale", "False killer whale", "Pseudorca crassidens"),
    ("fin_whale", "Fin whale", "Balaenoptera physalus"),
    ("frasiers_dolphin", "Fraser's dolphin", "Lagenodelphis hosei"),
    ("gray_whale", "Gray whale", "Eschrichtius robustus"),
    ("humpback_whale", "Humpback whale", "Megaptera novaeangliae"),
    ("killer_whale", "Killer whale", "Orcinus orca"),
    ("melon_headed_whale", "Melon-headed whale", "Peponocephala electra"),
    ("minke_whale", "Minke whale", "Balaenoptera acutorostrata"),
    ("pantropical_spotted_dolphin", "Pantropical spotted dolphin", "Stenella attenuata"),
    ("pilot_whale", "Pilot whale", "Globicephala"),
    ("pygmy_killer_whale", "Pygmy killer whale", "Feresa attenuata"),
    ("rough_toothed_dolphin", "Rough-toothed dolphin", "Steno bredanensis"),
    ("sei_whale", "Sei whale", "Balaenoptera borealis"),
    ("southern_right_whale", "Southern right whale", "Eubalaena australis"),
    ("spinner_dolphin", "Spinner dolphin", "Stenella longirostris"),
    ("spotted_dolphin", "Atlantic spotted dolphin", "Stenella frontalis"),
    ("white_sided_dolphin", "White-sided dolphin", "Lagenorhynchus"),
    ("north_atlantic_right_whale", "North Atlantic right whale", "Eubalaena glacialis"),
)
NOT_CETACEAN = ("not_cetacean", "Not a cetacean", None)

species = sa.table(
    "species",
    sa.column("key", sa.String),
    sa.column("common_name", sa.String),
    sa.column("scientific_name", sa.String),
    sa.column("is_cetacean", sa.Boolean),
)


def upgrade() -> None:
    rows = [{"key": k, "common_name": c, "scientific_name": s, "is_cetacean": True} for k, c, s in SPECIES]
    key, common, scientific = NOT_CETACEAN
    rows.append({"key": key, "common_name": common, "scientific_name": scientific, "is_cetacean": False})
    op.bulk_insert(species, rows)


def downgrade() -> None:
    keys = [k for k, _c, _s in SPECIES] + [NOT_CETACEAN[0]]
    op.execute(species.delete().where(species.c.key.in_(keys)))
