"""Agents and their sessions: the shapes (``models``), the use cases (``services``), the Redis side
(``store``, ``indexes``, ``expiry``, ``purge``), the metadata filter language (``filters``) and the
HTTP endpoints (``routes``)."""
