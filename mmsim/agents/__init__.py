"""Agents: each a plain simpy process with its own random stream. They never import
each other; they act through the market, the ledger and the book."""
