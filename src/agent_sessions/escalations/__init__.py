"""Escalations: the agents' rules (``rules``), which updates escalate (``model``) and their records
(``store``); they reach people as ``session.escalated`` webhooks."""
