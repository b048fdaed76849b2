"""Persistent objects: state and the rules that change it."""
