"""What the harness drives but does not own: containers, the official evaluator, the dataset snapshot,
the budget ledger, secrets and redaction, the providers' model listings.
"""
