"""Events: what a committed change becomes (``model``), the event log and its retention (``store``),
the outbox and the relay that moves it to the queues (``outbox``, ``leases``, ``relay``), and the log
for clients, paged or live (``feed``, ``stream``, ``routes``)."""
