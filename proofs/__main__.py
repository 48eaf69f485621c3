"""``python -m proofs``: run every Spin model and z3 proof, then every mutant.

Prints per model the states explored, the time and the verdict, and ``mutant NAME: caught``
for each seeded bug. Exits 1 if a property fails or a mutant is not caught.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

from proofs._models import MODELS, SpinModel
from proofs._spin import SpinResult, run_spin
from proofs._z3 import PROOFS, check


def main() -> int:
    """Run everything; returns the exit status."""
    failed = 0
    jobs: list[tuple[SpinModel, str, tuple[str, ...]]] = [(m, "", ()) for m in MODELS]
    jobs += [(m, name, (macro,)) for m in MODELS for name, macro in m.mutants.items()]
    # Two workers: the machine CI runs on has two cores, and each job is one process.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda j: run_spin(j[0].path, j[2]), jobs))
    for (model, mutant, _), res in zip(jobs, results, strict=True):
        if not mutant:
            verdict = "holds" if res.holds else f"FAILS {res.violation}"
            failed += not res.holds
            print(f"spin {model.name}: {res.states} states, {res.seconds:.1f}s, {verdict}")
        else:
            failed += not _report_mutant(mutant, res)
    for proof in PROOFS:
        z = check(proof)
        failed += not z.holds
        verdict = "holds" if z.holds else "FAILS"
        print(f"z3 {proof.name}: {z.claims} claims, {z.seconds:.1f}s, {verdict}")
        caught = not check(proof, mutant=True).holds
        failed += not caught
        print(f"mutant {proof.mutant}: {'caught' if caught else 'NOT CAUGHT'}")
    print("all proofs hold, all mutants caught" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0


def _report_mutant(name: str, res: SpinResult) -> bool:
    caught = res.errors > 0
    print(f"mutant {name}: {'caught' if caught else 'NOT CAUGHT'} ({res.states} states)")
    return caught


if __name__ == "__main__":
    sys.exit(main())
