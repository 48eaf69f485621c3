"""``microstatedb inspect PATH``: what a store's folder holds, verified.

Opens a copy of the folder (so the original is never locked, cut, sealed or repaired),
verifies every segment header, frame checksum and snapshot digest, and shows the log's
positions and segments, the snapshots, the version vector and the last events.

Exit codes: 0 everything verifies, 1 damage was found (the file and offset are printed),
2 the path is not a store's folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from microstatedb.cli._output import (
    add_json_flag,
    describe,
    print_json,
    print_table,
    progress,
)

# Files a copy leaves out: the lock of a running store, and what an earlier repair moved aside.
_SKIP = shutil.ignore_patterns("LOCK", "quarantine")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "inspect",
        help="show a store folder's log, snapshots and version vector; verify checksums",
        description=describe(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", help="the folder given as Store(path=...) or EventLog(path)")
    parser.add_argument(
        "--events", type=int, default=10, help="how many of the last events to show (default 10)"
    )
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from microstatedb.errors import ConfigurationError, CorruptData

    if args.events < 0:
        raise ConfigurationError(f"--events must be 0 or more, got {args.events}")
    folder = Path(args.path)
    if not folder.is_dir() or not any(folder.glob("*.seg*")):
        print(
            f"error: {folder} is not a store folder (no *.seg segment files); give the path "
            "that was passed to Store(path=...)",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="msdb-inspect-") as scratch:
        copy = Path(scratch) / "log"
        shutil.copytree(folder, copy, ignore=_SKIP)
        try:
            report = inspect_folder(copy, args.events, show_progress=not args.json)
        except CorruptData as exc:
            where = str(exc).replace(str(copy), str(folder))
            if args.json:
                print_json({"ok": False, "path": str(folder), "error": where})
            else:
                print(f"damaged: {where}", file=sys.stderr)
                print(
                    "the store refuses to open this folder as it is; open it with "
                    "Store(name, path=PATH, repair=True) to move the damaged part aside, "
                    "then sync with a peer to refetch the lost events (docs/recovery.md)",
                    file=sys.stderr,
                )
            return 1
    report["path"] = str(folder)
    report["snapshots"] = [
        {**s, "path": s["path"].replace(str(copy), str(folder))} for s in report["snapshots"]
    ]
    report["recovery"]["damaged_snapshots"] = [
        p.replace(str(copy), str(folder)) for p in report["recovery"]["damaged_snapshots"]
    ]
    ok: bool = report["ok"]
    if args.json:
        print_json(report)
    else:
        _show(report)
    return 0 if ok else 1


def inspect_folder(path: Path, last: int, *, show_progress: bool = False) -> dict[str, Any]:
    """Open the log at ``path`` (which it may cut or seal) and describe it as plain data."""
    from microstatedb.log import EventLog

    with EventLog(path, durability="none") as log:
        stats = log.stats()
        recovery = log.recovery
        snapshot = log.latest_snapshot()
        vv: dict[str, int] = dict(snapshot.info.vv) if snapshot is not None else {}
        tail: list[dict[str, Any]] = []
        verified = 0
        # reading every event verifies every frame checksum (opening already did, this counts)
        with progress("verifying", stats.events, enabled=show_progress) as advance:
            for position, event in enumerate(log.read(log.first_position), log.first_position):
                verified += 1
                advance()
                if event.seq > vv.get(event.origin, 0):
                    vv[event.origin] = event.seq
                if last:
                    tail.append(
                        {
                            "position": position,
                            "origin": event.origin,
                            "seq": event.seq,
                            "hlc": event.hlc,
                            "key": event.key,
                            "kind": event.kind,
                            "op": event.op,
                        }
                    )
                    del tail[:-last]
    snapshots = []
    if snapshot is not None:
        info = snapshot.info
        snapshots.append(
            {
                "id": info.id,
                "position": info.position,
                "size": info.size,
                "vv": dict(info.vv),
                "path": info.path or "",
            }
        )
    return {
        # a torn tail is what a crash leaves and is cut on open; only damage fails the check
        "ok": not recovery.damaged_snapshots,
        "log": {
            "events": stats.events,
            "verified_events": verified,
            "bytes": stats.bytes,
            "segments": stats.segments,
            "sealed_segments": stats.sealed_segments,
            "first_position": stats.first_position,
            "next_position": stats.next_position,
        },
        "recovery": {
            "clean": recovery.clean,
            "torn_bytes": recovery.torn_bytes,
            "damaged_snapshots": list(recovery.damaged_snapshots),
        },
        "snapshots": snapshots,
        "version_vector": dict(sorted(vv.items())),
        "last_events": tail,
    }


def _show(report: dict[str, Any]) -> None:
    log = report["log"]
    rec = report["recovery"]
    print(f"store folder {report['path']}")
    print_table(
        "log",
        ("events", "verified events", "segments", "sealed", "bytes", "positions"),
        [
            (
                log["events"],
                log["verified_events"],
                log["segments"],
                log["sealed_segments"],
                log["bytes"],
                f"{log['first_position']}..{log['next_position']}",
            )
        ],
    )
    if rec["clean"]:
        print("checksums: every header, frame and snapshot verifies")
    else:
        if rec["torn_bytes"]:
            print(
                f"torn tail: {rec['torn_bytes']} bytes of an unfinished write at the end "
                "(a crash); the store cuts them when it next opens"
            )
        for path in rec["damaged_snapshots"]:
            print(f"damaged snapshot skipped: {path} (an older one or full replay is used)")
    if not report["snapshots"]:
        print("no snapshot: opening replays the whole log")
    print_table(
        "newest valid snapshot",
        ("id", "position", "state bytes", "version vector"),
        [(s["id"][:16], s["position"], s["size"], s["vv"]) for s in report["snapshots"]],
    )
    print_table(
        "version vector",
        ("origin", "events seen"),
        list(report["version_vector"].items()),
    )
    print_table(
        f"last {len(report['last_events'])} events",
        ("position", "origin", "seq", "key", "kind", "op"),
        [
            (e["position"], e["origin"], e["seq"], e["key"], e["kind"], e["op"])
            for e in report["last_events"]
        ],
    )
