"""The control loop: admission cycle, placement, dispatch to backends, reconcile and charging.

It depends on the quota engine (``quotas``) and never on the portal.
"""
