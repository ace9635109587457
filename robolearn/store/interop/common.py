"""What every importer and exporter shares: format names (their all-or-nothing write:
`robolearn.store.staging.staged`)."""

from __future__ import annotations

from robolearn.errors import InvalidValueError

FORMATS = ("lerobot", "robomimic")
EXPORT_FORMATS = (*FORMATS, "rerun")  # a rerun recording is written, never read back into a store


def check_format(fmt: str | None, choices: tuple[str, ...] = FORMATS) -> str:
    if not fmt:
        raise InvalidValueError(f"no format given: pass --format with one of {', '.join(choices)}")
    name = fmt.strip().lower()
    if name not in choices:
        extra = "; rerun recordings are exported only" if name in EXPORT_FORMATS else ""
        raise InvalidValueError(f"unknown format {fmt!r}: expected one of {', '.join(choices)}{extra}")
    return name
