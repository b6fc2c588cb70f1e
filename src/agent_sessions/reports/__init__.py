"""Per-agent reports, kept from events alone: the shape (``model``) and the writing side (``store``)."""
