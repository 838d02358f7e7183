"""Checkpoints that survive crashes and load safely.

:func:`save` writes atomically: to a temporary file in the same folder, flushed and fsynced,
then renamed over the target (and the folder fsynced), so a process killed at any moment leaves
either the old file or the new one, never a torn one. :func:`load` uses
``torch.load(..., weights_only=True)``, which only rebuilds tensors and plain containers: a file
carrying any other pickled object is refused before anything in it runs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch

__all__ = ["FORMAT", "CheckpointError", "atomic_write", "atomic_write_text", "load", "load_with_card",
           "remove_stale_temporaries", "safe_load", "save", "save_with_card"]

# How torch.save's legacy (non-zip) format begins: its pickled magic number.
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]

# The name atomic_write's temporary files get: "." + the target's name + mkstemp's 8 characters.
_TEMPORARY = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")

#: The value of the ``"format"`` key that marks a colddiff checkpoint.
FORMAT = "colddiff-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, unsafe, corrupt, foreign or incompatible."""


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` all at once: ``write(handle)`` fills a temporary file beside it, which is
    synced and then renamed over ``path``, so a crash leaves the old file or the new one, never
    half of one. Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600 files; use the usual mode
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of ``text`` (UTF-8)."""
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def save(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Atomically write ``payload`` (tensors and plain data only) to ``path``.

    The ``"format"`` key is added. Returns the path written.
    """
    return atomic_write(path, lambda handle: torch.save({"format": FORMAT, **payload}, handle))


def load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu",
         required: tuple[str, ...] = ("config", "model")) -> dict[str, Any]:
    """Safely read a checkpoint written by :func:`save`.

    Args:
        path: The file.
        map_location: Where to put its tensors.
        required: Keys the checkpoint must hold.

    Raises:
        CheckpointError: If the file is missing, holds pickled objects other than tensors and
            plain data (refused unexecuted), is truncated or corrupt, or is not a colddiff
            checkpoint.
    """
    path = Path(path)
    payload = safe_load(path, map_location, what="checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a colddiff checkpoint (no format marker {FORMAT!r})")
    missing = [key for key in required if key not in payload]
    if missing:
        raise CheckpointError(f"{path} is an incomplete colddiff checkpoint: it lacks {missing}")
    return payload


def safe_load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu", *,
              what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that say what the file is.

    The one loading path for every file colddiff reads with :mod:`torch` (checkpoints, shipped
    weights, sample tensors). Only tensors and plain containers are rebuilt; nothing else in the
    file is ever run.

    Args:
        path: The file.
        map_location: Where to put its tensors.
        what: What the file should be, for the messages (``"checkpoint"``, ``"samples file"``).

    Raises:
        CheckpointError: If the file is missing or a folder, holds pickled objects other than
            tensors and plain data (refused as unsafe), is a bare pickle rather than a
            ``torch.save`` file, or is truncated or corrupt.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # A pickle naming a global (a class or function to call) is an unsafe object; anything
        # else the weights-only unpickler rejects is garbage or a bare pickle.
        offending = [line.strip() for line in str(error).splitlines()
                     if "global" in line.lower() and "weights_only" not in line]
        if offending:
            raise CheckpointError(
                f"refusing to load {what} {path} as unsafe: it holds pickled objects other than "
                f"tensors and plain data, and colddiff only loads with weights_only=True; nothing "
                f"in it was run ({offending[0][:160]})"
            ) from error
        raise _unreadable(path, what, error) from error
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as error:
        raise _unreadable(path, what, error) from error


def _unreadable(path: Path, what: str, error: BaseException) -> CheckpointError:
    """The error for a file that ``torch.load`` cannot read, saying which kind of file it is."""
    with open(path, "rb") as handle:
        head = handle.read(len(_LEGACY_MAGIC))
    is_pickle = head[:1] == b"\x80" and 2 <= head[1:2][0] <= 5 if len(head) > 1 else False
    if is_pickle and not zipfile.is_zipfile(path) and head != _LEGACY_MAGIC:
        return CheckpointError(
            f"{what} {path} is a bare pickle (protocol {head[1]}), not a file written by "
            "torch.save; colddiff reads only torch.save files, with weights_only=True, and ran "
            "nothing in it"
        )
    # torch's own messages may advise weights_only=False: never pass that advice on.
    lines = [line.strip() for line in str(error).splitlines()
             if line.strip() and "weights_only" not in line and "torch.serialization" not in line]
    detail = lines[0][:160] if lines else ""
    return CheckpointError(
        f"{path} is not a readable {what} (truncated, corrupt, or not a PyTorch file): "
        f"{type(error).__name__}" + (f": {detail}" if detail else "")
    )


def remove_stale_temporaries(folder: str | os.PathLike[str], targets: Sequence[str]) -> list[Path]:
    """Delete the temporary files that interrupted :func:`atomic_write` calls left in ``folder``.

    Only the temporaries of writes to ``targets`` (file names or glob patterns such as
    ``"epoch-*.pt"``), named as :func:`atomic_write` names them (``.NAME.XXXXXXXX.tmp``, with
    :func:`tempfile.mkstemp`'s eight random characters), are removed. Call it when no write into
    ``folder`` can be under way, e.g. at the start of a run. Returns the files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []

    def ours(path: Path) -> bool:
        match = _TEMPORARY.fullmatch(path.name)
        return (match is not None and path.is_file()
                and any(fnmatch.fnmatchcase(match[1], target) for target in targets))

    stale = sorted(p for p in folder.iterdir() if ours(p))
    for orphan in stale:
        orphan.unlink(missing_ok=True)
    return stale


def save_with_card(payload: dict[str, Any], path: str | os.PathLike[str], card: dict[str, Any]
                   ) -> dict[str, Any]:
    """:func:`save` ``payload``, then write ``card`` as JSON beside it (same name, ``.json``),
    with the file's name and SHA-256 added. Returns the card written."""
    path = save(payload, path)
    card = {**card, "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    atomic_write_text(path.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    return card


def load_with_card(path: str | os.PathLike[str], required: tuple[str, ...] = ()
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a file written by :func:`save_with_card` after checking its SHA-256 against the card.

    Raises:
        CheckpointError: If the file or its card is missing, or the digests differ.
    """
    path = Path(path)
    card_path = path.with_suffix(".json")
    if not path.is_file() or not card_path.is_file():
        raise CheckpointError(f"{path.name} or its card {card_path.name} is missing from {path.parent}")
    card = json.loads(card_path.read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != card.get("sha256"):
        raise CheckpointError(
            f"{path} has SHA-256 {digest}, expected {card.get('sha256')}: the file is altered")
    return load(path, required=required), card
