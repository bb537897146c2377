"""Study storage for many machines: a shared path, or a cloud URI through `pyarrow.fs`.

A plain path (local disk, or NFS mounted on every node) is used as it is. A URI (`s3://`,
`gs://`, `hdfs://`, `abfs://`, and `file://` as a local stand-in) is what Ray Tune's own storage
accepts: the driver keeps the study's files in a local mirror ($LMNAS_HOME/studies/...) and
copies them to the URI after each change; a worker writes a trial's artefacts locally and
publishes them under `<study URI>/trials/<trial id>/` when the trial ends.

Every copy to a URI is written under a temporary name and then moved into place, so a reader
of the URI sees a whole file or none (object stores make each upload atomic anyway).
"""
from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

from trainers.home import lmnas_home

#: URI schemes `pyarrow.fs.FileSystem.from_uri` opens (and Ray Tune accepts as storage).
SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def is_uri(storage: str) -> bool:
    return "://" in storage


def check_storage(storage: str) -> None:
    """A ValueError naming the allowed schemes when `storage` is a URI lmnas cannot open."""
    if not is_uri(storage):
        return
    parsed = urlparse(storage)
    if parsed.scheme not in SCHEMES:
        raise ValueError(f"URI scheme {parsed.scheme!r} is not supported; use a path or one of "
                         f"{', '.join(s + '://' for s in SCHEMES)}")
    if not (parsed.netloc or parsed.path.strip("/")):
        raise ValueError(f"{storage!r} names no bucket or directory")


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def open_uri(uri: str):  # -> tuple[pyarrow.fs.FileSystem, str]
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)


@dataclass(frozen=True)
class StudyLocation:
    """Where a study's files live (`uri`, None for a plain path) and where this process reads and
    writes them (`local`: the study directory itself, or the mirror of the URI)."""

    local: Path
    uri: str | None = None

    @property
    def shown(self) -> str:
        """How to name the study to a user: its URI, else its directory."""
        return self.uri or str(self.local)

    def push(self, names: Iterable[str] | None = None) -> None:
        """Copy the study's top-level files (results, study.yaml, states, page), or only `names`, to the URI.

        Only the driver pushes everything; a reader pushes only what it wrote (e.g. the report), so
        its older copy of the results never replaces the driver's."""
        if self.uri is None or not self.local.is_dir():
            return
        files = [p for p in self.local.iterdir() if p.is_file() and not p.name.startswith(".")]
        if names is not None:
            wanted = set(names)
            files = [p for p in files if p.name in wanted]
        upload_files(sorted(files), self.uri)

    def pull(self) -> bool:
        """Fetch the study's top-level files from the URI into the mirror; False when there are none."""
        if self.uri is None:
            return self.local.is_dir()
        return download_files(self.uri, self.local) > 0


def in_ray_job() -> bool:
    """Whether this process is the driver of a submitted Ray job (Ray sets this variable for it alone)."""
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ


def local_storage(storage: str) -> Path:
    """The directory a storage path names. A job's working directory is a temporary upload (shared by
    every job of the same upload and deleted with the session), so there a relative path is taken
    relative to $LMNAS_HOME instead (the default `runs` is $LMNAS_HOME/runs), where the results
    outlive the job and a resubmission finds them."""
    path = Path(storage).expanduser()
    if not path.is_absolute() and in_ray_job():
        return lmnas_home() / path
    return path.absolute()


def study_location(storage: str, name: str) -> StudyLocation:
    """The location of study `name` in `storage` (a path or a URI)."""
    if not is_uri(storage):
        return StudyLocation(local_storage(storage) / name)
    uri = join(storage, name)
    return StudyLocation(mirror_dir(uri), uri)


def location_of(target: str, reader: bool = False) -> StudyLocation:
    """The location of an existing study given as a directory or a URI (for status, report, resume).

    A `reader` (status, report) of a URI gets a mirror of its own: the driver's mirror on the same
    machine is the driver's to write, and copying the URI's files into it could put older files over
    newer ones the driver has not pushed yet."""
    if not is_uri(target):
        return StudyLocation(Path(target).expanduser().absolute())
    check_storage(target)
    uri = target.rstrip("/")
    return StudyLocation(mirror_dir(uri, "readers" if reader else "studies"), uri)


def subdirectory_names(uri: str) -> list[str]:
    """Names of the directories directly under `uri` (none when it does not exist)."""
    from pyarrow import fs

    filesystem, root = open_uri(uri)
    if filesystem.get_file_info(root).type != fs.FileType.Directory:
        return []
    return sorted(e.base_name for e in filesystem.get_file_info(fs.FileSelector(root))
                  if e.type == fs.FileType.Directory)


def mirror_dir(uri: str, kind: str = "studies") -> Path:
    """The local mirror of a study URI: stable, so a later command on this machine finds it again
    (`kind`: "studies" for drivers, "readers" for commands that only read the study)."""
    return lmnas_home() / kind / uri_digest(uri) / uri.rstrip("/").rsplit("/", 1)[-1]


def snapshot_dir(study: str) -> Path:
    """Where a reader writes a report of a running study (a directory or URI): never into the study."""
    return lmnas_home() / "reports" / uri_digest(study) / study.rstrip("/").rsplit("/", 1)[-1]


def uri_digest(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def upload_files(paths: Iterable[Path], uri: str) -> None:
    """Copy local files into the directory `uri`, each under a temporary name, then moved into place."""
    filesystem, root = open_uri(uri)
    filesystem.create_dir(root, recursive=True)
    for path in paths:
        final = f"{root.rstrip('/')}/{path.name}"
        partial = f"{root.rstrip('/')}/.{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        with open(path, "rb") as src, filesystem.open_output_stream(partial) as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        filesystem.move(partial, final)


def upload_dir(local: Path, uri: str) -> int:
    """Copy a directory tree to `uri` (each file atomically); returns how many files were copied."""
    count = 0
    for folder, _, names in os.walk(local):
        files = [Path(folder) / n for n in sorted(names) if not n.startswith(".")]
        if files:
            upload_files(files, join(uri, Path(folder).relative_to(local).as_posix()))
            count += len(files)
    return count


def download_files(uri: str, local: Path, recursive: bool = False) -> int:
    """Copy the files under the directory `uri` into `local` (replacing each atomically there)."""
    from pyarrow import fs

    filesystem, root = open_uri(uri)
    info = filesystem.get_file_info(root)
    if info.type != fs.FileType.Directory:
        return 0
    count = 0
    for entry in filesystem.get_file_info(fs.FileSelector(root, recursive=recursive)):
        name = entry.path[len(root.rstrip("/")) + 1:]
        if entry.type != fs.FileType.File or any(part.startswith(".") for part in name.split("/")):
            continue
        final = local / name
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        with filesystem.open_input_stream(entry.path) as src, open(partial, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(partial, final)  # readers of the mirror see the old file or the new one
        count += 1
    return count


def fetch_dir(uri_or_path: str, cache: Path | None = None) -> Path:
    """A local directory holding the contents of `uri_or_path` (a path is returned as it is).

    For artefacts every worker needs, such as a trained super-network: it is downloaded once per
    machine into $LMNAS_HOME/fetched/<hash>/ and reused."""
    if not is_uri(uri_or_path):
        return Path(uri_or_path).expanduser()
    check_storage(uri_or_path)
    target = (cache or lmnas_home() / "fetched") / hashlib.sha256(uri_or_path.encode()).hexdigest()[:16]
    marker = target / ".complete"
    if not marker.exists():
        if download_files(uri_or_path, target, recursive=True) == 0:
            raise FileNotFoundError(f"nothing at {uri_or_path!r}; check the URI and the credentials of this node")
        marker.touch()
    return target
