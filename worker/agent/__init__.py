"""The worker agent: joins a cluster, runs what it is assigned, reports what happens."""
