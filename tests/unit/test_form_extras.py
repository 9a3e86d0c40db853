"""Extra fields an admin switches on (account, memory, GPUs): settings, rules, job request."""

from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from hubdash.schedulers.pbs import PBSAdapter
from hubdash.schedulers.slurm import SlurmAdapter
from hubdash.spawner.extras import (
    ExtraConfigError,
    ExtraError,
    parse_extra_settings,
    parse_memory,
)
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.options import ConfigError, OptionsError, parse_queue_table, validate_options

TABLE = {
    "debug": {"max_walltime": "1:00:00", "max_nodes": 2, "max_memory": "16G"},
    "gpu": {
        "max_walltime": "4:00:00",
        "max_gpus": 4,
        "default_gpus": 1,
        "default_memory": "8G",
        "accounts": ["proj1", "gpuproj"],
    },
}
QUEUES = parse_queue_table(TABLE)
ALL = parse_extra_settings(["account", "memory", "gpus"])
LISTED = parse_extra_settings(
    ["account"], accounts={"alice": ["proj1", "proj2"], "@physics": ["phys"], "*": ["train"]}
)


def check(data, extras=ALL, user="alice", groups=()):
    return validate_options(data, QUEUES, user, groups, extras)


def refusal(data, extras=ALL, user="alice", groups=()):
    with pytest.raises(OptionsError) as caught:
        check(data, extras, user, groups)
    return caught.value.errors


def test_extras_are_unknown_options_until_the_admin_switches_them_on():
    errors = refusal({"queue": "debug", "memory": "4G"}, extras=None)
    assert "'memory'" in errors["memory"]


def test_memory_is_read_in_the_usual_units_and_stored_normalised():
    options = check({"queue": "debug", "walltime": "30", "memory": "1.5G"})
    assert options.memory_mb == 1536
    assert options.to_user_options()["memory"] == "1536M"
    assert check({"queue": "debug", "memory": "4096"}).to_user_options()["memory"] == "4G"


def test_memory_over_the_queue_limit_names_limit_and_request():
    assert refusal({"queue": "debug", "memory": "32G"}) == {
        "memory": "queue 'debug' allows at most 16G of memory per node; you asked for 32G"
    }


@pytest.mark.parametrize("text", ["lots", "4 G B", "-1G", "$(id)", "0"])
def test_memory_that_is_not_a_size_is_refused(text):
    assert set(refusal({"queue": "debug", "memory": text})) == {"memory"}


def test_gpus_on_a_queue_without_them_point_to_the_queues_that_have_them():
    assert refusal({"queue": "debug", "gpus": "1"}) == {
        "gpus": "queue 'debug' has no GPUs; queues with GPUs: gpu"
    }
    assert check({"queue": "debug", "gpus": "0"}).gpus is None


def test_gpus_and_memory_take_the_queue_defaults_and_respect_its_limit():
    options = check({"queue": "gpu", "account": "proj1"})
    assert (options.gpus, options.memory_mb) == (1, 8192)
    assert "at most 4 GPU(s)" in refusal({"queue": "gpu", "gpus": "5"})["gpus"]


def test_typed_account_must_match_the_admins_pattern():
    extras = parse_extra_settings(["account"], account_pattern=r"[a-z]{3}[0-9]{3}")
    assert check({"queue": "debug", "account": "abc123"}, extras).account == "abc123"
    for typed in ("ABC123", "abc123; rm -rf ~", "-abc123", "abc 123"):
        errors = refusal({"queue": "debug", "account": typed}, extras)
        assert "is not an account name here" in errors["account"]


def test_an_admin_pattern_never_lets_unsafe_characters_through():
    extras = parse_extra_settings(["account"], account_pattern=r".+")
    for typed in ("a b", "a'b", "a$b", "a`b", "a;b", "a#b", "-ab"):
        assert "account" in refusal({"queue": "debug", "account": typed}, extras)


def test_listed_accounts_are_the_union_of_user_groups_and_everyone():
    assert check({"queue": "debug", "account": "proj2"}, LISTED).account == "proj2"
    assert check({"queue": "debug", "account": "phys"}, LISTED, "bob", ["physics"]).account
    errors = refusal({"queue": "debug", "account": "proj2"}, LISTED, user="bob")
    assert errors["account"] == (
        "account 'proj2' is not offered to you in queue 'debug'; choose one of: train"
    )


def test_a_queues_accounts_narrow_the_users_list():
    errors = refusal({"queue": "gpu", "account": "proj2"}, LISTED)
    assert errors["account"].endswith("choose one of: proj1")


def test_empty_account_means_the_users_default_unless_required():
    assert check({"queue": "debug", "account": ""}).account == ""
    required = parse_extra_settings(["account"], account_required=True)
    assert refusal({"queue": "debug"}, required) == {"account": "account is required"}


def test_stored_user_options_pass_the_validation_again():
    options = check({"queue": "gpu", "account": "gpuproj", "memory": "2G", "gpus": "2"})
    again = check(options.to_user_options())
    assert again == options


def test_extras_reach_the_scheduler_directives():
    config = Config()
    config.JobSpawner.queues = TABLE
    spawner = JobSpawner(config=config, user=SimpleNamespace(name="alice"))
    options = check({"queue": "gpu", "account": "gpuproj", "memory": "2G", "gpus": "2"})
    request = spawner.job_request(options)
    assert (request.account, request.memory_mb, request.gpus) == ("gpuproj", 2048, 2)
    slurm = SlurmAdapter().directives(request)
    assert {"#SBATCH --account=gpuproj", "#SBATCH --mem=2048M", "#SBATCH --gres=gpu:2"} <= set(
        slurm
    )
    assert "#PBS -A gpuproj" in PBSAdapter("torque").directives(request)


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"q": {"max_memory": "lots"}}, "['q']['max_memory']: memory 'lots' is not a size"),
        ({"q": {"max_gpus": 1, "default_gpus": 2}}, "default_gpus must be between 0"),
        ({"q": {"max_memory": "1G", "default_memory": "2G"}}, "default_memory is larger"),
        ({"q": {"accounts": ["ok", "not ok"]}}, "'not ok' is not an account name"),
    ],
)
def test_bad_extra_limits_in_the_queue_table_name_the_entry(table, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_queue_table(table)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"form_extras": ["disk"]}, "JobSpawner.form_extras has 'disk'"),
        ({"form_extras": [], "account_pattern": "("}, "JobSpawner.account_pattern is not"),
        ({"form_extras": [], "accounts": {"alice": "proj1"}}, "JobSpawner.accounts['alice']"),
        ({"form_extras": [], "accounts": {"alice": ["a b"]}}, "'a b' is not an account name"),
    ],
)
def test_bad_extra_settings_name_the_setting(settings, fragment):
    with pytest.raises(ExtraConfigError) as caught:
        parse_extra_settings(**settings)
    assert fragment in str(caught.value)


def test_bad_extra_settings_are_trait_errors_on_the_spawner():
    config = Config()
    config.JobSpawner.form_extras = ["account", "disk"]
    with pytest.raises(TraitError, match="JobSpawner.form_extras has 'disk'"):
        JobSpawner(config=config)


def test_check_config_reports_a_bad_queue_table_with_its_setting():
    spawner = JobSpawner(config=Config(), login_host="login.example.org")
    spawner.queues = {"debug": {"max_walltime": "1:00:00"}}
    spawner.check_config()
    with pytest.raises(TraitError, match=r"JobSpawner.queues\['debug'\]\['max_nodes'\]"):
        spawner.queues = {"debug": {"max_nodes": "2"}}


def test_memory_spellings():
    assert [parse_memory(t) for t in ("512M", "512MB", "2g", "1T", "2048K")] == [
        512,
        512,
        2048,
        1048576,
        2,
    ]


def test_memory_at_least_one_megabyte():
    assert parse_memory("1M") == 1
    for text in ("0", "0.4M", "512K"):
        with pytest.raises(ExtraError) as caught:
            parse_memory(text)
        assert str(caught.value) == "memory must be at least 1M"


def test_memory_not_a_size_is_shown_cut_to_forty_characters():
    with pytest.raises(ExtraError) as caught:
        parse_memory("x" * 50)
    assert str(caught.value) == (
        f"memory {'x' * 40!r} is not a size: write megabytes (4096) or a number with M, G or T (4G)"
    )


def test_memory_setting_of_true_is_no_size():
    # An admin's `max_memory = True` is no number of megabytes (bool is an int in Python).
    with pytest.raises(ExtraError, match="memory 'True' is not a size"):
        parse_memory(True)


def test_memory_exactly_at_the_queue_limit_is_taken():
    assert check({"queue": "debug", "memory": "16G"}).memory_mb == 16384


def test_empty_memory_and_gpus_mean_the_schedulers_default():
    options = check({"queue": "debug", "memory": " ", "gpus": ""})
    assert (options.memory_mb, options.gpus) == (None, None)


def test_gpus_that_are_not_a_whole_number_are_refused_by_name():
    for typed in ("1.5", "two", "²", "-1"):
        assert refusal({"queue": "gpu", "account": "proj1", "gpus": typed}) == {
            "gpus": "gpus must be a whole number"
        }


def test_gpus_on_a_hub_without_gpu_queues_say_only_that_the_queue_has_none():
    queues = parse_queue_table({"debug": {"max_walltime": "1:00:00"}})
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", "gpus": "1"}, queues, "alice", (), ALL)
    assert caught.value.errors == {"gpus": "queue 'debug' has no GPUs"}


def test_gpus_on_a_queue_without_them_list_every_gpu_queue():
    queues = parse_queue_table({"debug": {}, "gpu": {"max_gpus": 4}, "a100": {"max_gpus": 8}})
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", "gpus": "1"}, queues, "alice", (), ALL)
    assert caught.value.errors == {"gpus": "queue 'debug' has no GPUs; queues with GPUs: gpu, a100"}


def test_required_account_lists_the_users_accounts():
    required = parse_extra_settings(
        ["account"], account_required=True, accounts={"alice": ["proj1", "proj2"]}
    )
    assert refusal({"queue": "debug"}, required) == {
        "account": "account is required; choose one of: proj1, proj2"
    }


def test_an_account_not_offered_lists_the_users_accounts():
    errors = refusal({"queue": "debug", "account": "other"}, LISTED)
    assert errors["account"] == (
        "account 'other' is not offered to you in queue 'debug'; choose one of: proj1, proj2, train"
    )


def test_a_user_with_no_account_in_the_queue_is_told_so():
    extras = parse_extra_settings(["account"], accounts={"alice": ["proj2"]})
    errors = refusal({"queue": "gpu", "account": "proj2"}, extras)
    assert errors["account"] == (
        "account 'proj2' is not offered to you in queue 'gpu'; you have none"
    )


def test_a_long_account_is_shown_cut_to_forty_characters():
    extras = parse_extra_settings(["account"], accounts={"alice": ["proj1"]})
    forty = "a" * 40
    assert refusal({"queue": "debug", "account": forty}, extras)["account"].startswith(
        f"account {forty!r} is not offered"
    )
    assert refusal({"queue": "debug", "account": forty + "b"}, extras)["account"].startswith(
        f"account {forty + '…'!r} is not offered"
    )


def test_a_typed_account_that_is_no_name_tells_whom_to_ask():
    assert refusal({"queue": "debug", "account": "a b"}) == {
        "account": "account 'a b' is not an account name here; "
        "ask your admin for the name of your project account"
    }


def test_unknown_extra_lists_the_known_ones():
    with pytest.raises(ExtraConfigError) as caught:
        parse_extra_settings(["account", "disk"])
    assert str(caught.value) == (
        "JobSpawner.form_extras has 'disk'; known extras: account, memory, gpus, qos"
    )


@pytest.mark.parametrize("key", ["", 7])
def test_accounts_keyed_by_anything_but_a_name_are_refused(key):
    with pytest.raises(ExtraConfigError) as caught:
        parse_extra_settings(["account"], accounts={key: ["proj1"]})
    assert str(caught.value) == (
        f"JobSpawner.accounts[{key!r}]: keys are user names, '@group' or '*'"
    )


def test_bad_account_in_the_settings_is_named_with_its_key_and_the_rule():
    with pytest.raises(ExtraConfigError) as caught:
        parse_extra_settings(["account"], accounts={"alice": ["proj1", "a b"]})
    assert str(caught.value) == (
        "JobSpawner.accounts['alice']: 'a b' is not an account name "
        "(letters, digits and _ . + -, at most 64 characters)"
    )
