"""The spawn options as JobSpawner takes them: from the form, the REST API and opt- URLs, each
checked by options.py against the admin's queue table; a refused form is kept to be shown
again with its entries. Part of JobSpawner."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tornado import web
from traitlets import (
    TraitError,
)

from hubdash.relaunch import remember_choice
from hubdash.serverstate import RecentChoice
from hubdash.spawner.clusterchoice import ClusterRefused, refused_as_http
from hubdash.spawner.environments import EnvironmentConfigError, check_queue_environments
from hubdash.spawner.extras import ExtraConfigError, ExtraFields, parse_extra_settings
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.options import (
    ConfigError,
    JobOptions,
    OptionsError,
    validate_options,
)


class FormOptions:
    """JobSpawner's options handling (a mixin: it uses the spawner's settings and user)."""

    # The sets of options this server last started with, newest first (saved in its state).
    recent_choices: list[RecentChoice]

    async def options_from_form(self, formdata: dict) -> dict:
        return await self._validated_user_options(formdata, remember_form=True)

    async def options_from_query(self, query_data: dict) -> dict:
        # A refused opt- URL shows the form with its entries and errors, as a refused POST does.
        return await self._validated_user_options(query_data, remember_form=True)

    async def _validated_user_options(self, data: dict, remember_form: bool = False) -> dict:
        try:
            options = await self.job_options_checked(data)
        except OptionsError as exc:
            if remember_form:
                hub_state(self.user).failed_forms.remember(
                    self.user.name, self.name, data, exc.errors
                )
            # The text as the argument of "%s": read as it is by every tornado (one that
            # %-formats a message without arguments and one that does not alike).
            error = web.HTTPError(400, "%s", f"Please correct the form: {exc}")
            # Shown above the form as it is (not as "HTTP 400: Bad Request (...)").
            error.jupyterhub_message = f"The server was not started. Please correct the form: {exc}"
            raise error from None
        return self.chosen_options(options)

    def chosen_options(self, options: JobOptions) -> dict[str, Any]:
        """Checked options as user_options: what the server keeps and starts again with."""
        user_options = options.to_user_options()
        if self.clusters:  # a hub of several clusters: the server's own, kept with the rest
            user_options["cluster"] = self.chosen_cluster
        return user_options

    async def job_options_checked(self, data: dict) -> JobOptions:
        """`job_options` with the scheduler's word: the user's accounts from its accounting
        (accounts_from_scheduler), then whether it would run such a job at all."""
        self.job_options(data)  # puts the options' cluster in place, or refuses them
        await self.load_user_accounting()
        options = self.job_options(data)
        await self.check_with_scheduler(options)
        return options

    def remember_choices(self, options: JobOptions) -> None:
        """Put a start's options first in this server's recent choices (hubdash.relaunch)."""
        self.recent_choices = remember_choice(
            self.recent_choices, self.chosen_options(options), time.time()
        )

    def job_options(self, data: dict) -> JobOptions:
        """The options checked against the rules of the cluster they name (or the user's
        first one), whose settings are then in place on this spawner."""
        data = dict(data)
        name = self.pick_cluster(data.pop("cluster", None))
        if name != self.chosen_cluster or self.removed_cluster is not None:
            self.use_cluster(name)
        return validate_options(
            data, self.queue_table, self.user.name, self.user_groups(), self.extras_for_user()
        )

    @property
    def extra_fields(self) -> ExtraFields:
        if self._extra_fields is None:
            extras = parse_extra_settings(
                self.form_extras,
                self.account_pattern,
                self.account_required,
                self.accounts,
                self.environments,
            )
            for queue in self.queue_table.values():
                try:
                    check_queue_environments(queue.name, queue.environments, extras.environments)
                except EnvironmentConfigError as exc:
                    raise ExtraConfigError(str(exc)) from None
            if "qos" in extras and self.scheduler != "slurm":
                raise ExtraConfigError(
                    f"JobSpawner.form_extras has 'qos', which only Slurm knows; this cluster's "
                    f"scheduler is {self.scheduler!r}"
                )
            self._extra_fields = extras
        return self._extra_fields

    def check_config(self) -> None:
        """Read every form setting once; TraitError naming the setting if one cannot work."""
        try:
            self.check_clusters()
        except (ConfigError, ExtraConfigError, ValueError) as exc:
            raise TraitError(str(exc)) from None


def checked_job_options(spawner: Any, user_options: dict | None) -> JobOptions:
    """The spawn's options, or the HTTP error that refuses them: 403 for a cluster the user
    may not use, 400 naming the option for anything else."""
    with _refusals_as_http():
        return spawner.job_options(user_options or {})


@contextmanager
def _refusals_as_http() -> Iterator[None]:
    try:
        yield
    except ClusterRefused as exc:
        raise refused_as_http(exc) from None
    except OptionsError as exc:
        error = web.HTTPError(400, "%s", f"Invalid options: {exc}")
        # What the REST API answers.
        error.jupyterhub_message = f"Invalid options: {exc}"
        raise error from None


async def check_user_options(spawner: Any, user_options: dict) -> None:
    """JupyterHub's apply_user_options: bad options end as a 400 naming the option (403 for
    another group's cluster), for every way in (form, API, opt- URL), before start() runs;
    with the scheduler's word on them (SchedulerCheck)."""
    with _refusals_as_http():
        await spawner.job_options_checked(user_options or {})
