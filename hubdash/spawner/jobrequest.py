"""What a server's job asks the scheduler for, and the job script that runs it: built from the
validated options and the admin's settings. Part of JobSpawner."""

from __future__ import annotations

import posixpath

from hubdash.job.contract import (
    JOB_LOG,
)
from hubdash.schedulers.base import (
    JobRequest,
    SchedulerAdapter,
)
from hubdash.spawner.engineplan import (
    EngineLayout,
    launcher_command,
    launcher_template,
    plan_layout,
)
from hubdash.spawner.environments import entry_lines
from hubdash.spawner.jobscript import JobScript, render_job_script
from hubdash.spawner.options import (
    JobOptions,
)


class JobRequestBuilder:
    """JobSpawner's job request and script (a mixin: it uses the spawner's settings)."""

    def job_request(self, options: JobOptions) -> JobRequest:
        return JobRequest(
            job_name=self.job_name,
            queue=options.queue,
            walltime_seconds=options.walltime_seconds,
            nodes=options.nodes,
            # One task per engine on a node, so that srun/pbsdsh find slots for them all.
            tasks_per_node=self._engine_layout(options).per_node or 1,
            output_path=f"{self.state_dir}/{JOB_LOG}",
            account=options.account,
            memory_mb=options.memory_mb,
            gpus=options.gpus,
            qos=options.qos,
        )

    def _render_script(
        self, adapter: SchedulerAdapter, request: JobRequest, options: JobOptions
    ) -> str:
        layout = self._engine_layout(options)
        launcher = launcher_template(self.engine_launcher) if layout.engines else ()
        environment = self.extra_fields.environments.get(options.environment)
        command = [*self.cmd, *self.get_args()]
        if environment:
            # Inside an environment the server is its own: found by name on its PATH.
            command[0] = posixpath.basename(command[0])
        job = JobScript(
            username=self.user.name,
            server_name=self.name,
            state_dir=self.state_dir,
            python=self.remote_python,
            command=command,
            prologue=tuple(self.job_prologue),
            engines=layout.engines,
            engine_launcher=tuple(launcher_command(launcher, layout, self.remote_python)),
            environment_lines=(
                tuple(entry_lines(environment, self.module_init, command[0])) if environment else ()
            ),
            engine_python=environment.engine_python() if environment else "",
        )
        return render_job_script(adapter, request, job)

    def job_script(self, user_options: dict | None = None) -> str:
        """The exact job script start() submits for these options (default: this spawner's
        user_options), after the same validation. Touches no cluster: `python -m
        hubdash.spawner.render` shows it to admins."""
        data = (self.user_options or {}) if user_options is None else user_options
        options = self.job_options(data)
        adapter = self.cluster_config.adapter()
        return self._render_script(adapter, self.job_request(options), options)

    def _engine_layout(self, options: JobOptions) -> EngineLayout:
        per_node = self.queue_table[options.queue].engines_per_node
        return plan_layout(options.engines, options.nodes, per_node)
