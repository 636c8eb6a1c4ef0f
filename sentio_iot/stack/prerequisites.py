"""Find the programs the stack needs and say in one line how to install a missing one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# Debian installs daemons such as mosquitto in sbin folders, often not on a user's PATH.
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/local/sbin"), Path("/usr/sbin"), Path("/sbin"))

INSTALL_HINTS: dict[str, str] = {
    "java": "apt-get install openjdk-17-jre-headless",
    "mvn": "apt-get install maven",
    "go": "Go 1.26 or newer from https://go.dev/dl/",
    "mosquitto": "apt-get install mosquitto",
    "victoria-metrics": "apt-get install victoria-metrics (or install Go 1.26+ to build it)",
}

MIN_JAVA = 17


def missing(program: str, why: str = "") -> str:
    """The one-line message for a missing program, e.g. for PrerequisiteError."""
    reason = f" (needed {why})" if why else ""
    return f"{program} not found{reason}; install it with: {INSTALL_HINTS.get(program, program)}"


def find_program(name: str) -> Path | None:
    """``name`` on PATH, else in the system sbin folders."""
    found = shutil.which(name)
    if found:
        return Path(found)
    for folder in SYSTEM_DIRS:
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_java() -> Path | None:
    """``$JAVA_HOME/bin/java`` when set, else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return find_program("java")


def java_major_version(java: Path) -> int | None:
    """17 for ``openjdk version "17.0.15"``, 8 for ``"1.8.0_392"``; None when it cannot tell."""
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_java_version(result.stderr + result.stdout)


def parse_java_version(text: str) -> int | None:
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):  # Java 8 and older: "1.8.0"
        return int(match.group(2))
    return major


def java_problem() -> str | None:
    """None when a Java 17+ runtime is there, else the one-line message saying what to install."""
    java = find_java()
    if java is None:
        return missing("java", "by Kafka and Apicurio Registry")
    major = java_major_version(java)
    if major is not None and major < MIN_JAVA:
        return f"java {MIN_JAVA} or newer needed, found java {major} at {java}; install it with: {INSTALL_HINTS['java']} (or set JAVA_HOME)"
    return None
