"""Guided walkthroughs of a boot, told with the values of that boot (fwinspect tour)."""
