"""The hub test harness the tests and the benchmarks share: starting and stopping a real
JupyterHub (hubprocess), speaking to it through its REST API with a service token (hubclient),
and the service token's place in a hub config (hubapi).

Not installed with the product: imported from the checkout's root, by pytest (its
`pythonpath = ["."]`) and by the benchmarks run as `python -m bench.<name>` from there.
"""
