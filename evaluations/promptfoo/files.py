"""Where a suite's files come from: a folder on disk (the operator's command), an uploaded zip
of the config and the files it refers to, or an uploaded config alone.

Paths in a config are relative to the config's folder, as in promptfoo. A zip's paths cannot
leave the zip, and an uploaded config alone cannot refer to any file; every refusal names the
file and key that asked for it."""

import fnmatch
import io
import posixpath
import zipfile
from pathlib import Path, PurePosixPath

from promptlab.errors import Invalid

CONFIG_NAMES = ("promptfooconfig.yaml", "promptfooconfig.yml")
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ZIP_BYTES = 100 * 1024 * 1024  # all files of an upload, uncompressed
MAX_ZIP_FILES = 2000


class SuiteFiles:
    """The config file's name and text, and the files it may refer to."""

    config_name: str

    def config_text(self) -> str:
        return self.text(self.config_name, where=self.config_name)

    def read(self, path: str, *, where: str) -> bytes:
        raise NotImplementedError

    def glob(self, pattern: str, *, where: str) -> list[str]:
        """The paths matching a pattern with * or ?, sorted; a plain path as it is."""
        raise NotImplementedError

    def text(self, path: str, *, where: str) -> str:
        return decode(self.read(path, where=where), path=path, where=where)


def decode(data: bytes, *, path: str, where: str) -> str:
    """UTF-8 text (a BOM is allowed), or Invalid naming the file and who asked for it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        place = path if where == path else f"{where}: {path}"
        raise Invalid(f"{place} is not UTF-8 text (byte {exc.start + 1}).", details={"file": path}) from None


def is_pattern(path: str) -> bool:
    return any(char in path for char in "*?[")


class FolderFiles(SuiteFiles):
    """A config on disk; its references may point anywhere the operator's process can read."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir():
            found = next((path / name for name in CONFIG_NAMES if (path / name).is_file()), None)
            if found is None:
                raise Invalid(f"{path} has no {' or '.join(CONFIG_NAMES)}.", details={"file": str(path)})
            path = found
        if not path.is_file():
            raise Invalid(f"{path} does not exist.", details={"file": str(path)})
        self.root = path.parent
        self.config_name = path.name

    def _resolve(self, path: str) -> Path:
        return (self.root / path).resolve() if not Path(path).is_absolute() else Path(path)

    def read(self, path: str, *, where: str) -> bytes:
        target = self._resolve(path)
        if not target.is_file():
            raise Invalid(f"{where}: {path} does not exist (looked for {target}).", details={"file": path})
        if target.stat().st_size > MAX_FILE_BYTES:
            raise Invalid(f"{where}: {path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.", details={"file": path})
        return target.read_bytes()

    def glob(self, pattern: str, *, where: str) -> list[str]:
        if not is_pattern(pattern):
            return [pattern]
        if Path(pattern).is_absolute():
            anchor = Path(pattern).anchor
            return sorted(str(Path(anchor) / found) for found in Path(anchor).glob(str(Path(pattern).relative_to(anchor))))
        return sorted(str(found.relative_to(self.root)) for found in self.root.glob(pattern) if found.is_file())


class ZipFiles(SuiteFiles):
    """An uploaded zip holding the config (at its top or in one folder) and the files it uses."""

    def __init__(self, data: bytes, *, name: str = "upload.zip"):
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise Invalid(f"{name} is not a zip file.", details={"file": name}) from None
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > MAX_ZIP_FILES:
            raise Invalid(f"{name} holds more than {MAX_ZIP_FILES} files.", details={"file": name})
        if sum(info.file_size for info in members) > MAX_ZIP_BYTES:
            raise Invalid(f"{name} unpacks to more than {MAX_ZIP_BYTES // (1024 * 1024)} MB.", details={"file": name})
        self.files: dict[str, bytes] = {}
        for info in members:
            path = posixpath.normpath(info.filename.replace("\\", "/"))
            if path.startswith(("/", "../")) or path == "..":
                raise Invalid(f"{name}: {info.filename} points outside the zip.", details={"file": info.filename})
            with archive.open(info) as member:
                self.files[path] = member.read(MAX_FILE_BYTES + 1)
            if len(self.files[path]) > MAX_FILE_BYTES:
                raise Invalid(f"{name}: {path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.", details={"file": path})
        configs = sorted((path for path in self.files if PurePosixPath(path).name in CONFIG_NAMES), key=lambda p: (p.count("/"), p))
        if not configs:
            raise Invalid(f"{name} has no {' or '.join(CONFIG_NAMES)}.", details={"file": name})
        self.root = posixpath.dirname(configs[0])
        self.config_name = PurePosixPath(configs[0]).name

    def _resolve(self, path: str, where: str) -> str:
        if path.startswith("/"):
            raise Invalid(f"{where}: {path} is an absolute path; in an upload, refer to files inside the zip.", details={"file": path})
        resolved = posixpath.normpath(posixpath.join(self.root, path))
        if resolved.startswith("../") or resolved == "..":
            raise Invalid(f"{where}: {path} points outside the zip.", details={"file": path})
        return resolved

    def read(self, path: str, *, where: str) -> bytes:
        resolved = self._resolve(path, where)
        if resolved not in self.files:
            raise Invalid(f"{where}: {path} is not in the zip.", details={"file": path})
        return self.files[resolved]

    def glob(self, pattern: str, *, where: str) -> list[str]:
        if not is_pattern(pattern):
            return [pattern]
        resolved = self._resolve(pattern, where)
        prefix = f"{self.root}/" if self.root else ""
        return sorted(path.removeprefix(prefix) for path in self.files if fnmatch.fnmatchcase(path, resolved))


class ConfigOnly(SuiteFiles):
    """An uploaded config without its files: it may not refer to any."""

    def __init__(self, data: bytes, *, name: str):
        self.data, self.config_name = data, name

    def config_text(self) -> str:
        return decode(self.data, path=self.config_name, where=self.config_name)

    def read(self, path: str, *, where: str) -> bytes:
        raise Invalid(
            f"{where}: refers to {path}; upload a zip holding {self.config_name} and the files it refers to.",
            details={"file": path},
        )

    def glob(self, pattern: str, *, where: str) -> list[str]:
        return [pattern]
