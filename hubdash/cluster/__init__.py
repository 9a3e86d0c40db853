"""One cluster as the hub sees it: its scheduler client, job monitor and queue figures."""
