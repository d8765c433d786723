"""Pseudonymisation of patient and image identifiers (data.pseudonymize).

In a hospital export the PatientID, and folder or file names such as ``Doe^Jane_19451231/ACC998877.dcm``,
identify people. When pseudonymisation is on, every identifier is replaced right after the importer
returns its rows, so that no later artifact (crops.h5, negatives.h5, images.json, projection records,
cases, HTML, figure names) ever sees an original:

- patient ids become ``P-<12 hex>``, image ids (given, or derived from file and folder names) ``I-<12 hex>``:
  the first 12 hex digits of HMAC-SHA256(key, kind + NUL + original). For a fixed key the pseudonyms are
  deterministic, so outputs stay byte-stable and DVC can skip unchanged stages; without the key they can
  be neither reversed nor recomputed from a guessed name.
- the key comes from the environment variable FPNPIPE_PSEUDONYM_KEY (the key itself, at least 16
  characters), else from the file named by FPNPIPE_PSEUDONYM_KEY_FILE (best kept outside the repository),
  else from .fpnpipe/pseudonym.key in the working directory, generated (64 random hex digits, mode 0600)
  on first use; that folder is ignored by git and DVC. Keep the key: another key gives other pseudonyms.
- the mapping original -> pseudonym is written to data/private/pseudonyms.csv for the local team only
  (git-ignored, not a DVC output, so it is never cached, pushed or shared).

Rejection reasons mark the file paths and identifiers they quote (`private`); reports written under
pseudonymisation show such a span as ``<withheld>`` (`withhold`), the local log shows it in full
(`reveal`).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
import io
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from fpnpipe.atomic import write_text
from fpnpipe.data.records import LesionRow

log = logging.getLogger(__name__)

KEY_ENV = "FPNPIPE_PSEUDONYM_KEY"
KEY_FILE_ENV = "FPNPIPE_PSEUDONYM_KEY_FILE"
DEFAULT_KEY_FILE = Path(".fpnpipe/pseudonym.key")
MAPPING_FILE = Path("data/private/pseudonyms.csv")
MIN_KEY_CHARS = 16
DIGEST_HEX = 12
PREFIXES: dict[str, str] = {"patient": "P-", "image": "I-"}
MAPPING_COLUMNS: tuple[str, ...] = ("kind", "original", "pseudonym")


class PseudonymError(ValueError):
    """No usable key, or two originals that would share a pseudonym; the message says what to do."""


def _key_text(text: str, where: str) -> bytes:
    key = text.strip()
    if len(key) < MIN_KEY_CHARS:
        raise PseudonymError(f"{where}: the pseudonym key must have at least {MIN_KEY_CHARS} characters")
    return key.encode("utf-8")


def load_key(default_file: Path = DEFAULT_KEY_FILE, environ: Mapping[str, str] | None = None) -> tuple[bytes, str]:
    """(key, where it came from): $FPNPIPE_PSEUDONYM_KEY, else the file $FPNPIPE_PSEUDONYM_KEY_FILE names,
    else `default_file`, created with a new random key if absent. Raises PseudonymError."""
    environ = os.environ if environ is None else environ
    if environ.get(KEY_ENV):
        return _key_text(environ[KEY_ENV], f"${KEY_ENV}"), f"${KEY_ENV}"
    if environ.get(KEY_FILE_ENV):
        path = Path(environ[KEY_FILE_ENV])
        try:
            return _key_text(path.read_text(encoding="utf-8"), str(path)), str(path)
        except OSError as exc:
            raise PseudonymError(f"{path} (${KEY_FILE_ENV}): cannot read the pseudonym key ({exc.strerror})") from None
    created = _create_key_file(default_file)
    try:
        key = _key_text(default_file.read_text(encoding="utf-8"), str(default_file))
    except OSError as exc:
        raise PseudonymError(f"{default_file}: cannot read the pseudonym key ({exc.strerror})") from None
    return key, f"{default_file} ({'new' if created else 'existing'})"


def _create_key_file(path: Path) -> bool:
    """Write a new random key to `path` (mode 0600) unless it exists; True if it was created. Exclusive
    creation of a temporary file then a hard link, so two stages starting together keep one key."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another process created the key first: theirs is kept
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


class Pseudonymizer:
    """Keyed pseudonyms for patient and image identifiers, remembering every pair it has made."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._made: dict[tuple[str, str], str] = {}
        self._owner: dict[str, tuple[str, str]] = {}

    def pseudonym(self, kind: str, original: str) -> str:
        """`P-<12 hex>` / `I-<12 hex>` for a patient / image identifier; PseudonymError on a collision."""
        made = self._made.get((kind, original))
        if made is not None:
            return made
        digest = hmac.new(self._key, f"{kind}\0{original}".encode(), hashlib.sha256).hexdigest()
        made = PREFIXES[kind] + digest[:DIGEST_HEX]
        if made in self._owner:
            raise PseudonymError(
                f"two {kind} identifiers share the pseudonym {made}: use another key ({KEY_ENV})"
            )
        self._made[(kind, original)] = made
        self._owner[made] = (kind, original)
        return made

    def patient(self, original: str) -> str:
        return self.pseudonym("patient", original)

    def image(self, original: str) -> str:
        return self.pseudonym("image", original)

    def rows(self, rows: Iterable[LesionRow]) -> list[LesionRow]:
        """The rows with patient_id and image_id replaced by their pseudonyms (paths untouched: the
        files still have to be read)."""
        return [
            dataclasses.replace(row, patient_id=self.patient(row.patient_id), image_id=self.image(row.image_id))
            for row in rows
        ]

    def pairs(self) -> dict[tuple[str, str], str]:
        """{(kind, original): pseudonym} of everything pseudonymised so far."""
        return dict(self._made)


def write_mapping(path: Path, pairs: Mapping[tuple[str, str], str]) -> None:
    """Merge `pairs` into the mapping CSV at `path` (kind, original, pseudonym; sorted), atomically. An
    earlier entry for the same original is replaced (the key may have changed)."""
    merged = dict(read_mapping(path)) if path.exists() else {}
    merged.update(pairs)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MAPPING_COLUMNS)
    for (kind, original), pseudonym in sorted(merged.items()):
        writer.writerow((kind, original, pseudonym))
    write_text(path, out.getvalue())


def read_mapping(path: Path) -> dict[tuple[str, str], str]:
    """{(kind, original): pseudonym} from a mapping CSV written by `write_mapping`."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header != MAPPING_COLUMNS:
            raise PseudonymError(f"{path}: not a pseudonym mapping (header {list(header)})")
        return {(kind, original): pseudonym for kind, original, pseudonym in reader}


def open_pseudonymizer() -> Pseudonymizer:
    """A Pseudonymizer with the key `load_key` finds (logging where it came from, never the key)."""
    key, where = load_key()
    log.info("pseudonymising patient and image identifiers (key: %s; mapping: %s)", where, MAPPING_FILE)
    return Pseudonymizer(key)


def file_pseudonym(path: Path, mapping_file: Path = MAPPING_FILE) -> str:
    """`I-<12 hex>` for an image file named on the command line (explain-image), keyed on its absolute
    path without suffix, and recorded in the local mapping file."""
    pseudonymizer = open_pseudonymizer()
    made = pseudonymizer.image(Path(os.path.abspath(path)).with_suffix("").as_posix())
    write_mapping(mapping_file, pseudonymizer.pairs())
    return made
