"""The job's side: what runs inside the batch job on the compute nodes.

Imports nothing of the hub: only the standard library, the notebook packages and
hubdash.job.contract."""
