"""The configuration reference (docs/config-reference.md), generated from JobSpawner's traits.

`python -m hubdash.spawner.configref > docs/config-reference.md`;
a unit test keeps the file current.
"""

from __future__ import annotations

import inspect
import sys

from traitlets import HasTraits


def reference(cls: type[HasTraits]) -> str:
    """Markdown: one section per configurable trait the class itself defines."""
    lines = [
        f"# {cls.__name__} settings",
        "",
        "Generated from the code (`python -m hubdash.spawner.configref`); "
        "set them in `jupyterhub_config.py` as `c.JobSpawner.<name> = ...`.",
        "",
    ]
    own = {
        name
        for klass in cls.__mro__
        if klass.__module__.startswith("hubdash.")
        for name in vars(klass)
    }
    for name, trait in sorted(cls.class_traits(config=True).items()):
        if name not in own:
            continue
        default = trait.default_value_repr()
        help_text = inspect.cleandoc(trait.help or "(no help)")
        lines += [
            f"## `{name}`",
            "",
            f"{type(trait).__name__}, default `{default}`",
            "",
            help_text,
            "",
        ]
    return "\n".join(lines)


def main() -> int:
    from hubdash.spawner.jobspawner import JobSpawner

    sys.stdout.write(reference(JobSpawner))
    return 0


if __name__ == "__main__":
    sys.exit(main())
