"""The domain: alerts, contacts, the store, the dispatcher and the channel contract.

Imports no adapter (modem/, asterisk/, web/): checked by lint-imports.
"""
