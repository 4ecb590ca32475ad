"""The tests' throwaway PostgreSQL cluster: gateway/shell/pg_cluster.py (the benchmarks start it too)."""
from gateway.shell.pg_cluster import MISSING, PostgresCluster, server_bin

__all__ = ["MISSING", "PostgresCluster", "server_bin"]
