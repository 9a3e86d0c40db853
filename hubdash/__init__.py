"""hubdash: Jupyter on a supercomputer, from the browser.

Subpackages: spawner (the JupyterHub spawner), cluster (scheduler client, monitor), schedulers
(adapters), transport (SSH and local), job (runs inside the batch job), dashboard (the service).
Kept free of imports so the job side starts fast on compute nodes.
"""
