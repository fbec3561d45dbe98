"""Helpers the tests share: small episodes, tiny sizes, models, plans, workflow and training runs.

Test files import from here (and fixtures come from conftest.py files), never from each other.
"""
