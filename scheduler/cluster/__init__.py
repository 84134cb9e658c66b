"""The cluster service: the scheduler daemon's parts, one job per module.

- ``tx``: staged record changes over the leader's cache, turned into a store plan (pure).
- ``views``: records as the API shows them and as placement sees them (pure).
- ``sessions``: worker sessions: join, heartbeats, reports, Assign/Revoke delivery.
- ``leader``: the leader's cache, its commit cycle (submissions, placement, reconciliation).
- ``api``: the verbs a client or worker sends, routed to the leader or answered by a standby.
- ``images``: the leader's image store, the image verbs on it, the blobs workers fetch.
- ``imagesync``: a standby's copy of the leader's images, kept in step for a failover.
- ``daemon``: election, listener and the leader/standby roles of one scheduler process.
"""
