"""The spawn options as JobSpawner takes them: from the form, the REST API and opt- URLs, each
checked by options.py against the admin's queue table; a refused form is kept to be shown
again with its entries. Part of JobSpawner."""

from __future__ import annotations

import time
from typing import Any

from tornado import web
from traitlets import (
    TraitError,
)

from hubdash.relaunch import remember_choice
from hubdash.serverstate import RecentChoice
from hubdash.spawner.clusterchoice import ClusterRefused, refused_as_http
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

    def options_from_form(self, formdata: dict) -> dict:
        return self._validated_user_options(formdata, remember_form=True)

    def options_from_query(self, query_data: dict) -> dict:
        # A refused opt- URL shows the form with its entries and errors, as a refused POST does.
        return self._validated_user_options(query_data, remember_form=True)

    def _validated_user_options(self, data: dict, remember_form: bool = False) -> dict:
        try:
            options = self.job_options(data)
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
            data, self.queue_table, self.user.name, self.user_groups(), self.extra_fields
        )

    @property
    def extra_fields(self) -> ExtraFields:
        if self._extra_fields is None:
            self._extra_fields = parse_extra_settings(
                self.form_extras, self.account_pattern, self.account_required, self.accounts
            )
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
    try:
        return spawner.job_options(user_options or {})
    except ClusterRefused as exc:
        raise refused_as_http(exc) from None
    except OptionsError as exc:
        error = web.HTTPError(400, "%s", f"Invalid options: {exc}")
        # What the REST API answers.
        error.jupyterhub_message = f"Invalid options: {exc}"
        raise error from None


def check_user_options(spawner: Any, user_options: dict) -> None:
    """JupyterHub's apply_user_options: bad options end as a 400 naming the option (403 for
    another group's cluster), for every way in (form, API, opt- URL), before start() runs."""
    checked_job_options(spawner, user_options)
