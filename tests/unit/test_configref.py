"""The generated configuration reference matches the code, and every setting explains itself."""

from pathlib import Path

from hubdash.spawner.configref import reference
from hubdash.spawner.jobspawner import JobSpawner

DOC = Path(__file__).resolve().parents[2] / "docs" / "config-reference.md"


def test_config_reference_is_current():
    assert DOC.read_text() == reference(JobSpawner), (
        "docs/config-reference.md is stale: run "
        "`python -m hubdash.spawner.configref > docs/config-reference.md`"
    )


def test_every_setting_has_help():
    for name, trait in JobSpawner.class_traits(config=True).items():
        assert trait.help and len(trait.help) > 20, f"JobSpawner.{name} has no useful help"
