"""Fetch and build what the stack runs, once: Maven artifacts, unzipped apps, Go binaries.

A download folder counts as complete only once its marker file is written, so an interrupted
download is wiped and redone on the next ``up``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sentio_iot.errors import StackError

log = logging.getLogger(__name__)

MARKER = ".complete"
TOOL_TIMEOUT_S = 1800.0


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def fill_once(folder: Path, fill: Callable[[Path], None]) -> bool:
    """Run ``fill(folder)`` unless the folder is complete; False when it already was."""
    if is_complete(folder):
        return False
    if folder.exists():
        log.info("redoing an incomplete download folder=%s", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    fill(folder)
    (folder / MARKER).write_text("complete\n", encoding="utf-8")
    return True


def run_tool(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = TOOL_TIMEOUT_S,
) -> str:
    """Run an installer command; a failure becomes one StackError line with its first error."""
    log.debug("running %s", " ".join(argv))
    try:
        result = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what} took longer than {timeout_s:g} s") from exc
    except OSError as exc:
        raise StackError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from exc
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise StackError(
            f"{what} failed (exit {result.returncode}): {first_error(output)}",
            fix="check network access and the versions in the stack settings",
        )
    return output


def first_error(output: str) -> str:
    """The most telling line of a failed tool's output: its first [ERROR], else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("[ERROR]"):
            return line[:400]
    return lines[-1][:400] if lines else "no output"


def maven_copy_dependencies(
    mvn: Path, pom: Path, output: Path, properties: Mapping[str, str]
) -> None:
    """Copy the pom's dependencies, with their own dependencies, into ``output``."""
    defines = [f"-D{key}={value}" for key, value in properties.items()]
    goal = ["dependency:copy-dependencies", f"-DoutputDirectory={output}"]
    run_tool(
        [str(mvn), "-q", "-B", "-f", str(pom), *defines, *goal],
        what=f"mvn dependency:copy-dependencies for {pom}",
    )


def maven_copy_artifact(mvn: Path, coordinates: str, output: Path) -> None:
    """Copy one artifact (``group:artifact:version:type:classifier``) into ``output``."""
    # dependency:get fails for artifacts whose parent POM is not on Central; copy does not.
    goal = ["dependency:copy", f"-Dartifact={coordinates}", f"-DoutputDirectory={output}"]
    run_tool(
        [str(mvn), "-q", "-B", *goal],
        what=f"mvn dependency:copy {coordinates}",
        cwd=output,
    )


def maven_unzip(mvn: Path, coordinates: str, destination: Path) -> None:
    """Fetch a zip artifact with Maven and unpack it into ``destination``."""
    download_dir = destination / "download"
    download_dir.mkdir()
    maven_copy_artifact(mvn, coordinates, download_dir)
    for archive in download_dir.glob("*.zip"):
        unzip(archive, destination)
        archive.unlink()
    download_dir.rmdir()


def unzip(archive: Path, destination: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(destination)
    except (zipfile.BadZipFile, OSError) as exc:
        raise StackError(f"cannot unzip {archive}: {exc}") from exc


def go_binary(bin_dir: Path, binary: str, version: str) -> Path | None:
    """The binary ``go_install`` built for this version, if it is there."""
    path = bin_dir / binary
    stamp = bin_dir / f"{binary}.version"
    if path.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == version:
        return path
    return None


def go_install(go: Path, package: str, version: str, bin_dir: Path, binary: str) -> Path:
    """``GOBIN=<bin_dir> go install <package>@<version>``; a stamp file records the version."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    stamp = bin_dir / f"{binary}.version"
    stamp.unlink(missing_ok=True)
    env = {**os.environ, "GOBIN": str(bin_dir)}
    run_tool([str(go), "install", f"{package}@{version}"], what=f"go install {package}", env=env)
    path = bin_dir / binary
    if not path.is_file():
        raise StackError(f"go install {package}@{version} did not produce {path}")
    stamp.write_text(version + "\n", encoding="utf-8")
    return path
