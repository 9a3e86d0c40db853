"""hubdash's JupyterHub spawner: batch jobs on an HPC cluster, submitted over SSH.

Kept free of imports so the job-side launcher starts fast on compute nodes.
"""
