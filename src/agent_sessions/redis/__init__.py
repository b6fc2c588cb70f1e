"""Redis for every feature: the one place a key is named (``keys``), a script is run (``scripts``) and
a script's status is read (``replies``). Each feature's Redis side (``sessions/store.py``,
``events/store.py``, ``webhooks/store.py``…) is written on top of it and is the only module of its
feature that calls Redis; ``make lint`` (``tools/check_redis_boundary.py``) holds every other module
to that.

- ``client``: clients and pools with one policy (no retries, short timeouts), auto-pipelining for the
  API (``Batches``), outages as ``StoreUnavailable``, a full Redis as ``InsufficientStorage``.
- ``keys``: every key name, under one prefix. ``scripts``: the Lua registry, the scripts' declared
  KEYS and ARGV, and their runners. ``replies``: script statuses -> domain errors. ``lua/``: the
  scripts.
- ``acks``, ``cluster``, ``topology``, ``outages``: replicas, Redis Cluster, what the store is, and
  how its failures show. ``layout``, ``migrate``: the key layout and moving a store to it.
  ``server``: an embedded ``redis-server``. ``steps``: the loop of bounded background jobs.
"""
