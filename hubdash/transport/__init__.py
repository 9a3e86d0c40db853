"""How the hub reaches a cluster as a user: the Transport interface, its SSH and local
implementations."""
