"""The built-in two-stage pick-and-place task, its scripted expert and demo writer."""
