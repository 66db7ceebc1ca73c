"""Guards every reader runs before a third-party parser sees a byte of user input."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from espressivo.errors import EspressivoError
from espressivo.io.files import note_input

MAX_MIDI_BYTES = 64 * 2**20
MAX_SCORE_BYTES = 64 * 2**20  # uncompressed MusicXML / MEI / kern
MAX_ZIP_MEMBERS = 2_000


def check_file(path: str | os.PathLike, max_bytes: int) -> Path:
    """The path as a :class:`Path` if it is a readable, non-empty regular file of at most ``max_bytes``."""
    try:
        path = Path(path)
    except TypeError:
        raise EspressivoError(f"not a file path: {path!r}") from None
    if not path.exists():
        raise EspressivoError(f"{path}: no such file")
    if not path.is_file():
        raise EspressivoError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise EspressivoError(f"{path}: file is empty")
    if size > max_bytes:
        raise EspressivoError(
            f"{path}: file is {size / 2**20:.1f} MiB, more than the {max_bytes / 2**20:.0f} MiB limit"
        )
    if not os.access(path, os.R_OK):
        raise EspressivoError(f"{path}: permission denied")

    note_input(path)
    return path


def read_bytes(path: str | os.PathLike, max_bytes: int) -> bytes:
    path = check_file(path, max_bytes)
    try:
        return path.read_bytes()
    except OSError as err:
        raise EspressivoError(f"{path}: cannot read ({err.strerror or err})") from None


def _as_text(data: bytes) -> str:
    """The document as text in whatever encoding it announces (a byte-order mark, or UTF-16 without one):
    an ``<!ENTITY`` written in UTF-16 or UTF-32 has no ASCII bytes to find."""
    marks = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
             (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))  # fmt: skip
    for bom, codec in marks:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    head = data[:4]
    if head in (b"<\x00\x00\x00", b"\x00\x00\x00<"):  # UTF-32 without a byte-order mark
        return data.decode("utf-32-le" if head[0:1] == b"<" else "utf-32-be", errors="replace")
    if head[:2] in (b"<\x00", b"\x00<"):  # UTF-16 without a byte-order mark
        return data.decode("utf-16-le" if head[0:1] == b"<" else "utf-16-be", errors="replace")
    return data.decode("utf-8", errors="replace")


def reject_entities(data: bytes, name: str) -> None:
    """Refuse XML that declares entities (XXE, billion laughs): real scores never need them.  Checked on the
    decoded text, so that UTF-16 or UTF-32 input cannot slip past."""
    if b"<!ENTITY" in data or b"<!entity" in data or "<!entity" in _as_text(data).lower():
        raise EspressivoError(f"{name}: XML entity declarations are not allowed (possible XXE or entity bomb)")


def read_zip_member(archive: zipfile.ZipFile, member: str, limit: int, name: str) -> bytes:
    """Decompress one member, stopping at ``limit`` bytes whatever the header claims (zip bombs)."""
    try:
        with archive.open(member) as handle:
            data = handle.read(limit + 1)
    except KeyError:
        raise EspressivoError(f"{name}: archive has no member {member!r}") from None
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as err:
        raise EspressivoError(f"{name}: corrupt archive ({err})") from None
    except Exception as err:  # zlib.error and friends from damaged deflate streams
        raise EspressivoError(f"{name}: corrupt archive ({type(err).__name__}: {err})") from None
    if len(data) > limit:
        raise EspressivoError(f"{name}: {member} expands to more than {limit / 2**20:.0f} MiB (zip bomb?)")
    return data


def extract_musicxml(path: Path) -> bytes:
    """The score document inside a compressed MusicXML (``.mxl``) file, safely."""
    name = path.name
    raw = read_bytes(path, MAX_SCORE_BYTES)
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise EspressivoError(f"{name}: not a compressed MusicXML file (not a zip archive)") from None
    with archive:
        members = archive.namelist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise EspressivoError(f"{name}: archive has {len(members)} members, too many")
        rootfile = None
        if "META-INF/container.xml" in members:
            container = read_zip_member(archive, "META-INF/container.xml", 2**20, name)
            reject_entities(container, name)
            from lxml import etree

            try:
                parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
                tree = etree.fromstring(container, parser)
                element = next(iter(tree.iter("{*}rootfile")), None)
                rootfile = element.get("full-path") if element is not None else None
            except etree.XMLSyntaxError as err:
                raise EspressivoError(f"{name}: corrupt META-INF/container.xml ({err})") from None
        if rootfile is None:
            candidates = [
                m for m in members if m.lower().endswith((".xml", ".musicxml")) and not m.startswith("META-INF")
            ]
            if not candidates:
                raise EspressivoError(f"{name}: archive holds no MusicXML document")
            rootfile = candidates[0]
        data = read_zip_member(archive, rootfile, MAX_SCORE_BYTES, name)
    reject_entities(data, name)
    return data
