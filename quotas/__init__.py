"""The books: who may use how much of the national GPU pool, who used what, and who goes next.

The engine modules (quantities, flavors, accounts, ledger, allocations, fairshare, admission,
quote, demo) are pure: they take immutable values and return decisions. ``quotas.db`` persists
them and ``quotas.service`` runs the engine's operations against the database.
"""
