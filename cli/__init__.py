"""The ``shoal`` command: the client of workers and schedulers, ``shoal dev``, and the daemons'
entry points. Above ``scheduler/`` and ``worker/``; neither imports it."""
