"""Where images come from: the embedded phantom renderer or a real CheXpert download.

Each source is a `Source` (base.py): a table (`Path`, `patient`, raw CheXpert label columns with
1/0/-1/blank) and a function that turns a block of those rows into uint8 images of a given size.
A new source (MIMIC-CXR, ChestX-ray14) is one new module and one line in `SOURCES`.
"""

from __future__ import annotations

from chexbal.data.sources import chexpert, phantom
from chexbal.data.sources.base import Source
from chexbal.errors import ChexbalError

SOURCES: dict[str, Source] = {source.name: source for source in (phantom.SOURCE, chexpert.SOURCE)}


def get(name: str) -> Source:
    if name not in SOURCES:
        raise ChexbalError(f"--source must be one of {', '.join(SOURCES)}, not {name!r}", 2)
    return SOURCES[name]


def check_store(attrs, folder) -> None:
    """Refuse a prepared store whose source settings (the phantom's renderer version) are not this
    chexbal's: its images would silently mix with other ones."""
    source = SOURCES.get(attrs.get("source"))
    for key, wanted in (source.settings if source else {}).items():
        if attrs.get(key) != wanted:
            recorded = attrs.get(key, "unrecorded (an older chexbal)")
            raise ChexbalError(
                f"{folder} was made with {source.name} {key} {recorded}, this chexbal has {wanted}: "
                f"delete {folder} and run `chexbal prepare` again"
            )
