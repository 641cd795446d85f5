"""``python -m rxmqtt.engine``: the seam check's verdict on the installed paho-mqtt. Exit 0 when
every seam the paho adapter relies on is there, 1 naming each missing piece otherwise (the nox
session ``seam`` runs it on every supported paho-mqtt minor, and on the release below)."""

from __future__ import annotations

from ._paho_client import PAHO_VERSION_TEXT
from ._seam_check import missing_paho_seams


def main() -> int:
    problems = missing_paho_seams()
    if not problems:
        print(f"paho-mqtt {PAHO_VERSION_TEXT}: every seam rxmqtt.engine relies on is there")
        return 0
    print(f"paho-mqtt {PAHO_VERSION_TEXT}: {len(problems)} seam(s) rxmqtt.engine relies on:")
    for problem in problems:
        print(f"  - {problem}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
