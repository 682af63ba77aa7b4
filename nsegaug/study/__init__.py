"""``nsegaug study``: a paired experiment of baseline against NSegment+ on the user's own data.

``spec`` (the description, checked once), ``options`` (its tables as the commands' flags), ``plan`` (the units
and their commands), ``run`` (running units, resume, parallel), ``probe`` (the dry run's estimate),
``analysis`` (paired statistics, pure), ``report`` and ``charts`` (the outputs), ``driver`` (the order).
"""
