"""Webhook endpoints and their deliveries: the shapes (``model``), the use cases (``services``), the
Redis side (``store``), where a webhook may go (``destinations``), Standard Webhooks signing
(``signing``), the delivery loop (``delivery``), ``agent-sessions listen`` and the HTTP endpoints."""
