"""``microstatedb txn show ID``: a transaction's timeline across the services it touched.

The records come from running nodes (``--node URL``, each ``TxnNode`` answers
``GET /msdb/v1/txn/ID``) or from stopped services' data folders (``--store NAME=PATH``), and
are merged in time order: who prepared, who voted what, what was decided and when, which
steps and compensations ran.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "txn",
        help="inspect distributed transactions",
        description="Inspect two-phase commit and saga transactions recorded in the stores.",
    )
    inner = parser.add_subparsers(dest="txn_command", metavar="ACTION")
    show = inner.add_parser(
        "show",
        help="print a transaction's timeline across services",
        description=(
            "Merge the records every service holds about one transaction and print them "
            "in time order."
        ),
    )
    show.add_argument("id", help="the transaction id")
    show.add_argument(
        "--node", action="append", default=[], metavar="URL", help="a running node (repeat)"
    )
    show.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a stopped service's data folder and node name (repeat)",
    )
    show.add_argument("--json", action="store_true", help="print the timeline as JSON")
    show.set_defaults(run=run)
    parser.set_defaults(run=lambda args: (parser.print_help(), 2)[1])


def fetch(url: str, txn: str, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
    """``(node name, records)`` of ``txn`` from a running node."""
    from microstatedb.errors import Unavailable
    from microstatedb.runtime import TxnNode

    full = url.rstrip("/") + TxnNode.RECORDS_PATH + urllib.parse.quote(txn, safe="")
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:
            data = json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise Unavailable(f"could not read {full}: {exc}; is the node running?") from exc
    return str(data["node"]), dict(data["records"])


def read_store(spec: str, txn: str) -> tuple[str, dict[str, Any]]:
    """``(node name, records)`` of ``txn`` from a data folder given as ``NAME=PATH``."""
    from microstatedb.errors import ConfigurationError
    from microstatedb.protocols import Journal
    from microstatedb.replica import Store

    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise ConfigurationError(f"--store takes NAME=PATH, got {spec!r}")
    with Store(name, path=path, durability="none") as store:
        return name, Journal(store).get(txn)


def _writes(rec: Mapping[str, Any]) -> str:
    ws = rec.get("writes") or []
    return ", ".join(f"{w[0]} {w[1]} {w[2]!r}" for w in ws) or "no writes"


def describe(node: str, field: str, rec: Mapping[str, Any]) -> str:
    """One timeline line for record ``field`` held by ``node``."""
    why = rec.get("why")
    because = f" ({why})" if why not in (None, "") else ""
    if field == "begin":
        parts = rec.get("participants")
        return f"2PC began; coordinator {rec.get('coordinator')}, participants {parts}"
    if field == "decision":
        return ("decided COMMIT" if rec.get("commit") else "decided ABORT") + because
    if field == "end":
        status = rec.get("status")
        return f"saga {status}" if status else "coordinator forgot it (all acknowledged)"
    if field == "saga":
        steps = [f"{s[0]}@{s[1]}" for s in rec.get("steps", [])]
        return f"saga began; steps {' -> '.join(steps)}"
    kind, _, rest = field.partition("/")
    if kind == "prepared":
        return f"{rest} prepared and voted YES; write intents: {_writes(rec)}"
    if kind == "outcome":
        if rec.get("commit"):
            return f"{rest} committed; applied {_writes(rec)}"
        return f"{rest} voted NO or aborted{because}"
    branch, _, op = rest.partition("/")
    if kind == "s":
        return f"orchestrator recorded {op} of step {branch}: {rec.get('status')}{because}"
    if kind == "b":
        status = rec.get("status")
        if status == "refused":
            return f"{node} blocks action {branch}: its compensation came first"
        if status == "null":
            return f"{node} null compensation of {branch}: the action never ran"
        detail = rec.get("detail")
        extra = f" ({detail})" if detail is not None else ""
        return f"{node} ran {op} of {branch}: {status}{extra}; {_writes(rec)}"
    return f"{field}: {rec}"


def timeline(sources: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{at, node, field, text, seq}`` in time order; a record replicated to several nodes
    shows once."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, Any, Any]] = set()
    for node in sorted(sources):
        for field, rec in sources[node].items():
            if not isinstance(rec, Mapping):
                continue
            ident = (field, rec.get("seq"), rec.get("at"))
            if ident in seen:
                continue
            seen.add(ident)
            at = rec.get("at")
            rows.append(
                {
                    "at": at if isinstance(at, int | float) else 0.0,
                    "node": node,
                    "field": field,
                    "text": describe(node, field, rec),
                    "seq": rec.get("seq") if isinstance(rec.get("seq"), int) else 0,
                }
            )
    # Records written in one step share a time: a node's own sequence orders them.
    rows.sort(key=lambda r: (r["at"], r["node"], r["seq"]))
    return rows


def run(args: argparse.Namespace) -> int:
    from microstatedb.errors import ConfigurationError, InvalidOperation

    if not args.node and not args.store:
        raise ConfigurationError("name at least one --node URL or --store NAME=PATH")
    sources: dict[str, dict[str, Any]] = {}
    for url in args.node:
        name, recs = fetch(url, args.id)
        sources[name] = recs
    for spec in args.store:
        name, recs = read_store(spec, args.id)
        sources[name] = recs
    rows = timeline(sources)
    if not rows:
        raise InvalidOperation(
            f"no records of transaction {args.id!r} in {', '.join(sorted(sources))}; "
            "check the id and that every service it touched is listed"
        )
    if args.json:
        print(json.dumps(rows, default=repr))
        return 0
    start = rows[0]["at"]
    print(f"transaction {args.id}")
    for r in rows:
        print(f"  +{r['at'] - start:9.3f}s  {r['node']:<12} {r['text']}")
    return 0
