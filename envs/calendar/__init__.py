"""CalendarConflict: a calendar assistant that learns its user's hidden preferences (PEARL).

``generate`` builds users, calendars and conflict rounds; ``env`` is the Gymnasium env
(``selfgym/CalendarConflict-v0``); ``hub`` is the StrategyHub tool memory; ``metrics``
holds ORD, AER and ERR.
"""
