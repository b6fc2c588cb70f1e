"""What the tests share: the report's recount (``recount``) and typed reads of Redis structures whose
replies redis-py types loosely (``stream``)."""
