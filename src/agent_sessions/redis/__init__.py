"""The one package that speaks to Redis. Outside it, code calls its classes; nothing else spells a key
(``keys``), runs a script (``scripts``) or reads a script's status (``replies``).

- ``client``: clients and pools with one policy (no retries, short timeouts), auto-pipelining for the
  API (``Batches``), outages as ``StoreUnavailable``, a full Redis as ``InsufficientStorage``.
- ``keys``: every key name, under one prefix. ``scripts``: the Lua registry and its runners.
  ``replies``: script statuses -> domain errors. ``lua/``: the scripts, each with its KEYS and ARGV.
- ``store`` (agents, sessions; the API), ``apikeys`` (the CLI's key management), ``reports``,
  ``escalations``, ``outbox``, ``purge`` (the workers), ``server`` (an embedded ``redis-server``).
"""
