"""A pytest plugin that makes the optional engines unimportable, as they are in CI's default tier.

``.ci/run`` installs the ``spark`` and ``ray`` extras only after ``make test``, so a default-tier
test that imports pyarrow, pyspark or ray without skipping passes on a developer's machine and
fails in CI. ``make test-without-extras`` runs the default tier through this plugin."""

from __future__ import annotations

import sys

BLOCKED = ("pyarrow", "pyspark", "ray")


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named '{name}' (blocked by tests/block_extras.py)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
