"""Pin the transfer sets of the default DistillSource environments, so their first use on a
fresh clone builds nothing: ``python -m envs.distill_source.pin``.

Every registered DistillSource id is built with its default options against an empty cache
folder; each transfer set and boundary pool it created there (``transfer/<source>-<hash>/``,
``distill_source/boundary-<source>-<hash>/``: ``data.pt`` + ``meta.json`` with its sha256) is
copied to ``distill/pinned_transfer/`` under the same name. Lookups find them by the same
config hash, so only entries built for exactly the requested options are used, and they are
verified on load like any cache entry. Re-run after changing a default, the sources or the
pinned teacher.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

ENTRY_FILES = ("data.pt", "meta.json")


def copy_entries(cache: Path, dest: Path) -> list[str]:
    """Copy every finished cache entry of ``cache`` (transfer sets, boundary pools) to
    ``dest``; returns their names."""
    found = [*sorted((cache / "transfer").glob("*/meta.json")),
             *sorted((cache / "distill_source").glob("boundary-*/meta.json"))]
    names = []
    for meta in found:
        src = meta.parent
        (dest / src.name).mkdir(parents=True, exist_ok=True)
        for f in ENTRY_FILES:
            shutil.copyfile(src / f, dest / src.name / f)
        names.append(src.name)
    return names


def main(argv: list[str] | None = None) -> list[str]:
    import gymnasium as gym

    import envs
    from distill.logits import PINNED_DIR

    p = argparse.ArgumentParser(prog="python -m envs.distill_source.pin", description=__doc__)
    p.add_argument("--ids", nargs="*", default=list(envs.DISTILL_SOURCE_IDS))
    p.add_argument("--cache", default=None, help="build into this folder (default: a new "
                   "temporary one); an existing cache of earlier builds is reused")
    args = p.parse_args(argv)
    cache = Path(args.cache or tempfile.mkdtemp(prefix="deploygym-pin-"))
    os.environ["DEPLOYGYM_CACHE"] = str(cache)
    for env_id in args.ids:
        print(f"building {env_id} in {cache}", flush=True)
        gym.make(env_id).close()
    names = copy_entries(cache, PINNED_DIR)
    print(f"pinned {len(names)} entries in {PINNED_DIR}")
    return names


if __name__ == "__main__":
    main()
